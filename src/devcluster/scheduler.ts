import type { Clock, TimerHandle } from '../util/clock.js';
import { ApiError, Errors } from './errors.js';
import { clone, getPath, isRecord, type StoredObject } from './object.js';
import { isTerminated, placePod, PlacedPods } from './scheduling.js';
import { timestamp, type ObjectStore, type Watcher } from './store.js';

/**
 * The scheduler stand-in: binds pending pods to nodes with `placePod`, marks
 * the ones that fit nowhere PodScheduled=False/Unschedulable, and retries them
 * when pods or nodes change and every `intervalMs`.
 */
export interface SchedulerOptions { intervalMs: number; clock: Clock; log?: ((msg: string) => void) | undefined }

const DEFAULT_SCHEDULER = 'default-scheduler';

type Condition = { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string | null; lastProbeTime?: string | null };

function setCondition(pod: StoredObject, cond: Condition): StoredObject | undefined {
  const status = isRecord(pod['status']) ? pod['status'] : {};
  const conds = (Array.isArray(status['conditions']) ? status['conditions'] : []) as Condition[];
  const old = conds.find((c) => c.type === cond.type);
  if (old && old.status === cond.status && old.reason === cond.reason && old.message === cond.message) return undefined;
  const next = clone(pod);
  const nextCond = { ...cond, lastTransitionTime: old && old.status === cond.status ? old.lastTransitionTime ?? null : cond.lastTransitionTime ?? null };
  next['status'] = { ...status, conditions: [...conds.filter((c) => c.type !== cond.type), nextCond] };
  return next;
}

/**
 * Binds a pod to a node in one write (spec.nodeName and PodScheduled=True),
 * like the pods/binding subresource. 409 if the pod is already bound.
 */
export function bindPod(store: ObjectStore, namespace: string, name: string, nodeName: string, now: number): StoredObject {
  const pod = store.get('pods', name, namespace);
  const current = getPath(pod, 'spec.nodeName');
  if (current) throw Errors.conflict('pods', '', name, `pod ${name} is already assigned to node "${String(current)}"`);
  if (pod.metadata.deletionTimestamp) throw Errors.conflict('pods', '', name, `pod ${name} is being deleted, cannot be assigned to a host`);
  const bound = setCondition(pod, { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: timestamp(now) }) ?? clone(pod);
  bound['spec'] = { ...(isRecord(bound['spec']) ? bound['spec'] : {}), nodeName };
  return store.update('pods', bound, { withStatus: true });
}

export class Scheduler {
  private readonly watchers: Watcher[] = [];
  private pending = false;
  private immediate: NodeJS.Immediate | undefined;
  private timer: TimerHandle | undefined;
  private stopped = false;
  /** Pods waiting for a node (by uid), so that a busy cluster with nothing to place costs nothing. */
  private readonly waiting = new Set<string>();
  /**
   * Every pod and node as the store holds them (its own snapshots, never
   * changed in place), kept from the watches: a pass reads them without
   * listing (and so copying) the whole cluster each time.
   */
  private readonly pods = new Map<string, StoredObject>();
  private readonly nodes = new Map<string, StoredObject>();

  constructor(private readonly store: ObjectStore, private readonly opts: SchedulerOptions) {}

  start(): void {
    this.watchers.push(
      this.store.watchRaw('pods', {}, (e) => {
        const key = e.object.metadata.uid;
        if (e.type === 'DELETED') this.pods.delete(key);
        else this.pods.set(key, e.object);
        if (e.type !== 'DELETED' && this.isWaiting(e.object)) this.waiting.add(key);
        else this.waiting.delete(key);
        this.kick();
      }),
      this.store.watchRaw('nodes', {}, (e) => {
        if (e.type === 'DELETED') this.nodes.delete(e.object.metadata.uid);
        else this.nodes.set(e.object.metadata.uid, e.object);
        this.kick();
      }),
    );
    this.tick();
  }

  private isWaiting(pod: StoredObject): boolean {
    return (
      !getPath(pod, 'spec.nodeName') &&
      !pod.metadata.deletionTimestamp &&
      !isTerminated(pod) &&
      (getPath(pod, 'spec.schedulerName') ?? DEFAULT_SCHEDULER) === DEFAULT_SCHEDULER
    );
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watchers.splice(0)) w.stop();
    if (this.immediate) clearImmediate(this.immediate);
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
  }

  /** Schedules one pass soon; many changes in one turn of the event loop make one pass. */
  private kick(): void {
    if (this.pending || this.stopped || this.waiting.size === 0) return;
    this.pending = true;
    this.immediate = setImmediate(() => {
      this.pending = false;
      this.immediate = undefined;
      this.pass();
    });
  }

  private tick(): void {
    this.timer = this.opts.clock.setTimeout(() => {
      if (this.stopped) return;
      this.pass();
      this.tick();
    }, this.opts.intervalMs);
  }

  /** One scheduling attempt for every pending pod, oldest first. */
  pass(): void {
    if (this.waiting.size === 0) return;
    const waiting = [...this.waiting]
      .map((uid) => this.pods.get(uid))
      .filter((p): p is StoredObject => p !== undefined && this.isWaiting(p))
      .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp) || Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
    if (waiting.length === 0) return;
    const nodes = [...this.nodes.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const placed = new PlacedPods(nodes, this.pods.values());
    for (const pod of waiting) {
      const placement = placePod(pod, nodes, placed);
      try {
        if (placement.nodeName !== undefined) {
          const bound = bindPod(this.store, pod.metadata.namespace ?? 'default', pod.metadata.name, placement.nodeName, this.opts.clock.now());
          placed.bind(bound, placement.nodeName);
          this.opts.log?.(`scheduler: bound ${pod.metadata.namespace}/${pod.metadata.name} to ${placement.nodeName}`);
        } else {
          const next = setCondition(pod, {
            type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: placement.message, lastProbeTime: null, lastTransitionTime: timestamp(this.opts.clock.now()),
          });
          if (next) this.store.update('pods', next, { subresource: 'status' });
        }
      } catch (err) {
        // The pod changed or went away under us; the change's own event schedules another pass.
        if (!(err instanceof ApiError)) throw err;
      }
    }
  }
}
