import type { VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, MigrationPhase, QUEUED_CONDITION, type VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { JobStats } from '../hypervisor/driver.js';
import { describeApiError, isConflict, isNotFound, statusCode, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { isStalePlacement, STALE_PLACEMENT_CONDITION_REASON } from './stalePlacement.js';

export interface PhaseInfo {
  failureReason?: string | undefined;
  abortRequested?: boolean | undefined;
}

export interface StatusWriterOptions {
  clock?: Clock;
  /** Throws when this replica may no longer write (it lost the lease). */
  fence?: () => Promise<void>;
  /** Attempts per write before it is given up (and the caller retries later). Default 10. */
  attempts?: number;
  /** A HOLDABLE phase waits this many ms for the next step to share its write. Default 0 (none waits). */
  coalesceMs?: number;
  /** At most one progress write per this many ms; progress in between rides on phase writes. Default 1000. */
  progressIntervalMs?: number;
}

/**
 * Steps that only report on the way to the next one: a controller that
 * restarts before they are written resumes from the step before and replays
 * the same idempotent actions. Pending is what a VMIM without a phase already
 * means; Scheduled and PreparingTarget lead straight to TargetReady.
 */
const HOLDABLE: ReadonlySet<MigrationPhase> = new Set<MigrationPhase>(['Pending', 'Scheduled', 'PreparingTarget']);

interface PendingPhase {
  phase: MigrationPhase;
  info: PhaseInfo;
  at: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

type Known = { metadata?: { resourceVersion?: string }; status?: Status };

type Status = Record<string, unknown> & {
  phase?: string;
  phaseTransitionTimestamps?: Array<{ phase: string; phaseTransitionTimestamp: string }>;
  conditions?: Array<Record<string, unknown>>;
};

/**
 * Writes one VMIM's status, strictly in order (a later phase can never be
 * overwritten by an earlier write). Phase and condition writes are
 * read-modify-write against a fresh read, guarded by its resourceVersion (a
 * JSON-patch `test`), so they never clobber conditions or timestamps written by
 * someone else, and a write from a stale copy — or a stale leader — fails
 * instead of landing. A final phase already stored is never moved.
 * Failed writes are retried on the injected clock: status is the durable truth a restart resumes from.
 */
export class StatusWriter {
  private chain: Promise<void> = Promise.resolve();
  private readonly namespace: string;
  private readonly name: string;
  private written: string | undefined;
  private abortMarked = false;
  private readonly clock: Clock;
  private readonly fence: () => Promise<void>;
  private readonly attempts: number;
  /** The VMIM is confirmed gone (a 404 that a GET agreed with). */
  private gone = false;
  /** The object as our last write left it (resourceVersion and status), if nobody is known to have written since. */
  private known: Known | undefined;
  private readonly coalesceMs: number;
  private readonly progressIntervalMs: number;
  private pendingPhases: PendingPhase[] = [];
  private flushQueued = false;
  private flushTimer: unknown;
  private pendingProgress: Record<string, unknown> | undefined;
  private pendingBandwidth: number | undefined;
  private lastProgressWrite = -Infinity;
  private progressTimer: unknown;
  private progressQueued = false;

  constructor(
    private readonly kube: KubeClient,
    vmim: VirtualMachineInstanceMigration,
    private readonly log: Logger,
    private readonly vmi: () => VirtualMachineInstance | undefined,
    opts: StatusWriterOptions = {},
  ) {
    this.namespace = vmim.metadata.namespace ?? 'default';
    this.name = vmim.metadata.name;
    this.written = vmim.status?.phase || undefined;
    this.abortMarked = (vmim.status?.conditions ?? []).some((c) => c.type === 'migrationAbortRequested');
    this.clock = opts.clock ?? systemClock;
    this.fence = opts.fence ?? (async () => undefined);
    this.attempts = opts.attempts ?? 10;
    this.coalesceMs = opts.coalesceMs ?? 0;
    this.progressIntervalMs = opts.progressIntervalMs ?? 1000;
  }

  /**
   * Records a phase transition (stamped now). Transitions that arrive while an
   * earlier write is queued or in flight go out together in one write that
   * appends all their timestamps: the status shows every step. A HOLDABLE step
   * waits up to `coalesceMs` for the next one to share its write; any other
   * step (a point a restarted controller resumes from, or a final phase, whose
   * admission slot waits for it) is written at once, with whatever is held.
   */
  phase(phase: MigrationPhase, info: PhaseInfo = {}): Promise<void> {
    const at = new Date(this.clock.now()).toISOString();
    return new Promise<void>((resolve, reject) => {
      this.pendingPhases.push({ phase, info, at, resolve, reject });
      const final = FINAL_PHASES.has(phase);
      if (this.flushTimer !== undefined && (final || !HOLDABLE.has(phase))) {
        this.clock.clearTimeout(this.flushTimer);
        this.flushTimer = undefined;
        this.flushQueued = false;
      }
      if (this.flushQueued) return;
      this.flushQueued = true;
      const go = () => {
        this.flushTimer = undefined;
        void this.run(() => this.flushPhases()).catch(() => undefined);
      };
      if (final || this.coalesceMs <= 0 || !HOLDABLE.has(phase)) go();
      else this.flushTimer = this.clock.setTimeout(go, this.coalesceMs);
    });
  }

  /** Writes every phase recorded since the last flush in one read-modify-write. */
  private async flushPhases(): Promise<void> {
    this.flushQueued = false;
    const batch = this.pendingPhases.splice(0);
    if (batch.length === 0) return;
    const last = batch[batch.length - 1]!;
    const abort = batch.some((b) => b.info.abortRequested) && !this.abortMarked;
    const steps = batch.filter((b, i) => (i === 0 ? b.phase !== this.written : b.phase !== batch[i - 1]!.phase));
    const queued = this.pendingQueued;
    this.pendingQueued = undefined;
    try {
      if (steps.length === 0 && !abort && !queued) {
        for (const b of batch) b.resolve();
        return;
      }
      const progress = this.takeProgress();
      // This write shows where the migration is: the next progress write can wait its full interval.
      this.lastProgressWrite = this.clock.now();
      const failureReason = [...batch].reverse().find((b) => b.info.failureReason)?.info.failureReason;
      const landed = await this.update((cur) => {
        const next: Status = { ...cur };
        if (progress) next['progress'] = { ...((cur['progress'] as object | undefined) ?? {}), ...progress };
        if (abort) next.conditions = withCondition(next.conditions, condition('migrationAbortRequested', 'True', 'AbortRequested', 'The migration was asked to stop (VMIM deleted)', this.clock));
        // Why it waits is said while it waits; the write that takes it past Pending takes the condition away.
        if (last.phase === 'Pending' && queued) next.conditions = withCondition(next.conditions, condition(QUEUED_CONDITION, 'True', queued.reason, queued.message, this.clock));
        else if (last.phase !== 'Pending' && next.conditions?.some((c) => c['type'] === QUEUED_CONDITION)) next.conditions = next.conditions.filter((c) => c['type'] !== QUEUED_CONDITION);
        if (cur.phase === last.phase) return next;
        // Someone (a newer leader) already finished it, or took it further: a stale copy must not move it back.
        if (cur.phase && FINAL_PHASES.has(cur.phase as MigrationPhase)) return undefined;
        if (cur.phase && !FINAL_PHASES.has(last.phase) && phaseRank(cur.phase) > phaseRank(last.phase)) return undefined;
        next.phase = last.phase;
        next.phaseTransitionTimestamps = [...(cur.phaseTransitionTimestamps ?? []), ...steps.map((b) => ({ phase: b.phase, phaseTransitionTimestamp: b.at }))];
        if (FINAL_PHASES.has(last.phase)) {
          const ms = this.vmi()?.status?.migrationState;
          if (ms) next['migrationState'] = ms;
          if (last.phase === 'Failed' && failureReason) next.conditions = withCondition(next.conditions, condition('Failed', 'True', isStalePlacement(failureReason) ? STALE_PLACEMENT_CONDITION_REASON : 'MigrationFailed', failureReason, this.clock));
        }
        return next;
      });
      if (abort) this.abortMarked = true;
      this.written = last.phase;
      const phases = steps.map((b) => b.phase);
      if (landed) this.log.info({ phase: last.phase, ...(phases.length > 1 ? { phases } : {}), ...(failureReason ? { reason: failureReason } : {}) }, `migration phase ${last.phase}`);
      else this.log.warn({ phase: last.phase }, 'VMIM status already final or further on; phase not written');
      for (const b of batch) b.resolve();
    } catch (err) {
      for (const b of batch) b.reject(err);
      throw err;
    }
  }

  abortRequested(): void {
    if (this.abortMarked) return;
    this.abortMarked = true;
    void this.run(async () => {
      await this.update((cur) => ({ ...cur, conditions: withCondition(cur.conditions, condition('migrationAbortRequested', 'True', 'AbortRequested', 'The migration was asked to stop (VMIM deleted)', this.clock)) }));
    }).catch(() => undefined);
  }

  /** Why a queued migration waits, not written yet. */
  private pendingQueued: { reason: string; message: string } | undefined;

  /**
   * Why the migration is still Pending, as a `Queued` condition (what `kubectl
   * describe vmim` and `ferry status` show). The first reason rides on the held
   * Pending write (admission decides within that window), so saying it costs
   * nothing; a later one, or one with no phase write to ride on, is a write of
   * its own: the caller decides how often (session.ts). Past Pending it is moot.
   */
  queued(reason: string, message: string): void {
    if (this.written !== undefined && this.written !== 'Pending') return;
    this.pendingQueued = { reason, message };
    if (this.pendingPhases.length > 0) return; // a held phase write carries it
    void this.run(async () => {
      const q = this.pendingQueued;
      this.pendingQueued = undefined;
      if (!q) return;
      await this.update((cur) => {
        if (cur.phase && cur.phase !== 'Pending') return undefined;
        return { ...cur, conditions: withCondition(cur.conditions, condition(QUEUED_CONDITION, 'True', q.reason, q.message, this.clock)) };
      });
    }).catch(() => undefined);
  }

  /** Sets a condition (replacing one of the same type), keeping everyone else's. */
  condition(type: string, status: string, reason: string, message: string): void {
    void this.run(async () => {
      await this.update((cur) => ({ ...cur, conditions: withCondition(cur.conditions, condition(type, status, reason, message, this.clock)) }));
    }).catch(() => undefined);
  }

  /**
   * The latest progress. It is held until the next write of this migration
   * (a phase carries it) or, failing one, written within `progressIntervalMs`
   * of the last progress write: one write per interval, never one per report.
   */
  progress(stats: JobStats, opts: { hold?: boolean } = {}): void {
    if (this.written && FINAL_PHASES.has(this.written as MigrationPhase)) return;
    const eta = stats.memoryBandwidth > 0 && stats.phase === 'running' ? Math.ceil(stats.dataRemaining / stats.memoryBandwidth) : 0;
    this.pendingProgress = {
      dataTotal: stats.dataTotal,
      dataProcessed: stats.dataProcessed,
      dataRemaining: stats.dataRemaining,
      memoryBandwidth: stats.memoryBandwidth,
      dirtyRate: stats.dirtyRate,
      iteration: stats.iteration,
      bandwidthLimit: this.pendingBandwidth ?? stats.bandwidthLimit,
      etaSeconds: eta,
      updated: new Date(this.clock.now()).toISOString(),
    };
    this.pendingBandwidth = undefined;
    if (!opts.hold) this.scheduleProgress();
  }

  /** A new bandwidth limit: it goes out with the next progress write (not a write of its own). */
  bandwidth(bytesPerSecond: number): void {
    if (this.pendingProgress) this.pendingProgress['bandwidthLimit'] = bytesPerSecond;
    else this.pendingBandwidth = bytesPerSecond;
  }

  private scheduleProgress(): void {
    if (this.progressTimer !== undefined || this.progressQueued) return;
    const wait = Math.max(0, this.lastProgressWrite + this.progressIntervalMs - this.clock.now());
    const go = () => {
      this.progressTimer = undefined;
      this.progressQueued = true;
      void this.run(async () => {
        this.progressQueued = false;
        if (this.written && FINAL_PHASES.has(this.written as MigrationPhase)) return;
        const progress = this.takeProgress();
        if (progress) await this.progressWrite(progress);
      }).catch(() => undefined);
    };
    if (wait === 0) go();
    else this.progressTimer = this.clock.setTimeout(go, wait);
  }

  /** The progress not yet written, if any; taking it counts as writing it. */
  private takeProgress(): Record<string, unknown> | undefined {
    const p = this.pendingProgress ?? (this.pendingBandwidth !== undefined ? { bandwidthLimit: this.pendingBandwidth } : undefined);
    this.pendingProgress = undefined;
    this.pendingBandwidth = undefined;
    if (p) this.lastProgressWrite = this.clock.now();
    return p;
  }

  /** Drops timers (the migration is no longer followed). */
  close(): void {
    if (this.progressTimer !== undefined) this.clock.clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    if (this.flushTimer !== undefined) {
      // Nobody writes for this migration any more: phases still waiting for the window go out now.
      this.clock.clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      void this.run(() => this.flushPhases()).catch(() => undefined);
    }
  }

  /** Runs `task` in this migration's write order. */
  run(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.clock.setTimeout(r, ms));
  }

  /** A 404 is believed only when a GET of the object agrees (a missing /status route says 404 too). */
  private async confirmGone(): Promise<boolean> {
    try {
      await this.kube.getCustom(VMIM_RESOURCE, this.namespace, this.name);
      return false;
    } catch (err) {
      return isNotFound(err);
    }
  }

  /**
   * Read, change, write with the read's resourceVersion as precondition; a
   * conflict re-reads. `change` returning undefined means "leave it".
   * Returns false when nothing was written (gone, or left as it was).
   */
  private async update(change: (cur: Status) => Status | undefined): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      if (this.gone) return false;
      try {
        await this.fence();
        // The object as our last write left it saves a read; a stale copy fails the test and is read again.
        let obj = this.known;
        if (!obj) {
          try {
            obj = (await this.kube.getCustom(VMIM_RESOURCE, this.namespace, this.name)) as Known;
          } catch (err) {
            if (isNotFound(err)) {
              this.gone = true;
              return false;
            }
            throw err;
          }
        }
        const next = change({ ...(obj.status ?? {}) });
        if (!next) return false;
        this.known = undefined;
        const written = await this.kube.patchCustomStatusJson(VMIM_RESOURCE, this.namespace, this.name, [
          { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata?.resourceVersion },
          { op: 'add', path: '/status', value: next },
        ]);
        this.remember(written);
        return true;
      } catch (err) {
        this.known = undefined;
        if (isNotFound(err) && (await this.confirmGone())) {
          this.gone = true;
          return false;
        }
        const raced = isConflict(err) || statusCode(err) === 422;
        if (attempt >= this.attempts) {
          this.log.error({ err: describeApiError(err) }, 'giving up writing VMIM status');
          throw err;
        }
        // A race is re-read at once; anything else backs off on the injected clock.
        if (!raced) await this.sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    }
  }

  /** Keeps what the API server answered to our write, as the base of the next one. */
  private remember(written: unknown): void {
    const o = written as Known | undefined;
    this.known = o && typeof o === 'object' && o.metadata?.resourceVersion ? { metadata: { resourceVersion: o.metadata.resourceVersion }, status: o.status ?? {} } : undefined;
  }

  /**
   * Progress: one attempt, on the object as our last write left it (or a fresh
   * read), with its resourceVersion as a JSON-patch `test`. Anyone else's write
   * since — a newer leader's above all — makes it fail instead of landing, and
   * a final phase is never written over. Dropped when it cannot be written.
   */
  private async progressWrite(fields: Record<string, unknown>): Promise<void> {
    if (this.gone) return;
    await this.fence();
    try {
      let base = this.known;
      if (!base) base = (await this.kube.getCustom(VMIM_RESOURCE, this.namespace, this.name)) as Known;
      const cur = base.status;
      if (cur?.phase && FINAL_PHASES.has(cur.phase as MigrationPhase)) return;
      const progress = { ...((cur?.['progress'] as Record<string, unknown> | undefined) ?? {}), ...fields };
      this.known = undefined;
      this.remember(
        await this.kube.patchCustomStatusJson(VMIM_RESOURCE, this.namespace, this.name, [
          { op: 'test', path: '/metadata/resourceVersion', value: base.metadata?.resourceVersion },
          cur ? { op: 'add', path: '/status/progress', value: progress } : { op: 'add', path: '/status', value: { progress } },
        ]),
      );
    } catch (err) {
      this.known = undefined;
      if (isNotFound(err) && (await this.confirmGone())) this.gone = true;
      else this.log.debug({ err: describeApiError(err) }, 'progress not written (the next one carries the news)');
    }
  }
}

function withCondition(list: Array<Record<string, unknown>> | undefined, c: Record<string, unknown>): Array<Record<string, unknown>> {
  return [...(list ?? []).filter((x) => x['type'] !== c['type']), c];
}

function condition(type: string, status: string, reason: string, message: string, clock: Clock): Record<string, unknown> {
  const now = new Date(clock.now()).toISOString();
  return { type, status, reason, message, lastProbeTime: null, lastTransitionTime: now };
}

/** Where a phase stands in a migration's one-way order (unknown phases first). */
function phaseRank(phase: string): number {
  return MigrationPhase.options.indexOf(phase as MigrationPhase);
}
