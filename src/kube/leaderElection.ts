import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { describeApiError, isConflict, isNotFound } from './client.js';

/** The Lease calls the elector makes; `CoordinationV1Api` from client-node provides them. */
export interface LeaseApi {
  readNamespacedLease(param: { name: string; namespace: string }): Promise<V1Lease>;
  createNamespacedLease(param: { namespace: string; body: V1Lease }): Promise<V1Lease>;
  replaceNamespacedLease(param: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease>;
}

export interface LeaderElectionOptions {
  api: LeaseApi;
  namespace: string;
  /** Name of the Lease object, shared by all replicas. */
  name: string;
  /** Unique per process; see defaultIdentity(). */
  identity: string;
  /** How long a lease holds after its last renewal, as other candidates see it. Default 15 s. */
  leaseDurationMs?: number;
  /** A leader that could not renew for this long steps down; must be shorter than the lease. Default 10 s. */
  renewDeadlineMs?: number;
  /** Pause between attempts (to acquire, or to renew after a failure). Default 2 s. */
  retryPeriodMs?: number;
  clock?: Clock;
  log?: Logger;
  onStartedLeading?: () => void;
  /** `released` is true when this replica gave the lease up itself (release()). */
  onStoppedLeading?: (info: { reason: string; released: boolean }) => void;
  /** Whenever the observed holder changes (undefined = nobody). */
  onNewLeader?: (identity: string | undefined) => void;
}

/** hostname plus a random suffix: two processes on one host (or a restarted pod) never share it. */
export function defaultIdentity(): string {
  return `${hostname()}_${randomUUID().slice(0, 8)}`;
}

function timeOf(t: unknown): number | undefined {
  if (t instanceof Date) return t.getTime();
  if (typeof t === 'string') {
    const ms = Date.parse(t);
    return Number.isFinite(ms) ? ms : undefined;
  }
  return undefined;
}

/** What identifies one renewal of the lease, whoever made it. */
function recordKey(lease: V1Lease): string {
  const s = lease.spec ?? {};
  return JSON.stringify([s.holderIdentity ?? '', timeOf(s.renewTime), timeOf(s.acquireTime), s.leaseTransitions ?? 0, s.leaseDurationSeconds]);
}

/**
 * Leader election on a `coordination.k8s.io/v1` Lease, the way Kubernetes
 * controllers do it: a candidate takes the lease when nobody holds it or when
 * its holder has not renewed it for the lease duration; the holder renews it
 * periodically and steps down if it cannot renew within its renew deadline —
 * shorter than the lease, so it has stopped before anyone else can take over.
 *
 * Expiry is judged on this process's clock, from when it last saw the lease
 * change, never by comparing the holder's timestamps with our clock (clocks of
 * different nodes disagree). Every write carries the resourceVersion it read,
 * so two candidates can never both win: the loser gets a 409 and re-reads.
 */
export class LeaderElector {
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private leading = false;
  private stopped = false;
  private started = false;
  private timer: unknown;
  private deadline: unknown;
  private inflight: Promise<void> | undefined;
  private observedKey: string | undefined;
  private observedAt = 0;
  private observedHolder: string | undefined;
  /** leaseTransitions of the lease as this replica last held it. */
  private heldEpoch = 0;
  /** When this replica last renewed the lease (its own clock). */
  private renewedAt: number | undefined;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = (opts.log ?? silentLogger).child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
    if (!opts.identity) throw new Error('leader election needs a non-empty identity');
    if (!(this.retryMs > 0 && this.retryMs < this.renewDeadlineMs && this.renewDeadlineMs < this.leaseMs)) {
      throw new Error(
        `leader election timings must satisfy 0 < retryPeriod < renewDeadline < leaseDuration (got ${this.retryMs} ms, ${this.renewDeadlineMs} ms, ${this.leaseMs} ms)`,
      );
    }
  }

  /** Starts competing for the lease. */
  start(): void {
    if (this.started) throw new Error('leader elector already started');
    this.started = true;
    this.schedule(0);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /**
   * Leading, and renewed within the renew deadline by this replica's clock.
   * Checked before each batch of writes: a process that was paused (SIGSTOP, a
   * blocked event loop) past its deadline fails this at once on waking, even
   * before its step-down timer has had a chance to run.
   */
  holdsLease(): boolean {
    return this.leading && this.renewedAt !== undefined && this.clock.now() - this.renewedAt < this.renewDeadlineMs;
  }

  /**
   * The fencing epoch: the Lease's leaseTransitions as this replica holds it.
   * Every takeover by another replica raises it, so a handler that has obeyed a
   * newer leader refuses this one's commands once it is stale.
   */
  epoch(): number {
    return this.heldEpoch;
  }

  /** The holder last seen on the lease (this replica included), if any. */
  leader(): string | undefined {
    return this.observedHolder;
  }

  /**
   * Stops competing and, when leading, gives the lease up at once (empty
   * holder) so a standby takes over without waiting for it to expire. Call on
   * shutdown, after the work that needed the lease has stopped.
   */
  async release(): Promise<void> {
    const wasLeading = await this.halt();
    // Also when a last attempt won the lease just as we stopped: don't leave it held.
    if (this.observedHolder === this.opts.identity) {
      try {
        const lease = await this.opts.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
        if (lease.spec?.holderIdentity === this.opts.identity) {
          const now = new V1MicroTime(this.clock.now());
          await this.opts.api.replaceNamespacedLease({
            name: this.opts.name,
            namespace: this.opts.namespace,
            body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now } },
          });
          this.observedHolder = undefined;
          this.log.info('released the leader lease');
        }
      } catch (err) {
        this.log.warn({ err: describeApiError(err) }, 'could not release the leader lease; it expires on its own');
      }
    }
    if (wasLeading) this.stepDown('released the lease', true);
  }

  /** Stops competing without touching the lease (as a crash would): another replica takes over once it expires. */
  async stop(): Promise<void> {
    if (await this.halt()) this.stepDown('elector stopped', false);
  }

  private async halt(): Promise<boolean> {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    await this.inflight;
    this.clock.clearTimeout(this.deadline);
    return this.leading;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.inflight = this.round().finally(() => (this.inflight = undefined));
    }, ms);
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    // The lease is ours from when the renewal was *sent*, not from when its answer was read: an answer
    // read after a pause (SIGSTOP, a blocked loop) must not make a lease others have since taken look fresh
    // (chaos seed 1000: a replica stopped with a renewal in flight woke, counted it as new, and wrote for a second).
    const sentAt = this.clock.now();
    let held = false;
    try {
      held = await this.tryAcquireOrRenew();
    } catch (err) {
      this.log.warn({ err: describeApiError(err), leading: this.leading }, this.leading ? 'renewing the leader lease failed' : 'reading the leader lease failed');
    }
    if (this.stopped) return;
    if (held && this.clock.now() - sentAt >= this.renewDeadlineMs) {
      // Others may have taken the lease meanwhile: this answer proves nothing about now.
      this.log.warn({ tookMs: this.clock.now() - sentAt }, 'lease renewal answered only after the renew deadline; not counted');
      held = false;
      if (this.leading) this.stepDown(`the lease renewal was answered only after the renew deadline (${this.renewDeadlineMs} ms)`, false);
    }
    if (held) {
      this.renewedAt = sentAt;
      this.armDeadline(sentAt);
      if (!this.leading) {
        this.leading = true;
        this.log.info('became leader');
        this.opts.onStartedLeading?.();
      }
      // Renew well inside the deadline, so one failed attempt still leaves time for retries.
      this.schedule(this.renewDeadlineMs / 2);
      return;
    }
    if (this.leading && this.observedHolder !== this.opts.identity && this.observedHolder !== undefined) {
      this.stepDown(`lease is now held by ${this.observedHolder}`, false);
    }
    this.schedule(this.retryMs);
  }

  private armDeadline(from: number): void {
    this.clock.clearTimeout(this.deadline);
    this.deadline = this.clock.setTimeout(() => {
      if (this.leading) this.stepDown(`could not renew the lease within ${this.renewDeadlineMs} ms`, false);
    }, Math.max(0, from + this.renewDeadlineMs - this.clock.now()));
  }

  private stepDown(reason: string, released: boolean): void {
    this.clock.clearTimeout(this.deadline);
    if (!this.leading) return;
    this.leading = false;
    (released ? this.log.info.bind(this.log) : this.log.warn.bind(this.log))({ reason }, 'stopped leading');
    this.opts.onStoppedLeading?.({ reason, released });
  }

  private observe(lease: V1Lease): void {
    const key = recordKey(lease);
    if (key !== this.observedKey) {
      this.observedKey = key;
      this.observedAt = this.clock.now();
    }
    const holder = lease.spec?.holderIdentity || undefined;
    if (holder === this.opts.identity) this.heldEpoch = lease.spec?.leaseTransitions ?? 0;
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      if (holder !== this.opts.identity) this.log.info({ holder: holder ?? '(none)' }, 'leader changed');
      this.opts.onNewLeader?.(holder);
    }
  }

  /** One attempt; true when this replica holds a freshly renewed lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, name, namespace, identity } = this.opts;
    // A conflict means someone wrote in between: look again once, right away.
    for (let attempt = 0; attempt < 2; attempt++) {
      let lease: V1Lease;
      try {
        lease = await api.readNamespacedLease({ name, namespace });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        try {
          const created = await api.createNamespacedLease({ namespace, body: this.record(undefined) });
          this.observe(created);
          return true;
        } catch (e) {
          if (isConflict(e)) continue; // another candidate created it first
          throw e;
        }
      }
      this.observe(lease);
      const holder = lease.spec?.holderIdentity || undefined;
      if (holder !== undefined && holder !== identity) {
        const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000 || this.leaseMs;
        if (this.clock.now() < this.observedAt + durationMs) return false;
        this.log.info({ holder }, 'leader lease expired; taking it over');
      }
      try {
        const updated = await api.replaceNamespacedLease({ name, namespace, body: this.record(lease) });
        this.observe(updated);
        return true;
      } catch (e) {
        if (isConflict(e)) continue;
        throw e;
      }
    }
    return false;
  }

  /** The lease as this replica writes it: held by us, renewed now. */
  private record(current: V1Lease | undefined): V1Lease {
    const spec = current?.spec ?? {};
    const ours = spec.holderIdentity === this.opts.identity;
    const now = new V1MicroTime(this.clock.now());
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: current?.metadata ?? { name: this.opts.name, namespace: this.opts.namespace },
      spec: {
        ...spec,
        holderIdentity: this.opts.identity,
        leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseMs / 1000)),
        acquireTime: ours && spec.acquireTime ? spec.acquireTime : now,
        renewTime: now,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (ours || !current ? 0 : 1),
      },
    };
  }
}
