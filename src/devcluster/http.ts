import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { apiGroupDocument, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from './discovery.js';
import { ApiError, Errors, isApiError, successStatus } from './errors.js';
import { evictPod } from './eviction.js';
import type { AdmissionAttributes, AdmissionChain, AdmissionUser, Operation } from './admission/index.js';
import type { ApiFaults, WatchFault } from './faults.js';
import { exceedsDepth } from './jsonDepth.js';
import { clone, isRecord, type KubeObject, type StoredObject } from './object.js';
import { OPENAPI_V2_PROTOBUF, openApiV2Json, openApiV2Protobuf, openApiV3Document, openApiV3Root, parseOpenApiV3Path } from './openapi.js';
import { applyPatch, PATCH_CONTENT_TYPES, type PatchType } from './patch.js';
import type { ResourceType } from './registry.js';
import { bindPod } from './scheduler.js';
import { randomSuffix, type DeleteOptions, type ObjectStore, type WatchEvent } from './store.js';
import { toTable, wantsTable, type IncludeObject } from './table.js';

/**
 * The HTTP face of the store: Kubernetes REST paths, discovery, Table output
 * for kubectl, chunked watch streams. Handlers only translate; the semantics
 * live in the store.
 */
export interface ApiServerOptions {
  store: ObjectStore;
  /** Webhooks and admission policies, called for every write they concern. */
  admission: AdmissionChain;
  /** Bearer token of the kubeconfig user; a request with another token gets 401. */
  token: string;
  /** When set (RBAC mode), authenticates and authorizes every request instead of the single-token check. */
  auth?: { check(method: string, url: URL, authorization: string | undefined): { name: string; groups: string[] } } | undefined;
  now: () => number;
  log?: ((msg: string) => void) | undefined;
  bodyLimitBytes?: number;
  bookmarkIntervalMs?: number;
  /** Seeded fault injection (the chaos campaign); off unless enabled on it. */
  faults?: ApiFaults | undefined;
}

const MAX_JSON_PATCH_OPERATIONS = 10_000;

/** The real API server's request body limit. */
const DEFAULT_BODY_LIMIT = 3 * 1024 * 1024;

interface Route {
  type: ResourceType;
  namespace?: string | undefined;
  name?: string | undefined;
  subresource?: string | undefined;
}

type Reply = { code: number; body: unknown };

export class ApiServer {
  readonly server: http.Server;
  private readonly watches = new Set<() => void>();
  private address = '127.0.0.1:0';

  constructor(private readonly opts: ApiServerOptions) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    opts.faults?.onCloseWatches((pick) => {
      let n = 0;
      for (const end of [...this.watches]) {
        if (!pick()) continue;
        end();
        n++;
      }
      return n;
    });
  }

  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const p = (this.server.address() as AddressInfo).port;
    this.address = `${host}:${p}`;
    return p;
  }

  /** Ends open watch streams, then stops listening and drops idle keep-alive connections. */
  async close(): Promise<void> {
    for (const end of [...this.watches]) end();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  openWatches(): number {
    return this.watches.size;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    res.on('finish', () => this.opts.log?.(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms`));
    try {
      const who = this.opts.auth ? this.opts.auth.check(req.method ?? 'GET', url, req.headers.authorization) : this.authenticate(req);
      const user: AdmissionUser = { username: who.name, groups: who.groups };
      // DELETE may carry DeleteOptions (kubectl delete --grace-period sends them in the body).
      const body = req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH' || req.method === 'DELETE' ? await this.readBody(req) : undefined;
      if (this.opts.faults?.enabled) await this.injectFault(req, res, url);
      const reply = await this.route(req, res, url, body, user);
      if (reply) send(res, reply.code, reply.body);
    } catch (err) {
      const e = isApiError(err) ? err : Errors.internal((err as Error)?.message ?? String(err));
      if (!isApiError(err)) this.opts.log?.(`error handling ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
      if (res.headersSent) res.end();
      else {
        // An answer before the whole body was read (too large): the rest of it would be taken for the next request.
        if (!req.complete) res.setHeader('Connection', 'close');
        send(res, e.code, e.toStatus());
      }
    }
  }

  /** A fault decided for this request: a delay, then perhaps an error instead of the answer (watches get theirs in serveWatch). */
  private async injectFault(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const q = url.searchParams;
    if (q.get('watch') === 'true' || q.get('watch') === '1' || url.pathname.includes('/watch/')) return;
    let target: { plural: string; group: string; name: string } | undefined;
    try {
      const segs = url.pathname.split('/').filter((x) => x !== '').map(decodeURIComponent);
      const [group, rest] = segs[0] === 'api' ? ['', segs.slice(2)] : [segs[1] ?? '', segs.slice(3)];
      const r = this.parseRoute(group, segs[0] === 'api' ? segs[1] ?? '' : segs[2] ?? '', rest);
      if (r.name) target = { plural: r.type.plural, group: r.type.group, name: r.name };
    } catch {
      // Not a resource path: only the request-level faults apply.
    }
    const fault = this.opts.faults?.request(req.method ?? 'GET', url.pathname, target);
    if (!fault) return;
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault.error) {
      for (const [k, v] of Object.entries(fault.extraHeaders ?? {})) res.setHeader(k, v);
      throw fault.error;
    }
  }

  /** Without RBAC: the kubeconfig's token is the admin, no token is anonymous (and allowed). */
  private authenticate(req: http.IncomingMessage): { name: string; groups: string[] } {
    const auth = req.headers.authorization;
    if (auth === undefined) return { name: 'system:anonymous', groups: ['system:unauthenticated'] };
    if (auth !== `Bearer ${this.opts.token}`) throw Errors.unauthorized();
    return { name: 'ferry-dev-admin', groups: ['system:masters', 'system:authenticated'] };
  }

  private async readBody(req: http.IncomingMessage): Promise<{ contentType: string; value: unknown }> {
    const limit = this.opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw Errors.tooLarge(limit);
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const contentType = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase();
    if (text.trim() === '') return { contentType, value: undefined };
    const deep = exceedsDepth(text);
    if (deep !== undefined) throw Errors.badRequest(`the request body is not valid ${contentType.includes('yaml') ? 'YAML' : 'JSON'}: invalid character '${deep}' exceeded max depth`);
    try {
      const value = contentType.includes('yaml') ? parseYaml(text) : JSON.parse(text);
      return { contentType, value };
    } catch (err) {
      throw Errors.badRequest(`the request body is not valid ${contentType.includes('yaml') ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: { contentType: string; value: unknown } | undefined, user: AdmissionUser): Promise<Reply | undefined> {
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const registry = this.opts.store.registry;
    if (req.method === 'GET') {
      switch (path) {
        case '/version':
          return { code: 200, body: SERVER_VERSION };
        case '/healthz':
        case '/readyz':
        case '/livez':
          return { code: 200, body: 'ok' };
        case '/api':
          return { code: 200, body: apiVersions(this.address) };
        case '/apis':
          return { code: 200, body: apiGroupList(registry) };
      }
    }
    if (req.method === 'GET' && (path === '/openapi/v2' || path.startsWith('/openapi/v3'))) return this.openApi(res, path, req.headers.accept);
    const segs = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api' && segs.length >= 2) [group, version, rest] = ['', segs[1]!, segs.slice(2)];
    else if (segs[0] === 'apis' && segs.length >= 2) {
      if (segs.length === 2) {
        const doc = req.method === 'GET' ? apiGroupDocument(registry, segs[1]!) : undefined;
        if (!doc) throw Errors.noSuchResource();
        return { code: 200, body: doc };
      }
      [group, version, rest] = [segs[1]!, segs[2]!, segs.slice(3)];
    } else throw Errors.noSuchResource();

    if (rest.length === 0) {
      const doc = req.method === 'GET' ? apiResourceList(registry, group, version) : undefined;
      if (!doc) throw Errors.noSuchResource();
      return { code: 200, body: doc };
    }
    let watchPath = false;
    if (rest[0] === 'watch') {
      watchPath = true;
      rest = rest.slice(1);
    }
    const route = this.parseRoute(group, version, rest);
    const q = url.searchParams;
    const isWatch = watchPath || q.get('watch') === 'true' || q.get('watch') === '1';
    const store = this.opts.store;
    const { type, namespace, name, subresource } = route;
    const table = wantsTable(req.headers.accept);
    const includeObject = (q.get('includeObject') ?? undefined) as IncludeObject | undefined;
    const asTable = (objs: StoredObject[], rv?: string) => toTable(type, objs, { ...(rv !== undefined ? { resourceVersion: rv } : {}), ...(includeObject ? { includeObject } : {}), now: this.opts.now() });

    const dryRunParam = q.get('dryRun');
    if (dryRunParam && dryRunParam !== 'All') throw Errors.badRequest(`Unsupported value: "${dryRunParam}": supported values: "All"`);
    const dryRun = dryRunParam === 'All';
    // Server-side dry run covers what admission decides; the dev cluster does it for creates and evictions.
    if (dryRun && req.method !== 'POST') throw Errors.badRequest(`dryRun is supported by the Ferry dev cluster for create and eviction only, not ${req.method}`);
    const admit = (operation: Operation, objName: string, object: KubeObject | null, oldObject: KubeObject | null, sub = subresource ?? '', options: Record<string, unknown> | null = null, beforeValidation?: (o: KubeObject | null) => KubeObject | null) =>
      this.admit(this.attributes(type, operation, namespace, objName, sub, object, oldObject, user, dryRun, options), beforeValidation);

    switch (req.method) {
      case 'GET': {
        if (isWatch) {
          const fieldSelector = q.get('fieldSelector') ?? (name ? `metadata.name=${name}` : undefined);
          this.serveWatch(req, res, route, {
            namespace,
            labelSelector: q.get('labelSelector') ?? undefined,
            fieldSelector,
            resourceVersion: q.get('resourceVersion') ?? undefined,
            timeoutSeconds: q.has('timeoutSeconds') ? Number(q.get('timeoutSeconds')) : undefined,
            bookmarks: q.get('allowWatchBookmarks') === 'true',
            table,
            includeObject,
          });
          return undefined;
        }
        if (name) {
          if (subresource && subresource !== 'status') throw Errors.methodNotAllowed(`GET is not supported on ${type.plural}/${subresource}`);
          const obj = store.get(type, name, namespace);
          return { code: 200, body: table ? asTable([obj]) : obj };
        }
        const list = store.list(type, { namespace, labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined });
        if (table) return { code: 200, body: asTable(list.items, list.resourceVersion) };
        return {
          code: 200,
          body: { kind: type.listKind, apiVersion: type.apiVersion, metadata: { resourceVersion: list.resourceVersion }, items: list.items },
        };
      }
      case 'POST': {
        if (name && subresource === 'eviction' && type.key === '/pods') {
          const eviction = isRecord(body?.value) ? { ...body.value } : {};
          eviction['apiVersion'] ??= 'policy/v1';
          eviction['kind'] ??= 'Eviction';
          if (!isRecord(eviction['metadata'])) eviction['metadata'] = { name, namespace };
          const attrs = this.attributes(type, 'CREATE', namespace, name, 'eviction', eviction as KubeObject, null, user, dryRun, null);
          attrs.kind = { group: 'policy', version: 'v1', kind: 'Eviction' };
          await this.admit(attrs);
          if (dryRun) return { code: 201, body: successStatus(201) };
          return { code: 201, body: evictPod(store, namespace ?? 'default', name, body?.value) };
        }
        if (name && subresource === 'binding' && type.key === '/pods') {
          const nodeName = isRecord(body?.value) && isRecord(body.value['target']) ? body.value['target']['name'] : undefined;
          if (typeof nodeName !== 'string' || !nodeName) throw Errors.badRequest('a Binding needs target.name (the node)');
          bindPod(store, namespace ?? 'default', name, nodeName, this.opts.now());
          return { code: 201, body: successStatus(201) };
        }
        if (name) throw Errors.methodNotAllowed(`POST is not supported on a single ${type.kind}; create it on the collection`);
        const obj = requireObject(body?.value, type);
        if (type.namespaced && namespace && obj.metadata.namespace === undefined) obj.metadata.namespace = namespace;
        const admitted = (await admit('CREATE', obj.metadata.name ?? '', obj, null, '', null, (o) => {
          // The registry names a generateName object before validation, so validating admission sees the name.
          const meta = o?.metadata;
          if (meta && !meta.name && meta.generateName) {
            do meta.name = meta.generateName + randomSuffix();
            while (store.tryGet(type, meta.name, namespace ?? meta.namespace));
          }
          return o;
        })) ?? obj;
        // A dry run answers with the object as admission left it; nothing is stored, no name is generated.
        if (dryRun) return { code: 201, body: admitted };
        const created = store.create(type, admitted, { namespace });
        return { code: 201, body: table ? asTable([created]) : created };
      }
      case 'PUT': {
        if (!name) throw Errors.methodNotAllowed(`PUT needs an object name (${type.plural}/<name>)`);
        const obj = requireObject(body?.value, type);
        if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
          throw Errors.badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
        }
        obj.metadata.name = name;
        const only = statusOnly(type, subresource);
        const updated = await this.guaranteedUpdate(type, name, namespace, obj.metadata.resourceVersion, async (existing) => {
          if (!existing) return { op: 'CREATE', object: (await admit('CREATE', name, obj, null)) ?? obj };
          return { op: 'UPDATE', object: (await admit('UPDATE', name, obj, existing)) ?? obj };
        }, () => store.update(type, obj, { namespace, subresource: only }), (o) => store.update(type, o, { namespace, subresource: only }));
        return { code: 200, body: updated };
      }
      case 'PATCH': {
        if (!name) throw Errors.methodNotAllowed(`PATCH needs an object name (${type.plural}/<name>)`);
        const patchType = PATCH_CONTENT_TYPES[body?.contentType ?? ''];
        if (!patchType) {
          throw Errors.unsupportedMediaType(
            `the body of the request was in an unknown format - accepted media types include: ${Object.keys(PATCH_CONTENT_TYPES).join(', ')} (got ${body?.contentType ?? 'none'})`,
          );
        }
        // The real server's cap on JSON patches (apiserver's maxJSONPatchOperations).
        if (patchType === 'json' && Array.isArray(body?.value) && body.value.length > MAX_JSON_PATCH_OPERATIONS) {
          throw new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${body.value.length}`);
        }
        const only = statusOnly(type, subresource);
        const patched = await this.guaranteedUpdate(type, name, namespace, undefined, async (existing) => {
          if (!existing) throw Errors.notFound(type.plural, type.group, name);
          const candidate = patchedObject(type, existing, patchType, body?.value, name, namespace);
          return { op: 'UPDATE', object: (await admit('UPDATE', name, candidate, existing)) ?? candidate };
        }, () => store.patch(type, name, body?.value, { namespace, patchType, subresource: only }), (o) => store.update(type, o, { namespace, subresource: only }));
        return { code: 200, body: patched };
      }
      case 'DELETE': {
        const raw = body?.value ?? undefined;
        const options = deleteOptions(isRecord(raw) ? raw : {}, q);
        if (!name) {
          const victims = store.list(type, { namespace, labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined }).items;
          for (const v of victims) await admit('DELETE', v.metadata.name, null, v, '', raw && isRecord(raw) ? raw : null);
          const deleted = victims.map((v) => store.delete(type, v.metadata.name, { ...options, namespace: v.metadata.namespace }));
          return { code: 200, body: { kind: type.listKind, apiVersion: type.apiVersion, metadata: { resourceVersion: store.resourceVersion() }, items: deleted } };
        }
        if (subresource) throw Errors.methodNotAllowed(`DELETE is not supported on ${type.plural}/${subresource}`);
        await admit('DELETE', name, null, store.get(type, name, namespace), '', raw && isRecord(raw) ? raw : null);
        return { code: 200, body: store.delete(type, name, { ...options, namespace }) };
      }
      default:
        throw Errors.methodNotAllowed(`method ${req.method} is not supported`);
    }
  }

  private attributes(
    type: ResourceType, operation: Operation, namespace: string | undefined, name: string, subResource: string,
    object: KubeObject | null, oldObject: KubeObject | null, user: AdmissionUser, dryRun: boolean, options: Record<string, unknown> | null,
  ): AdmissionAttributes {
    return {
      uid: randomUUID(),
      operation,
      resource: { group: type.group, version: type.version, resource: type.plural },
      subResource,
      kind: { group: type.group, version: type.version, kind: type.kind },
      name,
      namespace: type.namespaced ? namespace ?? '' : '',
      object,
      oldObject,
      userInfo: user,
      dryRun,
      options,
      namespaced: type.namespaced,
    };
  }

  /** Runs admission if any webhook or policy concerns the request; resolves to the object to store. */
  private async admit(a: AdmissionAttributes, beforeValidation?: (o: KubeObject | null) => KubeObject | null): Promise<KubeObject | null> {
    if (!this.opts.admission.concerns(a)) return a.object;
    return this.opts.admission.admit(a, beforeValidation);
  }

  /**
   * An update (PUT or PATCH) with admission in the middle, as the real
   * server's GuaranteedUpdate: read, compute, admit, then write guarded by the
   * resourceVersion read; if the object changed meanwhile, start again. When
   * no webhook or policy concerns the request, the store's own update runs.
   */
  private async guaranteedUpdate(
    type: ResourceType, name: string, namespace: string | undefined, clientVersion: string | undefined,
    compute: (existing: StoredObject | undefined) => Promise<{ op: Operation; object: KubeObject }>,
    direct: () => StoredObject,
    write: (o: KubeObject) => StoredObject,
  ): Promise<StoredObject> {
    const probe = this.attributes(type, 'UPDATE', namespace, name, '', null, null, { username: '', groups: [] }, false, null);
    if (!this.opts.admission.concerns(probe) && !this.opts.admission.concerns({ ...probe, operation: 'CREATE' })) return direct();
    for (let attempt = 0; ; attempt++) {
      const existing = this.opts.store.tryGet(type, name, namespace);
      const { op, object } = await compute(existing ? clone(existing) : undefined);
      if (op === 'CREATE') return direct();
      const pinned = clone(object);
      const rv = pinned.metadata.resourceVersion;
      // A version the client asked for (PUT body, or set by the patch) is a precondition: a conflict goes back to it.
      const userPinned = (clientVersion !== undefined && clientVersion !== '') || (rv !== undefined && rv !== '' && rv !== existing!.metadata.resourceVersion);
      if (!rv) pinned.metadata.resourceVersion = existing!.metadata.resourceVersion;
      try {
        return write(pinned);
      } catch (err) {
        if (userPinned || attempt >= 4 || !isApiError(err) || err.code !== 409) throw err;
      }
    }
  }

  private openApi(res: http.ServerResponse, path: string, accept: string | undefined): Reply | undefined {
    const registry = this.opts.store.registry;
    if (path === '/openapi/v2') {
      if ((accept ?? '').includes(OPENAPI_V2_PROTOBUF)) {
        const body = openApiV2Protobuf();
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
        res.end(body);
        return undefined;
      }
      return { code: 200, body: openApiV2Json() };
    }
    if (path === '/openapi/v3') return { code: 200, body: openApiV3Root(registry) };
    const gv = parseOpenApiV3Path(path.slice('/openapi/v3'.length));
    const doc = gv && openApiV3Document(registry, gv.group, gv.version);
    if (!doc) throw Errors.noSuchResource();
    return { code: 200, body: doc };
  }

  private parseRoute(group: string, version: string, rest: string[]): Route {
    const registry = this.opts.store.registry;
    const lookup = (plural: string | undefined) => {
      const t = plural === undefined ? undefined : registry.find(group, version, plural);
      if (!t) throw Errors.noSuchResource();
      return t;
    };
    // "/api/v1/namespaces/x/status" is the namespace's own subresource, "/api/v1/namespaces/x/pods" a namespaced collection.
    const scoped = rest[0] === 'namespaces' && rest.length >= 3 ? registry.find(group, version, rest[2]!) : undefined;
    if (scoped?.namespaced || (rest[0] === 'namespaces' && rest.length >= 3 && group !== '')) {
      const type = lookup(rest[2]);
      if (!type.namespaced || rest.length > 5) throw Errors.noSuchResource();
      return { type, namespace: rest[1], name: rest[3], subresource: rest[4] };
    }
    const type = lookup(rest[0]);
    if (rest.length > 3) throw Errors.noSuchResource();
    if (type.namespaced && rest.length > 1) throw Errors.noSuchResource();
    return { type, name: rest[1], subresource: rest[2] };
  }

  private serveWatch(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    route: Route,
    o: {
      namespace?: string | undefined; labelSelector?: string | undefined; fieldSelector?: string | undefined; resourceVersion?: string | undefined;
      timeoutSeconds?: number | undefined; bookmarks: boolean; table: boolean; includeObject?: IncludeObject | undefined;
    },
  ): void {
    const { store } = this.opts;
    const type = route.type;
    // Selector errors are answered as plain errors before the stream starts, like the real server.
    store.list(type, { namespace: o.namespace, labelSelector: o.labelSelector, fieldSelector: o.fieldSelector });
    const fault: WatchFault | undefined = this.opts.faults?.enabled ? this.opts.faults.watch(req.url ?? '', o.resourceVersion) : undefined;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const writeNow = (e: { type: string; object: unknown }) => res.write(`${JSON.stringify(e)}\n`);
    // Delayed events keep their order: each waits its delay after the one before it went out.
    let queue = Promise.resolve();
    const write = fault?.eventDelayMs === undefined ? writeNow : (e: { type: string; object: unknown }) => {
      queue = queue.then(() => new Promise<void>((resolve) => setTimeout(() => {
        if (!ended) writeNow(e);
        resolve();
      }, fault.eventDelayMs)));
    };
    const render = (e: WatchEvent) => ({
      type: e.type,
      object: o.table ? toTable(type, [e.object], { ...(o.includeObject ? { includeObject: o.includeObject } : {}), now: this.opts.now() }) : e.object,
    });
    let ended = false;
    const timers: NodeJS.Timeout[] = [];
    let watcher: { stop(): void } | undefined;
    const end = () => {
      if (ended) return;
      ended = true;
      watcher?.stop();
      for (const t of timers) clearTimeout(t); // clears intervals too
      this.watches.delete(end);
      res.end();
    };
    this.watches.add(end);
    req.on('close', end);
    res.on('close', end);
    if (fault?.gone) {
      writeNow({ type: 'ERROR', object: fault.gone.toStatus() });
      end();
      return;
    }
    if (fault?.closeAfterMs !== undefined) timers.push(setTimeout(end, fault.closeAfterMs));
    try {
      watcher = store.watchRaw(type, { namespace: o.namespace, labelSelector: o.labelSelector, fieldSelector: o.fieldSelector, resourceVersion: o.resourceVersion }, (e) => {
        if (!ended) write(render(e));
      });
    } catch (err) {
      const e: ApiError = isApiError(err) ? err : Errors.internal(String(err));
      writeNow({ type: 'ERROR', object: e.toStatus() });
      end();
      return;
    }
    if (o.timeoutSeconds !== undefined && Number.isFinite(o.timeoutSeconds) && o.timeoutSeconds > 0) {
      timers.push(setTimeout(end, o.timeoutSeconds * 1000));
    }
    if (o.bookmarks) {
      timers.push(
        setInterval(() => {
          write({ type: 'BOOKMARK', object: { kind: type.kind, apiVersion: type.apiVersion, metadata: { resourceVersion: store.resourceVersion() } } });
        }, this.opts.bookmarkIntervalMs ?? 5_000),
      );
    }
  }
}

function send(res: http.ServerResponse, code: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function requireObject(value: unknown, type: ResourceType): KubeObject {
  if (!isRecord(value)) throw Errors.badRequest(`the request body must be a ${type.kind} object`);
  if (value['metadata'] !== undefined && !isRecord(value['metadata'])) throw Errors.badRequest('metadata must be an object');
  return { ...value, metadata: { ...(isRecord(value['metadata']) ? value['metadata'] : {}) } } as KubeObject;
}

function statusOnly(type: ResourceType, subresource: string | undefined): 'status' | undefined {
  if (subresource === undefined) return undefined;
  if (subresource === 'status' && type.hasStatus) return 'status';
  throw Errors.noSuchResource();
}

function deleteOptions(body: Record<string, unknown>, q: URLSearchParams): DeleteOptions {
  const o: DeleteOptions = {};
  const grace = body['gracePeriodSeconds'] ?? (q.has('gracePeriodSeconds') ? Number(q.get('gracePeriodSeconds')) : undefined);
  if (typeof grace === 'number' && Number.isFinite(grace)) o.gracePeriodSeconds = grace;
  const policy = body['propagationPolicy'] ?? q.get('propagationPolicy') ?? undefined;
  if (policy === 'Orphan' || policy === 'Background' || policy === 'Foreground') o.propagationPolicy = policy;
  else if (body['orphanDependents'] === true) o.propagationPolicy = 'Orphan';
  if (isRecord(body['preconditions'])) o.preconditions = body['preconditions'] as DeleteOptions['preconditions'];
  return o;
}

/** The object a PATCH would store, for admission to see before it is written. */
function patchedObject(type: ResourceType, existing: StoredObject, patchType: PatchType, patch: unknown, name: string, namespace: string | undefined): KubeObject {
  if (patchType === 'strategic' && !type.strategicMergePatch) {
    throw Errors.unsupportedMediaType(
      `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json (strategic merge patch is not supported for ${type.kind})`,
    );
  }
  const patched = applyPatch(patchType, existing, patch);
  if (!isRecord(patched) || !isRecord(patched['metadata'])) {
    throw Errors.invalid(type.kind, type.group, name, [{ field: 'metadata', message: 'Required value: the patched object has no metadata' }]);
  }
  const next = patched as KubeObject;
  next.metadata.name = name;
  if (namespace !== undefined) next.metadata.namespace = namespace;
  return next;
}
