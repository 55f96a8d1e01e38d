import type { JetStreamClient, NatsConnection } from 'nats';
import type { Clock } from '../util/clock.js';
import type { HypervisorDriver, JobPhase, JobStats, MigrationJob, MigrationOutcome } from '../hypervisor/driver.js';
import type { CommandReply, CommandRequest, JobSummary, MigrationRef, ResultMessage } from '../bus/protocol.js';
import { HandlerError } from '../bus/rpc.js';
import { publishProgress } from '../bus/progress.js';
import { publishResult } from '../bus/results.js';
import type { Logger } from '../util/log.js';
import type { Span } from '@opentelemetry/api';
import { endJobSpan, startJobSpan } from '../tracing/migration.js';
import { jobKey, refFields } from './jobKey.js';
import type { JobRecordStore, SourceJobRecord } from './jobRecords.js';
import { isRecoverable, type RecoverableDriver, type RecoveringSource } from './recovery.js';
import { statsMessage } from './statsMessage.js';
import { tombstonesToPrune, TOMBSTONE_LIMITS, type TombstoneLimits } from './tombstones.js';

interface SourceJob {
  ref: MigrationRef;
  domain: string;
  targetNode: string;
  startedAt: string;
  state: 'starting' | JobPhase | 'unknown';
  /** Settles when the driver has (or has not) started the migration; repeats wait on it. */
  started: Promise<void>;
  job?: MigrationJob;
  /** The hypervisor job's span (src/tracing), open while the job runs. */
  span?: Span | undefined;
  stats?: JobStats;
  progressTimer?: unknown;
  /** When the outcome became known (clock ms): a finished entry is a tombstone. */
  finishedAt?: number;
  /** The outcome is being recorded and published. */
  concluding?: boolean;
  /** forget-job came: the record goes once concluding is over. */
  forgotten?: boolean;
}

export interface SourceRoleDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  node: string;
  driver: HypervisorDriver;
  clock: Clock;
  progressIntervalMs: number;
  log: Logger;
  /** Aborted when the handler stops: ends progress and result retries. */
  stopped: AbortSignal;
  /**
   * Where this node's outgoing migrations are recorded until their outcome is
   * published, so a restarted handler can take them over (see recovery.ts).
   */
  records?: JobRecordStore;
  /** How long and how many finished jobs are kept when the controller never forgets them. */
  tombstoneLimits?: TombstoneLimits;
}

/**
 * The source side of migrations on one node: starts them, steers them while they
 * run, reports progress, and publishes how each one ended.
 */
export class SourceRole implements RecoveringSource {
  private readonly jobs = new Map<string, SourceJob>();
  private readonly settling = new Set<Promise<void>>();
  /** Set when the driver's migrations outlive this process (they can be looked at again). */
  private readonly recoverable: RecoverableDriver | undefined;

  constructor(private readonly d: SourceRoleDeps) {
    this.recoverable = isRecoverable(d.driver) ? d.driver : undefined;
  }

  async start(req: CommandRequest<'start-source'>): Promise<CommandReply<'start-source'>> {
    const key = jobKey(req);
    const repeat = async (known: SourceJob): Promise<CommandReply<'start-source'>> => {
      await known.started;
      return { ok: true, state: known.state === 'starting' ? 'running' : known.state };
    };
    const known = this.jobs.get(key);
    if (known) return repeat(known);
    await this.refuseSecondCopy(req);
    // A repeat of this request may have got in while we looked.
    const raced = this.jobs.get(key);
    if (raced) return repeat(raced);
    for (const other of this.jobs.values()) {
      if (other.domain === req.guest.name && (other.state === 'starting' || other.state === 'running')) {
        throw new HandlerError('conflict', `${other.domain} on ${this.d.node} is already migrating (migration ${other.ref.migrationUid} attempt ${other.ref.attempt})`);
      }
    }
    const entry: SourceJob = {
      ref: { migrationUid: req.migrationUid, attempt: req.attempt, vmi: req.vmi },
      domain: req.guest.name,
      targetNode: req.targetNode,
      startedAt: new Date(this.d.clock.now()).toISOString(),
      state: 'starting',
      started: Promise.resolve(),
    };
    this.jobs.set(key, entry);
    entry.started = this.launch(entry, req);
    await entry.started;
    return { ok: true, state: 'started' };
  }

  /**
   * Starting a migration makes sure the guest runs here (ensureRunning), which
   * boots it if it is not. After the guest migrated away that would be a
   * second copy: refuse when a tombstone says it left, for the same migration
   * always, for another one unless the guest is running here again (it came back).
   */
  private async refuseSecondCopy(req: CommandRequest<'start-source'>): Promise<void> {
    const left = [...this.jobs.values()].filter((j) => j.state === 'completed' && (j.ref.migrationUid === req.migrationUid || j.domain === req.guest.name));
    if (left.length === 0) return;
    const same = left.find((j) => j.ref.migrationUid === req.migrationUid);
    if (same) {
      throw new HandlerError('conflict', `${same.domain} already migrated from ${this.d.node} to ${same.targetNode} in attempt ${same.ref.attempt} of migration ${req.migrationUid}; not starting attempt ${req.attempt}`);
    }
    let here: boolean;
    try {
      here = (await this.d.driver.listDomains()).some((d) => d.name === req.guest.name && d.state === 'running');
    } catch (err) {
      throw new HandlerError('driver-error', `cannot check whether ${req.guest.name} runs on ${this.d.node}: ${(err as Error).message}`);
    }
    if (!here) {
      const j = left[0]!;
      throw new HandlerError('conflict', `${j.domain} migrated from ${this.d.node} to ${j.targetNode} (migration ${j.ref.migrationUid}) and does not run here now; not booting a second copy for migration ${req.migrationUid}`);
    }
  }

  private async launch(entry: SourceJob, req: CommandRequest<'start-source'>): Promise<void> {
    const { driver, node, log, records } = this.d;
    let job: MigrationJob;
    try {
      await driver.ensureRunning(req.guest);
      // Recorded before the job exists: a crash right after it starts must not lose it.
      await records?.save(this.recordOf(entry));
      job = await driver.migrate(req.guest.name, { node: req.targetNode, address: req.targetAddress }, req.controls, req.migrationUid);
    } catch (err) {
      // Nothing runs, so a retry of the same attempt may start it afresh.
      this.jobs.delete(jobKey(req));
      await records?.remove(req).catch((e: unknown) => log.warn({ node, ...refFields(req), err: (e as Error).message }, 'could not remove the migration record'));
      throw new HandlerError('driver-error', `starting migration of ${entry.domain} from ${node} to ${req.targetNode} failed: ${(err as Error).message}`);
    }
    log.info({ node, ...refFields(req), domain: entry.domain, targetNode: req.targetNode, controls: req.controls }, 'migration started');
    this.track(entry, job);
  }

  private recordOf(entry: SourceJob): SourceJobRecord {
    return { ...entry.ref, domain: entry.domain, targetNode: entry.targetNode, startedAt: entry.startedAt };
  }

  /** From now on `job` is this entry's: progress is reported and its end settled. */
  private track(entry: SourceJob, job: MigrationJob): void {
    entry.job = job;
    entry.span ??= startJobSpan(entry.ref.migrationUid, { 'k8s.node.name': this.d.node, 'ferry.domain': entry.domain, 'ferry.target_node': entry.targetNode }, this.d.clock.now());
    entry.state = 'running';
    this.reportProgress(entry, job);
    void job.done.then((outcome) => this.whileSettling(this.settle(entry, outcome, job)));
  }

  private whileSettling(settled: Promise<void>): void {
    this.settling.add(settled);
    void settled.finally(() => this.settling.delete(settled));
  }

  private entryFor(record: SourceJobRecord, state: SourceJob['state']): SourceJob {
    const entry: SourceJob = {
      ref: { migrationUid: record.migrationUid, attempt: record.attempt, vmi: record.vmi },
      domain: record.domain,
      targetNode: record.targetNode,
      startedAt: record.startedAt,
      state,
      started: Promise.resolve(),
    };
    this.jobs.set(jobKey(record), entry);
    return entry;
  }

  /** Recovery: a migration started before a restart still runs; `job` is attached to it. */
  adopt(record: SourceJobRecord, job: MigrationJob): void {
    this.track(this.entryFor(record, 'starting'), job);
  }

  /** Recovery: the migration ended while no handler watched; report how. */
  settleUnwatched(record: SourceJobRecord, outcome: MigrationOutcome): void {
    const entry = this.entryFor(record, outcome.status);
    entry.stats = outcome.stats;
    this.whileSettling(this.conclude(entry, this.resultOf(entry, outcome)));
  }

  /** Recovery: the outcome was published before the restart; keep it as a tombstone until forget-job. */
  restoreTombstone(record: SourceJobRecord & { result: ResultMessage }): void {
    const entry = this.entryFor(record, record.result.outcome);
    entry.stats = { ...record.result.stats };
    const at = Date.parse(record.result.at);
    entry.finishedAt = Number.isFinite(at) ? at : this.d.clock.now();
    this.prune();
  }

  /** Recovery: the outcome was known before the restart but maybe not delivered; deliver it (JetStream dedupes). */
  republish(record: SourceJobRecord & { result: ResultMessage }): void {
    const entry = this.entryFor(record, record.result.outcome);
    entry.stats = { ...record.result.stats };
    this.whileSettling(this.conclude(entry, record.result));
  }

  private reportProgress(entry: SourceJob, job: MigrationJob): void {
    const { nc, node, clock, progressIntervalMs, log, stopped } = this.d;
    const tick = async () => {
      entry.progressTimer = undefined;
      if (entry.state !== 'running' || stopped.aborted) return;
      try {
        const stats = await job.stats();
        // The job may have ended while stats were read; its result says the rest.
        if (entry.state !== 'running' || stopped.aborted) return;
        entry.stats = stats;
        if (!nc.isClosed() && !nc.isDraining()) {
          publishProgress(nc, { ...refFields(entry.ref), node, stats: statsMessage(stats), at: new Date(clock.now()).toISOString() });
        }
      } catch (err) {
        log.warn({ node, ...refFields(entry.ref), err: (err as Error).message }, 'reading migration progress failed');
      }
      if (entry.state === 'running' && !stopped.aborted) entry.progressTimer = clock.setTimeout(() => void tick(), progressIntervalMs);
    };
    void tick();
  }

  private async settle(entry: SourceJob, outcome: MigrationOutcome, job: MigrationJob): Promise<void> {
    const { node, clock, log, stopped } = this.d;
    if (entry.job !== job) return; // superseded by a re-attached job
    if (outcome.status !== 'completed' && this.recoverable) {
      const fields = { node, ...refFields(entry.ref), domain: entry.domain, reason: outcome.reason };
      // The driver may have lost sight of a job that goes on in the hypervisor
      // (its connection dropped, or the handler is shutting down and closed it).
      if (stopped.aborted) {
        log.warn(fields, 'handler stopped while the migration ran; it is left to the next handler');
        return;
      }
      const again = await this.reattach(entry);
      if (again) {
        log.warn(fields, 'lost sight of the migration, which still runs; re-attached to it');
        this.track(entry, again);
        return;
      }
    }
    entry.state = outcome.status;
    entry.stats = outcome.stats;
    if (entry.progressTimer !== undefined) clock.clearTimeout(entry.progressTimer);
    if (entry.span) {
      const st = outcome.stats;
      const done = outcome.status === 'completed';
      endJobSpan(entry.span, {
        status: outcome.status,
        reason: done ? undefined : outcome.reason,
        attrs: { 'ferry.job.mode': done ? outcome.mode : st.mode, 'ferry.job.downtime_ms': done ? outcome.downtimeMs : undefined, 'ferry.job.data_total': st.dataTotal, 'ferry.job.iterations': st.iteration },
      }, clock.now());
      entry.span = undefined;
    }
    const result = this.resultOf(entry, outcome);
    log.info({ node, ...refFields(entry.ref), domain: entry.domain, outcome: outcome.status, reason: result.reason, mode: outcome.stats.mode, downtimeMs: outcome.stats.downtimeMs }, `migration ${outcome.status}`);
    await this.conclude(entry, result);
  }

  /** A new job for the entry's domain when its migration still runs in the hypervisor; else null. */
  private async reattach(entry: SourceJob): Promise<MigrationJob | null> {
    try {
      const seen = await this.recoverable!.inspectMigration(entry.domain);
      return seen.migrating ? await this.recoverable!.attachMigration(entry.domain, entry.ref.migrationUid) : null;
    } catch {
      return null;
    }
  }

  private resultOf(entry: SourceJob, outcome: MigrationOutcome): ResultMessage {
    const result: ResultMessage = {
      ...refFields(entry.ref),
      node: this.d.node,
      outcome: outcome.status,
      mode: outcome.status === 'completed' ? outcome.mode : outcome.stats.mode,
      stats: statsMessage(outcome.stats),
      at: new Date(this.d.clock.now()).toISOString(),
    };
    if (outcome.status !== 'completed') result.reason = outcome.reason;
    const downtimeMs = outcome.status === 'completed' ? outcome.downtimeMs : outcome.stats.downtimeMs;
    if (downtimeMs !== undefined && Number.isFinite(downtimeMs)) result.downtimeMs = downtimeMs;
    return result;
  }

  /**
   * The outcome is known: record it (so a crash from here on still delivers
   * it), let go of a departed guest, publish, and only then drop the record.
   */
  private async conclude(entry: SourceJob, result: ResultMessage): Promise<void> {
    entry.concluding = true;
    entry.finishedAt ??= this.d.clock.now();
    try {
      await this.recordAndPublish(entry, result);
    } finally {
      entry.concluding = false;
      if (entry.forgotten) await this.removeRecord(entry);
      this.prune();
    }
  }

  private async recordAndPublish(entry: SourceJob, result: ResultMessage): Promise<void> {
    const { js, node, driver, clock, log, stopped, records } = this.d;
    const fields = { node, ...refFields(entry.ref), domain: entry.domain, outcome: result.outcome, reason: result.reason };
    let recorded = false;
    if (records) {
      try {
        await records.save({ ...this.recordOf(entry), result });
        recorded = true;
      } catch (err) {
        log.error({ ...fields, err: (err as Error).message }, 'could not record the migration outcome');
      }
    }
    if (result.outcome === 'completed') {
      try {
        await driver.forget(entry.domain);
      } catch (err) {
        log.error({ ...fields, err: (err as Error).message }, 'forgetting the departed guest failed');
      }
    }
    if (stopped.aborted) {
      log.warn(fields, recorded ? 'handler stopped; result recorded, published by the next handler' : 'handler stopped; result not published');
      return;
    }
    try {
      await publishResult(js, result, { signal: stopped, log, clock });
    } catch (err) {
      log.error({ ...fields, err: (err as Error).message }, recorded ? 'migration result not published; recorded for the next handler' : 'migration result lost');
      return;
    }
    if (recorded && !entry.forgotten) {
      await records!.save({ ...this.recordOf(entry), result, published: true }).catch((err: unknown) =>
        // The next start would publish it again; JetStream's dedupe window or the controller's own check absorbs that.
        log.warn({ ...fields, err: (err as Error).message }, 'could not mark the migration record published'));
    }
  }

  private async removeRecord(entry: SourceJob): Promise<void> {
    await this.d.records?.remove(entry.ref).catch((err: unknown) =>
      this.d.log.warn({ node: this.d.node, ...refFields(entry.ref), domain: entry.domain, err: (err as Error).message }, 'could not remove the migration record'));
  }

  /**
   * forget-job: the controller has this migration's final outcome, so its
   * tombstone goes. A job still running is not forgotten (false).
   */
  async forget(ref: MigrationRef): Promise<boolean> {
    const key = jobKey(ref);
    const entry = this.jobs.get(key);
    if (!entry || entry.finishedAt === undefined) return false;
    this.jobs.delete(key);
    entry.forgotten = true;
    if (!entry.concluding) await this.removeRecord(entry);
    this.d.log.info({ node: this.d.node, ...refFields(ref), domain: entry.domain, outcome: entry.state }, 'finished migration forgotten');
    return true;
  }

  /** The backstop for controllers that never send forget-job. */
  private prune(): void {
    const finished: Array<{ key: string; finishedAt: number }> = [];
    for (const [key, j] of this.jobs) if (j.finishedAt !== undefined && !j.concluding) finished.push({ key, finishedAt: j.finishedAt });
    const drop = tombstonesToPrune(finished, this.d.clock.now(), this.d.tombstoneLimits ?? TOMBSTONE_LIMITS);
    for (const key of drop) {
      const entry = this.jobs.get(key)!;
      this.jobs.delete(key);
      void this.removeRecord(entry);
    }
    if (drop.length > 0) this.d.log.warn({ node: this.d.node, pruned: drop.length }, 'dropped tombstones of finished migrations the controller never acknowledged');
  }

  async abort(req: CommandRequest<'abort'>): Promise<'aborting' | 'already-finished' | undefined> {
    const entry = this.jobs.get(jobKey(req));
    if (!entry) return undefined;
    await entry.started.catch(() => undefined);
    if (entry.state !== 'running' || !entry.job) return entry.state === 'starting' ? undefined : 'already-finished';
    try {
      await entry.job.abort(req.reason);
    } catch (err) {
      // The job may have ended on its own between the check and the abort.
      if (entry.state !== 'running') return 'already-finished';
      throw new HandlerError('driver-error', `aborting migration of ${entry.domain} on ${this.d.node} failed: ${(err as Error).message}`);
    }
    this.d.log.info({ node: this.d.node, ...refFields(req), domain: entry.domain, reason: req.reason }, 'migration abort requested');
    return 'aborting';
  }

  /** Applies a live change to the running job of `ref`. */
  async steer(ref: MigrationRef, what: string, change: (job: MigrationJob) => Promise<void>): Promise<void> {
    const entry = this.jobs.get(jobKey(ref));
    if (entry) await entry.started.catch(() => undefined);
    if (!entry?.job || entry.state !== 'running') {
      const state = entry ? `is ${entry.state}` : 'is not known';
      throw new HandlerError('not-found', `cannot ${what}: migration ${ref.migrationUid} attempt ${ref.attempt} on ${this.d.node} ${state}, not running`);
    }
    try {
      await change(entry.job);
    } catch (err) {
      throw new HandlerError('driver-error', `cannot ${what} for ${entry.domain} on ${this.d.node}: ${(err as Error).message}`);
    }
    this.d.log.info({ node: this.d.node, ...refFields(ref), domain: entry.domain }, what);
  }

  activeCount(): number {
    let n = 0;
    for (const j of this.jobs.values()) if (j.state === 'starting' || j.state === 'running') n++;
    return n;
  }

  /** The last statistics read of every running job (refreshed on each progress tick), for metrics. */
  runningStats(): Array<{ vmi: string } & JobStats> {
    const out: Array<{ vmi: string } & JobStats> = [];
    for (const j of this.jobs.values()) if (j.state === 'running' && j.stats) out.push({ vmi: j.ref.vmi, ...j.stats });
    return out;
  }

  async summaries(): Promise<JobSummary[]> {
    return Promise.all(
      [...this.jobs.values()].map(async (j) => {
        let stats = j.stats;
        if (j.state === 'running' && j.job) stats = await j.job.stats().catch(() => stats);
        const summary: JobSummary = {
          migrationUid: j.ref.migrationUid,
          attempt: j.ref.attempt,
          vmi: j.ref.vmi,
          role: 'source',
          domain: j.domain,
          state: j.state === 'starting' ? 'running' : j.state,
        };
        if (stats) summary.stats = statsMessage(stats);
        return summary;
      }),
    );
  }

  /** Stops progress timers; jobs keep running in the driver. */
  stop(): void {
    for (const j of this.jobs.values()) {
      if (j.progressTimer !== undefined) this.d.clock.clearTimeout(j.progressTimer);
      j.progressTimer = undefined;
    }
  }

  /** Resolves once the jobs that have ended are reported or given up on; running jobs are not waited for. */
  async idle(): Promise<void> {
    await Promise.all([...this.settling]);
  }
}
