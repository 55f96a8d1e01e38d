import type { VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, type MigrationPhase, type VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { JobStats } from '../hypervisor/driver.js';
import { describeApiError, isConflict, isNotFound, statusCode, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';

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
  }

  phase(phase: MigrationPhase, info: PhaseInfo = {}): Promise<void> {
    return this.run(async () => {
      const abort = info.abortRequested && !this.abortMarked;
      if (this.written === phase && !abort) return;
      const landed = await this.update((cur) => {
        const next: Status = { ...cur };
        if (abort) next.conditions = withCondition(next.conditions, condition('migrationAbortRequested', 'True', 'AbortRequested', 'The migration was asked to stop (VMIM deleted)', this.clock));
        if (cur.phase === phase) return next;
        // Someone (a newer leader) already finished it: a stale copy must not move it back.
        if (cur.phase && FINAL_PHASES.has(cur.phase as MigrationPhase)) return undefined;
        next.phase = phase;
        next.phaseTransitionTimestamps = [...(cur.phaseTransitionTimestamps ?? []), { phase, phaseTransitionTimestamp: new Date(this.clock.now()).toISOString() }];
        if (FINAL_PHASES.has(phase)) {
          const ms = this.vmi()?.status?.migrationState;
          if (ms) next['migrationState'] = ms;
          if (phase === 'Failed' && info.failureReason) next.conditions = withCondition(next.conditions, condition('Failed', 'True', 'MigrationFailed', info.failureReason, this.clock));
        }
        return next;
      });
      if (abort) this.abortMarked = true;
      this.written = phase;
      if (landed) this.log.info({ phase, ...(info.failureReason ? { reason: info.failureReason } : {}) }, `migration phase ${phase}`);
      else this.log.warn({ phase }, 'VMIM status already final; phase not written');
    });
  }

  abortRequested(): void {
    if (this.abortMarked) return;
    this.abortMarked = true;
    void this.run(async () => {
      await this.update((cur) => ({ ...cur, conditions: withCondition(cur.conditions, condition('migrationAbortRequested', 'True', 'AbortRequested', 'The migration was asked to stop (VMIM deleted)', this.clock)) }));
    }).catch(() => undefined);
  }

  /** Sets a condition (replacing one of the same type), keeping everyone else's. */
  condition(type: string, status: string, reason: string, message: string): void {
    void this.run(async () => {
      await this.update((cur) => ({ ...cur, conditions: withCondition(cur.conditions, condition(type, status, reason, message, this.clock)) }));
    }).catch(() => undefined);
  }

  /** Resolves once written or dropped (progress is lossy: the next one carries the news). */
  progress(stats: JobStats): Promise<void> {
    return this.run(async () => {
      if (this.written && FINAL_PHASES.has(this.written as MigrationPhase)) return;
      const eta = stats.memoryBandwidth > 0 && stats.phase === 'running' ? Math.ceil(stats.dataRemaining / stats.memoryBandwidth) : 0;
      await this.progressWrite({
        dataTotal: stats.dataTotal,
        dataProcessed: stats.dataProcessed,
        dataRemaining: stats.dataRemaining,
        memoryBandwidth: stats.memoryBandwidth,
        dirtyRate: stats.dirtyRate,
        iteration: stats.iteration,
        bandwidthLimit: stats.bandwidthLimit,
        etaSeconds: eta,
        updated: new Date(this.clock.now()).toISOString(),
      });
    }).catch(() => undefined);
  }

  bandwidth(bytesPerSecond: number): Promise<void> {
    return this.run(() => this.progressWrite({ bandwidthLimit: bytesPerSecond })).catch(() => undefined);
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
