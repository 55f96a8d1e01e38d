import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import type { JobStats, MigrationJob, MigrationMode, MigrationOutcome } from '../driver.js';
import { ConnectionClosedError, isLibvirtError } from './errors.js';
import { emptyJobStats, jobErrorMessage, toJobStats, type LibvirtJobStats } from './jobStats.js';
import { bandwidthToMiB } from './bandwidth.js';
import { DomainStateCode, ErrorCode, JobStatsFlag, JobType, paramsToRecord, ShutoffReason, type DomainRef } from './protocol.js';
import type { LibvirtRemote } from './remote.js';

/** How long an attached job looks for libvirt's record of a job that just ended. */
const RECORD_WAIT_MS = 5000;
/** How long a job whose perform call lost its connection tries to reach libvirtd again before it says it cannot tell. */
const RECHECK_WINDOW_MS = 30_000;

export interface MigrationJobDeps {
  /** The connection for statistics and controls: the driver's shared one, reopened when it went away. */
  remote: () => Promise<LibvirtRemote>;
  dom: DomainRef;
  migrationId: string;
  node: string;
  clock: Clock;
  pollIntervalMs: number;
  log: Logger;
  /** Bytes/s currently applied (0 = unlimited). */
  bandwidthLimit: number;
  /** The migration was started with VIR_MIGRATE_POSTCOPY, so the switch is allowed. */
  postCopyAllowed: boolean;
  mode: MigrationMode;
  /** Called once, right after `done` settles. */
  onSettled?: (outcome: MigrationOutcome) => void;
  /** How long to try reaching libvirtd again after the perform call's connection broke (default 30 s). */
  recheckWindowMs?: number;
}

/**
 * One outgoing libvirt migration. Two ways to learn how it ends:
 * - `started`: this process issued the blocking peer-to-peer perform call, whose
 *   return (or error) is the end;
 * - `attached`: another process (a handler before its restart) issued it, so the
 *   end is seen by polling: the active job disappears and libvirt's record of
 *   the completed job says how it went.
 * Either way job statistics are polled every `pollIntervalMs`, and the controls
 * go over the same multiplexed connection as the blocked perform call.
 */
export class LibvirtMigrationJob implements MigrationJob {
  readonly migrationId: string;
  readonly done: Promise<MigrationOutcome>;
  private resolveDone!: (o: MigrationOutcome) => void;
  private outcome: MigrationOutcome | null = null;
  private latest: JobStats;
  private mode: MigrationMode;
  private bandwidthLimit: number;
  private abortReason: string | null = null;
  private timer: TimerHandle | null = null;
  private finishing = false;

  /** `attached`: the end is learned by polling (set too when a perform call lost its connection). */
  private constructor(private readonly d: MigrationJobDeps, private attached: boolean) {
    this.migrationId = d.migrationId;
    this.mode = d.mode;
    this.bandwidthLimit = d.bandwidthLimit;
    this.latest = emptyJobStats('running', this.ctx());
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
  }

  /** A migration whose perform call this process has just sent. */
  static started(deps: MigrationJobDeps, perform: Promise<void>): LibvirtMigrationJob {
    const job = new LibvirtMigrationJob(deps, false);
    perform.then(
      () => job.finishAfterPerform(null),
      (err: unknown) => job.finishAfterPerform(err),
    );
    job.schedulePoll();
    return job;
  }

  /** A migration already running in libvirtd, started by someone else. */
  static attached(deps: MigrationJobDeps, current: JobStats): LibvirtMigrationJob {
    const job = new LibvirtMigrationJob(deps, true);
    job.latest = current;
    job.schedulePoll();
    return job;
  }

  get settled(): boolean {
    return this.outcome !== null;
  }

  async stats(): Promise<JobStats> {
    if (this.outcome) return this.outcome.stats;
    await this.refresh();
    return this.outcome ? (this.outcome as MigrationOutcome).stats : this.latest;
  }

  async setBandwidth(bytesPerSecond: number): Promise<void> {
    const mib = bandwidthToMiB(bytesPerSecond);
    this.assertRunning('set the bandwidth of');
    await (await this.d.remote()).migrateSetMaxSpeed(this.d.dom, mib);
    this.bandwidthLimit = bytesPerSecond;
    this.latest = { ...this.latest, bandwidthLimit: bytesPerSecond };
    this.d.log.info({ migrationId: this.migrationId, domain: this.d.dom.name, bandwidth: bytesPerSecond, mib }, 'migration bandwidth changed');
  }

  async setMaxDowntime(ms: number): Promise<void> {
    if (!Number.isInteger(ms) || ms <= 0) throw new Error(`max downtime must be a positive whole number of ms, got ${ms}`);
    this.assertRunning('set the max downtime of');
    await (await this.d.remote()).migrateSetMaxDowntime(this.d.dom, ms);
    this.d.log.info({ migrationId: this.migrationId, domain: this.d.dom.name, maxDowntimeMs: ms }, 'migration max downtime changed');
  }

  async startPostCopy(): Promise<void> {
    if (!this.d.postCopyAllowed) {
      throw new Error(`migration ${this.migrationId} of ${this.d.dom.name} was started without post-copy enabled; cannot switch to post-copy`);
    }
    this.assertRunning('switch to post-copy');
    await (await this.d.remote()).migrateStartPostCopy(this.d.dom);
    this.mode = 'PostCopy';
    this.latest = { ...this.latest, mode: 'PostCopy' };
    await this.awaitPostCopySwitch();
    this.d.log.info({ migrationId: this.migrationId, domain: this.d.dom.name }, 'migration switched to post-copy');
  }

  /**
   * QEMU accepts the switch at once but makes it at its next round; until
   * then an abort would still cancel the migration. Waiting for the source to
   * pause for post-copy makes "switched" mean the guest now runs on the target.
   */
  private async awaitPostCopySwitch(timeoutMs = 5000): Promise<void> {
    const deadline = this.d.clock.now() + timeoutMs;
    while (!this.outcome && this.d.clock.now() < deadline) {
      try {
        // Paused for post-copy, or already shut off because it completed.
        const { state } = await (await this.d.remote()).getState(this.d.dom);
        if (state !== DomainStateCode.RUNNING) return;
      } catch {
        return;
      }
      await new Promise<void>((resolve) => this.d.clock.setTimeout(resolve, 50));
    }
  }

  async abort(reason: string): Promise<void> {
    if (this.outcome) return;
    const previous = this.abortReason;
    this.abortReason = reason;
    try {
      await (await this.d.remote()).abortJob(this.d.dom);
      this.d.log.info({ migrationId: this.migrationId, domain: this.d.dom.name, reason }, 'migration abort requested');
    } catch (err) {
      // "no job is active": it ended between our last look and the request.
      if (isLibvirtError(err, ErrorCode.OPERATION_INVALID) && !(await this.jobActive())) {
        await this.done;
        return;
      }
      this.abortReason = previous;
      throw new Error(`aborting migration ${this.migrationId} of ${this.d.dom.name} on ${this.d.node} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The driver is closing: stop watching. The job goes on in libvirtd, so how it ends is not known here. */
  abandon(reason: string): void {
    this.settle({ status: 'unknown', reason, stats: { ...this.latest } });
  }

  private ctx() {
    return { mode: this.mode, bandwidthLimit: this.bandwidthLimit };
  }

  private assertRunning(what: string): void {
    if (this.outcome) throw new Error(`cannot ${what} migration ${this.migrationId} of ${this.d.dom.name}: it already ended (${this.outcome.status})`);
  }

  private schedulePoll(): void {
    if (this.outcome) return;
    this.timer = this.d.clock.setTimeout(() => {
      this.timer = null;
      void this.refresh().finally(() => this.schedulePoll());
    }, this.d.pollIntervalMs);
  }

  private async fetch(flags = 0): Promise<LibvirtJobStats> {
    const reply = await (await this.d.remote()).getJobStats(this.d.dom, flags);
    return { type: reply.type, params: paramsToRecord(reply.params) };
  }

  private async jobActive(): Promise<boolean> {
    try {
      const s = await this.fetch();
      return s.type === JobType.BOUNDED || s.type === JobType.UNBOUNDED;
    } catch {
      return false;
    }
  }

  /** One look at the live job. For an attached job, no job any more means it ended. */
  private async refresh(): Promise<void> {
    if (this.outcome) return;
    let s: LibvirtJobStats;
    try {
      s = await this.fetch();
    } catch (err) {
      if (this.attached && (isLibvirtError(err, ErrorCode.NO_DOMAIN) || isLibvirtError(err, ErrorCode.OPERATION_INVALID))) {
        await this.finishFromRecord();
      } else {
        this.d.log.debug({ migrationId: this.migrationId, domain: this.d.dom.name, err: (err as Error).message }, 'job stats poll failed');
      }
      return;
    }
    if (s.type === JobType.BOUNDED || s.type === JobType.UNBOUNDED) {
      this.latest = toJobStats(s, this.ctx(), 'running');
    } else if (this.attached) {
      await this.finishFromRecord();
    }
  }

  /** libvirt's record of the last completed job (kept for later readers too). */
  private async completedRecord(): Promise<LibvirtJobStats | null> {
    try {
      const s = await this.fetch(JobStatsFlag.COMPLETED | JobStatsFlag.KEEP_COMPLETED);
      return s.type === JobType.NONE ? null : s;
    } catch {
      return null;
    }
  }

  private async finishAfterPerform(err: unknown): Promise<void> {
    if (this.outcome || this.finishing) return;
    this.finishing = true;
    try {
      if (err === null) {
        const record = await this.completedRecord();
        const stats = record ? toJobStats(record, this.ctx(), 'completed') : { ...this.latest, phase: 'completed' as const };
        if (stats.downtimeMs === undefined) this.d.log.warn({ migrationId: this.migrationId, domain: this.d.dom.name }, 'libvirt kept no record of the completed migration; downtime unknown');
        this.settle({ status: 'completed', mode: this.mode, downtimeMs: stats.downtimeMs ?? 0, stats });
        return;
      }
      if (err instanceof ConnectionClosedError) {
        this.finishing = false;
        await this.recheck(err);
        return;
      }
      const message = isLibvirtError(err) ? err.libvirtMessage : (err as Error).message ?? String(err);
      const record = await this.completedRecord();
      const aborted = this.abortReason !== null || isLibvirtError(err, ErrorCode.OPERATION_ABORTED);
      const phase = aborted ? 'aborted' as const : 'failed' as const;
      const stats = record ? toJobStats(record, this.ctx(), phase) : { ...this.latest, phase };
      this.settle(aborted
        ? { status: 'aborted', reason: this.abortReason ?? message, stats }
        : { status: 'failed', reason: message, stats });
    } catch (e) {
      this.settle({ status: 'unknown', reason: `could not determine how migration ${this.migrationId} of ${this.d.dom.name} on ${this.d.node} ended: ${(e as Error).message}`, stats: { ...this.latest } });
    }
  }

  /**
   * The perform call's connection broke, which says nothing about the
   * migration: a peer-to-peer job goes on inside libvirtd. Reach the daemon
   * again and look: a job still running is watched by polling from now on; one
   * that ended is judged from libvirt's record and the domain's state. Only
   * when libvirtd cannot be reached within the window, or the domain is gone,
   * is the outcome `unknown` (never `failed`: the guest may be on the target).
   */
  private async recheck(lost: Error): Promise<void> {
    const { clock, log, dom, node } = this.d;
    const fields = { migrationId: this.migrationId, domain: dom.name, node, err: lost.message };
    log.warn(fields, 'lost the connection of the migration call; looking at the job again');
    const windowMs = this.d.recheckWindowMs ?? RECHECK_WINDOW_MS;
    const deadline = clock.now() + windowMs;
    let gap = 200;
    let lastError = lost.message;
    while (!this.outcome) {
      try {
        const live = await this.fetch();
        if (live.type === JobType.BOUNDED || live.type === JobType.UNBOUNDED) {
          this.attached = true;
          this.latest = toJobStats(live, this.ctx(), 'running');
          log.warn(fields, 'the migration still runs in libvirtd; watching it by polling');
          return;
        }
        await this.finishFromRecord();
        return;
      } catch (err) {
        if (isLibvirtError(err, ErrorCode.NO_DOMAIN)) {
          this.settle({ status: 'unknown', reason: `lost the connection to libvirtd on ${node} while migrating ${dom.name}, and the domain is gone from there now; cannot tell whether the migration completed`, stats: { ...this.latest } });
          return;
        }
        lastError = (err as Error).message;
      }
      if (clock.now() + gap > deadline) break;
      await new Promise<void>((resolve) => clock.setTimeout(resolve, gap));
      gap = Math.min(gap * 2, 2000);
    }
    this.settle({
      status: 'unknown',
      reason: `lost the connection to libvirtd on ${node} while migrating ${dom.name} and could not reach it again within ${windowMs / 1000} s (${lastError}); the migration may have completed`,
      stats: { ...this.latest },
    });
  }

  /**
   * Attached job: the live job looked gone. libvirt stores its record of the
   * finished job a moment after the domain stops (the confirm phase), so look
   * for it for a while; if the job turns out to be still active, keep polling.
   */
  private async finishFromRecord(): Promise<void> {
    if (this.outcome || this.finishing) return;
    this.finishing = true;
    const deadline = this.d.clock.now() + RECORD_WAIT_MS;
    let record: LibvirtJobStats | null = null;
    for (;;) {
      record = await this.completedRecord();
      if (record || this.outcome) break;
      if (await this.jobActive()) {
        this.finishing = false;
        return;
      }
      if (this.d.clock.now() >= deadline) break;
      await new Promise<void>((resolve) => this.d.clock.setTimeout(resolve, 200));
    }
    if (this.outcome) return;
    if (!record) {
      const state = await this.d.remote().then((r) => r.getState(this.d.dom)).catch(() => null);
      if (state?.state === DomainStateCode.SHUTOFF && state.reason === ShutoffReason.MIGRATED) {
        this.d.log.warn({ migrationId: this.migrationId, domain: this.d.dom.name }, 'migration completed but libvirt kept no record; downtime unknown');
        this.settle({ status: 'completed', mode: this.mode, downtimeMs: 0, stats: { ...this.latest, phase: 'completed', dataRemaining: 0 } });
        return;
      }
      const reason = `the migration job of ${this.d.dom.name} on ${this.d.node} ended and libvirt kept no record of how` +
        (state ? ` (domain state ${state.state}/${state.reason})` : '');
      // Still running here: the guest did not leave. Anything else (gone, paused) may mean it is on the target.
      if (state?.state === DomainStateCode.RUNNING) this.settle({ status: 'failed', reason, stats: { ...this.latest, phase: 'failed' } });
      else this.settle({ status: 'unknown', reason: `${reason}; cannot tell whether it completed`, stats: { ...this.latest } });
      return;
    }
    if (record.type === JobType.COMPLETED) {
      const stats = toJobStats(record, this.ctx(), 'completed');
      this.settle({ status: 'completed', mode: this.mode, downtimeMs: stats.downtimeMs ?? 0, stats });
    } else if (record.type === JobType.CANCELLED) {
      this.settle({ status: 'aborted', reason: this.abortReason ?? jobErrorMessage(record) ?? 'migration job was cancelled', stats: toJobStats(record, this.ctx(), 'aborted') });
    } else {
      this.settle({ status: 'failed', reason: jobErrorMessage(record) ?? 'migration job failed', stats: toJobStats(record, this.ctx(), 'failed') });
    }
  }

  private settle(outcome: MigrationOutcome): void {
    if (this.outcome) return;
    this.outcome = outcome;
    if (this.timer !== null) {
      this.d.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    this.d.log.info({
      migrationId: this.migrationId, domain: this.d.dom.name, status: outcome.status,
      ...(outcome.status === 'completed' ? { downtimeMs: outcome.downtimeMs, mode: outcome.mode } : { reason: outcome.reason }),
    }, 'migration ended');
    this.resolveDone(outcome);
    this.d.onSettled?.(outcome);
  }
}
