import { randomUUID } from 'node:crypto';
import { ApiError, Errors } from './errors.js';
import { clone, getPath, isRecord, jsonEqual, type KubeObject, type StoredObject } from './object.js';
import { applyPatch, type PatchType } from './patch.js';
import type { ResourceRef, ResourceRegistry, ResourceType } from './registry.js';
import { matchesFields, matchesRequirements, parseFieldSelector, parseLabelSelector, type FieldRequirement, type Requirement } from './selectors.js';

/**
 * The dev cluster's in-memory object store: every object of every registered
 * type, one global resourceVersion, and a bounded history of changes for
 * watches to resume from. It implements the API server's write semantics
 * (conflicts, status subresource, finalizers, graceful pod deletion, owner
 * garbage collection); the HTTP layer is a thin translation on top of it.
 */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface WatchEvent { type: WatchEventType; object: StoredObject }

export interface ListOptions {
  namespace?: string | undefined;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
}
export interface WatchOptions extends ListOptions {
  /** Resume strictly after this version; absent, "" or "0": start with ADDED for every current object. */
  resourceVersion?: string | undefined;
}
export interface CreateOptions {
  namespace?: string | undefined;
  /** In-process only (seeding, the scheduler): keep the given status where the API server would reset it on create. */
  withStatus?: boolean;
}
export interface UpdateOptions {
  namespace?: string | undefined;
  subresource?: 'status' | undefined;
  /** In-process only: write spec and status in one change, as the API server's own pod binding does. */
  withStatus?: boolean;
}
export interface PatchOptions extends UpdateOptions { patchType?: PatchType }
export interface DeleteOptions {
  namespace?: string | undefined;
  gracePeriodSeconds?: number | undefined;
  preconditions?: { uid?: string | undefined; resourceVersion?: string | undefined } | undefined;
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground' | undefined;
}
export interface Watcher { stop(): void }

interface Change { rv: number; typeKey: string; type: WatchEventType; object: StoredObject; prev?: StoredObject | undefined }

interface WatchState {
  typeKey: string;
  namespace?: string | undefined;
  labels: Requirement[];
  fields: FieldRequirement[];
  lastRv: number;
  listener: (e: WatchEvent) => void;
  valueOf: (obj: KubeObject, field: string) => string;
}

export interface StoreOptions {
  registry: ResourceRegistry;
  /** Changes kept for watches to resume from; older versions answer 410 Gone. */
  watchHistory?: number;
  now?: () => number;
  /** Called when a watch listener throws; the store itself carries on. */
  onListenerError?: (err: unknown) => void;
}

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function randomSuffix(n = 5): string {
  let s = '';
  for (let i = 0; i < n; i++) s += GENERATE_ALPHABET[Math.floor(Math.random() * GENERATE_ALPHABET.length)];
  return s;
}

function objKey(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export class ObjectStore {
  readonly registry: ResourceRegistry;
  private rv = 100;
  private readonly objects = new Map<string, Map<string, StoredObject>>();
  private readonly byUid = new Map<string, { typeKey: string; key: string }>();
  private readonly history: Change[] = [];
  private compactedRv = 0;
  private readonly historyLimit: number;
  private readonly watchers = new Set<WatchState>();
  private readonly queue: Change[] = [];
  private dispatching = false;
  private readonly now: () => number;
  private readonly onListenerError: (err: unknown) => void;
  private readonly readViews = new Map<string, (obj: StoredObject) => StoredObject>();

  constructor(opts: StoreOptions) {
    this.registry = opts.registry;
    this.historyLimit = Math.max(1, opts.watchHistory ?? 10_000);
    this.now = opts.now ?? Date.now;
    this.onListenerError = opts.onListenerError ?? (() => {});
  }

  /** The newest resourceVersion in the store. */
  resourceVersion(): string {
    return String(this.rv);
  }

  /** Fields computed at read time (PDB status), applied to get and list answers. */
  setReadView(ref: ResourceRef, view: (obj: StoredObject) => StoredObject): void {
    this.readViews.set(this.registry.resolve(ref).key, view);
  }

  get(ref: ResourceRef, name: string, namespace?: string): StoredObject {
    const type = this.registry.resolve(ref);
    const obj = this.find(type, name, namespace);
    if (!obj) throw Errors.notFound(type.plural, type.group, name);
    return this.view(type, obj);
  }

  tryGet(ref: ResourceRef, name: string, namespace?: string): StoredObject | undefined {
    const type = this.registry.resolve(ref);
    const obj = this.find(type, name, namespace);
    return obj && this.view(type, obj);
  }

  list(ref: ResourceRef, opts: ListOptions = {}): { items: StoredObject[]; resourceVersion: string } {
    const type = this.registry.resolve(ref);
    const labels = parseLabelSelector(opts.labelSelector ?? '');
    const fields = this.parseFields(type, opts.fieldSelector);
    const items = [...this.bucket(type).values()]
      .filter((o) => this.matches(type, o, opts.namespace, labels, fields))
      .sort((a, b) => objKey(a.metadata.namespace, a.metadata.name).localeCompare(objKey(b.metadata.namespace, b.metadata.name)))
      .map((o) => this.view(type, o));
    return { items, resourceVersion: this.resourceVersion() };
  }

  create(ref: ResourceRef, body: KubeObject, opts: CreateOptions = {}): StoredObject {
    const type = this.registry.resolve(ref);
    const obj = this.checkBody(type, body);
    const meta = obj.metadata;
    const namespace = this.resolveNamespace(type, opts.namespace, meta.namespace);
    if (namespace !== undefined) meta.namespace = namespace;
    else delete meta.namespace;
    if (namespace !== undefined) this.requireNamespace(namespace);
    if (meta.resourceVersion) throw Errors.internal('resourceVersion should not be set on objects to be created');
    if (!meta.name) {
      if (!meta.generateName) throw Errors.invalid(type.kind, type.group, '', [{ field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
      do meta.name = meta.generateName + randomSuffix();
      while (this.find(type, meta.name, namespace));
    }
    const name = meta.name;
    if (type.nameValidation === 'pathSegment') {
      if (name === '.' || name === '..' || /[/%]/.test(name)) {
        throw Errors.invalid(type.kind, type.group, name, [{ field: 'metadata.name', message: `Invalid value: "${name}": may not be '.' or '..' and may not contain '/' or '%'` }]);
      }
    } else if (name.length > 253 || !NAME_RE.test(name)) {
      throw Errors.invalid(type.kind, type.group, name, [
        { field: 'metadata.name', message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character` },
      ]);
    }
    if (this.find(type, name, namespace)) throw Errors.alreadyExists(type.plural, type.group, name);
    meta.uid = randomUUID();
    meta.creationTimestamp = timestamp(this.now());
    meta.generation = 1;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    if (type.hasStatus && !type.keepStatusOnCreate && !opts.withStatus) delete obj['status'];
    type.prepareForCreate?.(obj);
    return clone(this.commit(type, 'ADDED', obj as StoredObject));
  }

  update(ref: ResourceRef, body: KubeObject, opts: UpdateOptions = {}): StoredObject {
    const type = this.registry.resolve(ref);
    const obj = this.checkBody(type, body);
    const name = obj.metadata.name;
    if (!name) throw Errors.invalid(type.kind, type.group, '', [{ field: 'metadata.name', message: 'Required value: name is required' }]);
    const namespace = this.resolveNamespace(type, opts.namespace, obj.metadata.namespace);
    const existing = this.find(type, name, namespace);
    if (!existing) {
      if (type.allowCreateOnUpdate && !opts.subresource) {
        const fresh = clone(obj);
        delete fresh.metadata.resourceVersion;
        return this.create(type, fresh, { namespace });
      }
      throw Errors.notFound(type.plural, type.group, name);
    }
    const wanted = obj.metadata.resourceVersion;
    if (wanted && wanted !== existing.metadata.resourceVersion) throw Errors.conflict(type.plural, type.group, name);
    return clone(this.applyUpdate(type, existing, obj, opts.subresource, opts.withStatus));
  }

  patch(ref: ResourceRef, name: string, patch: unknown, opts: PatchOptions = {}): StoredObject {
    const type = this.registry.resolve(ref);
    const patchType = opts.patchType ?? 'merge';
    if (patchType === 'strategic' && !type.strategicMergePatch) {
      throw Errors.unsupportedMediaType(
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json (strategic merge patch is not supported for ${type.kind})`,
      );
    }
    const namespace = this.resolveNamespace(type, opts.namespace, undefined);
    const existing = this.find(type, name, namespace);
    if (!existing) throw Errors.notFound(type.plural, type.group, name);
    const patched = applyPatch(patchType, existing, patch);
    if (!isRecord(patched) || !isRecord(patched['metadata'])) {
      throw Errors.invalid(type.kind, type.group, name, [{ field: 'metadata', message: 'Required value: the patched object has no metadata' }]);
    }
    const next = patched as KubeObject;
    const wanted = next.metadata.resourceVersion;
    if (wanted && wanted !== existing.metadata.resourceVersion) throw Errors.conflict(type.plural, type.group, name);
    next.metadata.name = name;
    if (namespace !== undefined) next.metadata.namespace = namespace;
    return clone(this.applyUpdate(type, existing, next, opts.subresource, opts.withStatus));
  }

  /**
   * Deletes as the API server does: objects with finalizers (and pods on a
   * node, which terminate gracefully) get a deletionTimestamp and stay; the
   * rest vanish at once and their dependents are garbage-collected.
   */
  delete(ref: ResourceRef, name: string, opts: DeleteOptions = {}): StoredObject {
    const type = this.registry.resolve(ref);
    const namespace = this.resolveNamespace(type, opts.namespace, undefined);
    const existing = this.find(type, name, namespace);
    if (!existing) throw Errors.notFound(type.plural, type.group, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== existing.metadata.uid) {
      throw Errors.conflict(type.plural, type.group, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion) {
      throw Errors.conflict(type.plural, type.group, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in meta: ${existing.metadata.resourceVersion}`);
    }
    const grace = this.gracePeriod(type, existing, opts.gracePeriodSeconds);
    if (grace > 0) {
      const current = existing.metadata.deletionGracePeriodSeconds;
      if (existing.metadata.deletionTimestamp && current !== undefined && current <= grace) return clone(existing);
      const next = clone(existing);
      next.metadata.deletionTimestamp = timestamp(this.now() + grace * 1000);
      next.metadata.deletionGracePeriodSeconds = grace;
      return clone(this.commit(type, 'MODIFIED', next, existing));
    }
    if ((existing.metadata.finalizers ?? []).length > 0) {
      if (existing.metadata.deletionTimestamp && existing.metadata.deletionGracePeriodSeconds === 0) return clone(existing);
      const next = clone(existing);
      next.metadata.deletionTimestamp ??= timestamp(this.now());
      next.metadata.deletionGracePeriodSeconds = 0;
      return clone(this.commit(type, 'MODIFIED', next, existing));
    }
    return clone(this.remove(type, existing, opts.propagationPolicy === 'Orphan'));
  }

  /**
   * Streams changes to `listener`, in resourceVersion order. Throws a 410
   * ApiError when `resourceVersion` is older than the kept history.
   */
  watch(ref: ResourceRef, opts: WatchOptions, listener: (e: WatchEvent) => void): Watcher {
    return this.watchRaw(ref, opts, (e) => listener({ type: e.type, object: clone(e.object) }));
  }

  /** Like watch, but hands out the store's own (never mutated) snapshots: the listener must not change them. */
  watchRaw(ref: ResourceRef, opts: WatchOptions, listener: (e: WatchEvent) => void): Watcher {
    const type = this.registry.resolve(ref);
    const state: WatchState = {
      typeKey: type.key,
      namespace: opts.namespace,
      labels: parseLabelSelector(opts.labelSelector ?? ''),
      fields: this.parseFields(type, opts.fieldSelector),
      lastRv: 0,
      listener,
      valueOf: (obj, field) => this.fieldValue(type, obj, field),
    };
    const rvText = opts.resourceVersion ?? '';
    if (rvText === '' || rvText === '0') {
      for (const o of this.bucket(type).values()) {
        if (this.matches(type, o, opts.namespace, state.labels, state.fields)) this.deliver(state, { type: 'ADDED', object: o });
      }
    } else {
      if (!/^\d+$/.test(rvText)) throw Errors.badRequest(`invalid resource version "${rvText}"`);
      const from = Number(rvText);
      if (from < this.compactedRv) {
        throw Errors.gone(`too old resource version: ${from} (${this.compactedRv + 1})`);
      }
      state.lastRv = from;
      for (const c of this.history) if (c.rv > from) this.offer(state, c);
    }
    state.lastRv = Math.max(state.lastRv, this.rv);
    this.watchers.add(state);
    return { stop: () => void this.watchers.delete(state) };
  }

  /** Number of open watches (tests use it to prove close() releases them). */
  watchCount(): number {
    return this.watchers.size;
  }

  // ---------------------------------------------------------------- internals

  private bucket(type: ResourceType): Map<string, StoredObject> {
    let b = this.objects.get(type.key);
    if (!b) this.objects.set(type.key, (b = new Map()));
    return b;
  }

  private find(type: ResourceType, name: string, namespace: string | undefined): StoredObject | undefined {
    return this.bucket(type).get(objKey(type.namespaced ? namespace ?? 'default' : undefined, name));
  }

  private view(type: ResourceType, obj: StoredObject): StoredObject {
    const v = this.readViews.get(type.key);
    return clone(v ? v(obj) : obj);
  }

  private checkBody(type: ResourceType, body: unknown): KubeObject {
    if (!isRecord(body)) throw Errors.badRequest(`the request body must be a JSON object (a ${type.kind})`);
    const obj = clone(body) as KubeObject;
    if (obj.metadata === undefined) obj.metadata = {};
    if (!isRecord(obj.metadata)) throw Errors.badRequest('metadata must be an object');
    if (obj.kind !== undefined && obj.kind !== type.kind) {
      throw Errors.invalid(type.kind, type.group, String(obj.metadata.name ?? ''), [
        { field: 'kind', message: `Invalid value: "${String(obj.kind)}": must be ${type.kind} for ${type.plural}` },
      ]);
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== type.apiVersion) {
      throw Errors.invalid(type.kind, type.group, String(obj.metadata.name ?? ''), [
        { field: 'apiVersion', message: `Invalid value: "${String(obj.apiVersion)}": must be ${type.apiVersion} for ${type.plural}` },
      ]);
    }
    obj.apiVersion = type.apiVersion;
    obj.kind = type.kind;
    return obj;
  }

  private resolveNamespace(type: ResourceType, fromRequest: string | undefined, fromBody: string | undefined): string | undefined {
    if (!type.namespaced) return undefined;
    if (fromRequest && fromBody && fromRequest !== fromBody) {
      throw Errors.badRequest(`the namespace of the provided object (${fromBody}) does not match the namespace sent on the request (${fromRequest})`);
    }
    return fromRequest || fromBody || 'default';
  }

  private requireNamespace(namespace: string): void {
    const nsType = this.registry.find('', 'v1', 'namespaces');
    if (!nsType) return;
    const ns = this.find(nsType, namespace, undefined);
    if (!ns) throw Errors.notFound('namespaces', '', namespace);
    if (ns.metadata.deletionTimestamp) {
      throw new ApiError(403, 'Forbidden', `unable to create new content in namespace ${namespace} because it is being terminated`);
    }
  }

  private parseFields(type: ResourceType, selector: string | undefined): FieldRequirement[] {
    return parseFieldSelector(selector ?? '', (f) => f === 'metadata.name' || f === 'metadata.namespace' || f in type.selectableFields);
  }

  private fieldValue(type: ResourceType, obj: KubeObject, field: string): string {
    const custom = type.selectableFields[field];
    if (custom) return custom(obj);
    const v = getPath(obj, field);
    return v === undefined || v === null ? '' : String(v);
  }

  private matches(type: ResourceType, obj: KubeObject, namespace: string | undefined, labels: Requirement[], fields: FieldRequirement[]): boolean {
    if (namespace && type.namespaced && obj.metadata.namespace !== namespace) return false;
    return matchesRequirements(labels, obj.metadata.labels) && matchesFields(fields, (f) => this.fieldValue(type, obj, f));
  }

  private gracePeriod(type: ResourceType, pod: StoredObject, requested: number | undefined): number {
    if (!(type.group === '' && type.plural === 'pods')) return 0;
    const spec = isRecord(pod['spec']) ? pod['spec'] : {};
    const phase = getPath(pod, 'status.phase');
    // Pods never started on a node, or already finished, have nothing to stop.
    if (!spec['nodeName'] || phase === 'Succeeded' || phase === 'Failed') return 0;
    const g = requested ?? (typeof spec['terminationGracePeriodSeconds'] === 'number' ? spec['terminationGracePeriodSeconds'] : 30);
    return Math.max(0, g);
  }

  private applyUpdate(type: ResourceType, existing: StoredObject, body: KubeObject, subresource: 'status' | undefined, withStatus = false): StoredObject {
    let next: StoredObject;
    if (subresource === 'status') {
      if (!type.hasStatus) throw Errors.noSuchResource();
      next = clone(existing);
      if (body['status'] === undefined) delete next['status'];
      else next['status'] = clone(body['status']);
    } else {
      next = clone(body) as StoredObject;
      const m = next.metadata;
      const em = existing.metadata;
      m.name = em.name;
      m.uid = em.uid;
      m.creationTimestamp = em.creationTimestamp;
      m.resourceVersion = em.resourceVersion;
      if (em.namespace !== undefined) m.namespace = em.namespace;
      if (em.generation !== undefined) m.generation = em.generation;
      for (const k of ['deletionTimestamp', 'deletionGracePeriodSeconds'] as const) {
        if (em[k] === undefined) delete m[k];
        else (m as Record<string, unknown>)[k] = em[k];
      }
      if (type.hasStatus && !withStatus) {
        if (existing['status'] === undefined) delete next['status'];
        else next['status'] = clone(existing['status']);
      }
      if (em.deletionTimestamp) {
        const added = (m.finalizers ?? []).filter((f) => !(em.finalizers ?? []).includes(f));
        if (added.length > 0) {
          throw Errors.invalid(type.kind, type.group, em.name, [{ field: 'metadata.finalizers', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}` }]);
        }
      }
    }
    if (jsonEqual(next, existing)) return existing;
    if (!jsonEqual(withoutMetaAndStatus(next), withoutMetaAndStatus(existing))) next.metadata.generation = (existing.metadata.generation ?? 1) + 1;
    const m = next.metadata;
    if (m.deletionTimestamp && (m.finalizers ?? []).length === 0 && (m.deletionGracePeriodSeconds ?? 0) === 0) {
      if (m.finalizers) delete m.finalizers;
      return this.remove(type, next, false, existing);
    }
    return this.commit(type, 'MODIFIED', next, existing);
  }

  private remove(type: ResourceType, obj: StoredObject, orphan: boolean, prev?: StoredObject): StoredObject {
    const gone = this.commit(type, 'DELETED', clone(obj), prev ?? obj);
    if (type.group === '' && type.plural === 'namespaces') this.deleteNamespaceContent(gone.metadata.name);
    if (type.group === '' && type.plural === 'nodes') this.deletePodsOnNode(gone.metadata.name);
    this.collectDependents(gone.metadata.uid, orphan);
    return gone;
  }

  /** Background garbage collection: dependents whose every owner is gone are deleted; others lose the dangling reference. */
  private collectDependents(ownerUid: string, orphan: boolean): void {
    for (const type of this.registry.all()) {
      for (const obj of [...this.bucket(type).values()]) {
        const refs = obj.metadata.ownerReferences ?? [];
        if (!refs.some((r) => r.uid === ownerUid)) continue;
        const current = this.find(type, obj.metadata.name, obj.metadata.namespace);
        if (!current) continue;
        const remaining = refs.filter((r) => r.uid !== ownerUid);
        if (orphan || remaining.some((r) => this.byUid.has(r.uid))) {
          const next = clone(current);
          if (remaining.length > 0) next.metadata.ownerReferences = remaining;
          else delete next.metadata.ownerReferences;
          this.applyUpdate(type, current, next, undefined);
        } else {
          this.delete(type, current.metadata.name, { namespace: current.metadata.namespace });
        }
      }
    }
  }

  private deleteNamespaceContent(namespace: string): void {
    for (const type of this.registry.all().filter((t) => t.namespaced)) {
      for (const obj of [...this.bucket(type).values()]) {
        if (obj.metadata.namespace !== namespace || !this.find(type, obj.metadata.name, namespace)) continue;
        this.delete(type, obj.metadata.name, { namespace });
      }
    }
  }

  /** Like the pod garbage collector: pods bound to a node that no longer exists are removed. */
  private deletePodsOnNode(node: string): void {
    const pods = this.registry.find('', 'v1', 'pods');
    if (!pods) return;
    for (const pod of [...this.bucket(pods).values()]) {
      if (getPath(pod, 'spec.nodeName') !== node || !this.find(pods, pod.metadata.name, pod.metadata.namespace)) continue;
      this.delete(pods, pod.metadata.name, { namespace: pod.metadata.namespace, gracePeriodSeconds: 0 });
    }
  }

  private commit(type: ResourceType, kind: WatchEventType, obj: StoredObject, prev?: StoredObject): StoredObject {
    this.rv += 1;
    obj.metadata.resourceVersion = String(this.rv);
    const key = objKey(obj.metadata.namespace, obj.metadata.name);
    if (kind === 'DELETED') {
      this.bucket(type).delete(key);
      this.byUid.delete(obj.metadata.uid);
    } else {
      this.bucket(type).set(key, obj);
      this.byUid.set(obj.metadata.uid, { typeKey: type.key, key });
    }
    const change: Change = { rv: this.rv, typeKey: type.key, type: kind, object: obj, prev };
    this.history.push(change);
    while (this.history.length > this.historyLimit) this.compactedRv = this.history.shift()!.rv;
    this.queue.push(change);
    this.dispatch();
    return obj;
  }

  /**
   * Delivers queued changes to every watcher in commit order. A listener that
   * writes to the store only enqueues; its change is delivered to everyone
   * after the current one, so no watcher ever sees changes out of order.
   */
  private dispatch(): void {
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      for (let c = this.queue.shift(); c; c = this.queue.shift()) {
        for (const w of [...this.watchers]) if (this.watchers.has(w)) this.offer(w, c);
      }
    } finally {
      this.dispatching = false;
    }
  }

  /** Translates a change for one watcher: objects moving in or out of its selection appear as ADDED or DELETED. */
  private offer(w: WatchState, c: Change): void {
    if (c.rv <= w.lastRv || c.typeKey !== w.typeKey) return;
    w.lastRv = c.rv;
    const sel = (o: KubeObject | undefined) =>
      o !== undefined &&
      (!w.namespace || o.metadata.namespace === w.namespace) &&
      matchesRequirements(w.labels, o.metadata.labels) &&
      matchesFields(w.fields, (f) => w.valueOf(o, f));
    const now = sel(c.object);
    if (c.type === 'ADDED') {
      if (now) this.deliver(w, { type: 'ADDED', object: c.object });
      return;
    }
    const before = sel(c.prev ?? c.object);
    if (c.type === 'DELETED') {
      if (before || now) this.deliver(w, { type: 'DELETED', object: c.object });
      return;
    }
    if (before && now) this.deliver(w, { type: 'MODIFIED', object: c.object });
    else if (now) this.deliver(w, { type: 'ADDED', object: c.object });
    else if (before) this.deliver(w, { type: 'DELETED', object: c.object });
  }

  private deliver(w: WatchState, e: WatchEvent): void {
    try {
      w.listener(e);
    } catch (err) {
      this.onListenerError(err);
    }
  }
}

function withoutMetaAndStatus(o: KubeObject): Record<string, unknown> {
  const { metadata: _m, status: _s, ...rest } = o;
  return rest;
}
