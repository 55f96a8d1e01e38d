import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../util/clock.js';
import { isApiError } from './errors.js';
import { getPath, isRecord, type KubeObject, type StoredObject } from './object.js';
import { isTerminated } from './scheduling.js';
import { timestamp, type ObjectStore, type Watcher } from './store.js';

/**
 * The kubelet stand-in: a pod bound to an existing node starts (Running and
 * Ready) after a delay; a pod being deleted is removed after a shorter one.
 * Every status change is a write through the store, so watches see it.
 */
export interface KubeletOptions {
  startDelayMs: number;
  terminationDelayMs: number;
  clock: Clock;
  log?: ((msg: string) => void) | undefined;
  /** Runs what some pods stand for (the libvirt dev mode: a launcher's daemon); without it pods run nothing. */
  runtime?: PodRuntime | undefined;
}

/**
 * Real processes behind pods. start() resolves once the pod's containers
 * would be Ready (the pod is then marked Running); a rejection fails the pod.
 * stop() resolves once everything the pod ran is gone (then it is removed).
 */
export interface PodRuntime {
  handles(pod: KubeObject): boolean;
  start(pod: KubeObject): Promise<void>;
  stop(pod: KubeObject): Promise<void>;
}

/** The status a started pod reports: Running, every container ready. */
export function runningPodStatus(pod: KubeObject, hostIP: string, podIP: string, now: number): Record<string, unknown> {
  const at = timestamp(now);
  const containers = getPath(pod, 'spec.containers');
  const condition = (type: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: at });
  return {
    phase: 'Running',
    conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(condition),
    hostIP,
    hostIPs: hostIP ? [{ ip: hostIP }] : [],
    podIP,
    podIPs: [{ ip: podIP }],
    startTime: at,
    qosClass: 'Burstable',
    containerStatuses: (Array.isArray(containers) ? containers.filter(isRecord) : []).map((c) => ({
      name: c['name'],
      image: c['image'] ?? '',
      imageID: '',
      containerID: `ferry://${randomUUID()}`,
      ready: true,
      started: true,
      restartCount: 0,
      state: { running: { startedAt: at } },
    })),
  };
}

export function nodeInternalIP(node: KubeObject | undefined): string {
  const addrs = getPath(node, 'status.addresses');
  const a = Array.isArray(addrs) ? addrs.find((x) => isRecord(x) && x['type'] === 'InternalIP') : undefined;
  return isRecord(a) && typeof a['address'] === 'string' ? a['address'] : '';
}

/**
 * Picks a free pod IP on `nodeName`: inside the node's spec.podCIDR
 * (10.244.<i>.0/24) when it has one, else in a /24 the allocator remembers
 * for that node. Host numbers already used by pods on the node are skipped.
 */
export class PodIPAllocator {
  private readonly subnets = new Map<string, number>();

  constructor(private readonly store: ObjectStore) {}

  allocate(nodeName: string): string {
    const prefix = this.prefixFor(nodeName);
    const used = new Set(
      this.store
        .list('pods', { fieldSelector: `spec.nodeName=${nodeName}` })
        .items.filter((p) => !isTerminated(p))
        .map((p) => getPath(p, 'status.podIP')),
    );
    for (let n = 2; n < 255; n++) if (!used.has(`${prefix}${n}`)) return `${prefix}${n}`;
    throw new Error(`no free pod IP left in ${prefix}0/24 on node ${nodeName}`);
  }

  private prefixFor(nodeName: string): string {
    const cidr = getPath(this.store.tryGet('nodes', nodeName), 'spec.podCIDR');
    const m = typeof cidr === 'string' ? /^(\d+\.\d+\.\d+\.)\d+\/24$/.exec(cidr) : null;
    if (m) return m[1]!;
    let idx = this.subnets.get(nodeName);
    if (idx === undefined) {
      const taken = new Set<number>(this.subnets.values());
      for (const n of this.store.list('nodes').items) {
        const c = getPath(n, 'spec.podCIDR');
        const mm = typeof c === 'string' ? /^10\.244\.(\d+)\./.exec(c) : null;
        if (mm) taken.add(Number(mm[1]));
      }
      idx = 1;
      while (taken.has(idx)) idx++;
      this.subnets.set(nodeName, idx);
    }
    return `10.244.${idx}.`;
  }
}

export class Kubelet {
  private readonly timers = new Map<string, TimerHandle>();
  private readonly watchers: Watcher[] = [];
  private readonly starting = new Set<string>();
  private readonly stopping = new Set<string>();
  /** Pods whose pending timer is the termination one (any other pending timer is a start). */
  private readonly terminating = new Set<string>();
  readonly ips: PodIPAllocator;

  constructor(private readonly store: ObjectStore, private readonly opts: KubeletOptions) {
    this.ips = new PodIPAllocator(store);
  }

  start(): void {
    this.watchers.push(
      this.store.watchRaw('pods', {}, (e) => {
        if (e.type === 'DELETED') {
          this.cancel(e.object.metadata.uid);
          // Removed at once (grace period 0, or by a finalizer-free force delete): its processes go too.
          const runtime = this.opts.runtime;
          // A pod this kubelet stopped itself is removed after its processes: nothing left to stop.
          if (this.stopping.delete(e.object.metadata.uid)) return;
          if (runtime?.handles(e.object)) {
            void runtime.stop(e.object).catch((err: unknown) => this.opts.log?.(`kubelet: stopping deleted pod ${e.object.metadata.name}: ${(err as Error).message}`));
          }
        } else this.sync(e.object);
      }),
      // A pod bound to a node that did not exist yet starts once the node appears.
      this.store.watchRaw('nodes', {}, (e) => {
        if (e.type !== 'ADDED') return;
        for (const pod of this.store.list('pods', { fieldSelector: `spec.nodeName=${e.object.metadata.name}` }).items) this.sync(pod);
      }),
    );
  }

  stop(): void {
    for (const w of this.watchers.splice(0)) w.stop();
    for (const h of this.timers.values()) this.opts.clock.clearTimeout(h);
    this.timers.clear();
  }

  private sync(pod: StoredObject): void {
    const uid = pod.metadata.uid;
    // A pod deleted while it waits to start is not started first: a real kubelet kills it now.
    if (pod.metadata.deletionTimestamp && this.timers.has(uid) && !this.terminating.has(uid)) this.cancel(uid);
    if (this.timers.has(uid)) return;
    if (pod.metadata.deletionTimestamp) {
      this.terminating.add(uid);
      this.after(uid, this.opts.terminationDelayMs, () => {
        this.terminating.delete(uid);
        this.terminate(pod.metadata.name, pod.metadata.namespace, uid);
      });
    } else if (this.shouldStart(pod)) {
      this.after(uid, this.opts.startDelayMs, () => this.run(pod.metadata.name, pod.metadata.namespace, uid));
    }
  }

  private after(uid: string, ms: number, fn: () => void): void {
    this.timers.set(
      uid,
      this.opts.clock.setTimeout(() => {
        this.timers.delete(uid);
        try {
          fn();
        } catch (err) {
          if (!isApiError(err) || err.code !== 404) this.opts.log?.(`kubelet: ${(err as Error).message}`);
        }
      }, ms),
    );
  }

  private cancel(uid: string): void {
    const h = this.timers.get(uid);
    if (h !== undefined) this.opts.clock.clearTimeout(h);
    this.timers.delete(uid);
    this.terminating.delete(uid);
  }

  private shouldStart(pod: StoredObject): boolean {
    const nodeName = getPath(pod, 'spec.nodeName');
    const phase = getPath(pod, 'status.phase') ?? 'Pending';
    return typeof nodeName === 'string' && nodeName !== '' && phase === 'Pending' && this.store.tryGet('nodes', nodeName) !== undefined;
  }

  private run(name: string, namespace: string | undefined, uid: string): void {
    const pod = this.store.tryGet('pods', name, namespace);
    if (!pod || pod.metadata.uid !== uid) return;
    if (pod.metadata.deletionTimestamp) return this.sync(pod);
    if (!this.shouldStart(pod)) return;
    const runtime = this.opts.runtime;
    if (runtime?.handles(pod)) {
      if (this.starting.has(uid)) return;
      this.starting.add(uid);
      void runtime.start(pod).then(
        () => {
          this.starting.delete(uid);
          this.markRunning(name, namespace, uid);
        },
        (err: unknown) => {
          this.starting.delete(uid);
          this.opts.log?.(`kubelet: pod ${namespace}/${name} failed to start: ${(err as Error).message}`);
          const now = this.store.tryGet('pods', name, namespace);
          if (!now || now.metadata.uid !== uid || now.metadata.deletionTimestamp) return;
          this.store.update('pods', { ...now, status: { ...(now['status'] as object), phase: 'Failed', reason: 'StartError', message: (err as Error).message } }, { subresource: 'status' });
        },
      );
      return;
    }
    this.markRunning(name, namespace, uid);
  }

  private markRunning(name: string, namespace: string | undefined, uid: string): void {
    const pod = this.store.tryGet('pods', name, namespace);
    if (!pod || pod.metadata.uid !== uid || pod.metadata.deletionTimestamp || !this.shouldStart(pod)) return;
    const nodeName = String(getPath(pod, 'spec.nodeName'));
    const status = runningPodStatus(pod, nodeInternalIP(this.store.tryGet('nodes', nodeName)), this.ips.allocate(nodeName), this.opts.clock.now());
    this.store.update('pods', { ...pod, status }, { subresource: 'status' });
    this.opts.log?.(`kubelet: pod ${namespace}/${name} running on ${nodeName}`);
  }

  private terminate(name: string, namespace: string | undefined, uid: string): void {
    const pod = this.store.tryGet('pods', name, namespace);
    if (!pod || pod.metadata.uid !== uid) return;
    const runtime = this.opts.runtime;
    if (runtime?.handles(pod)) {
      if (this.stopping.has(uid)) return;
      this.stopping.add(uid);
      // The pod object goes only once its processes are gone, as with a real kubelet.
      void runtime.stop(pod).catch((err: unknown) => this.opts.log?.(`kubelet: stopping pod ${namespace}/${name}: ${(err as Error).message}`)).finally(() => {
        try {
          // Its DELETED event clears `stopping`.
          this.store.delete('pods', name, { namespace, gracePeriodSeconds: 0, preconditions: { uid } });
        } catch (err) {
          this.stopping.delete(uid);
          if (!isApiError(err) || err.code !== 404) this.opts.log?.(`kubelet: ${(err as Error).message}`);
        }
      });
      return;
    }
    this.store.delete('pods', name, { namespace, gracePeriodSeconds: 0, preconditions: { uid } });
    // Still there (finalizers): it goes when they are removed.
  }
}
