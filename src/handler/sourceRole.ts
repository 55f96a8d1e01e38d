import type { JetStreamClient, NatsConnection } from 'nats';
import type { Clock } from '../util/clock.js';
import type { HypervisorDriver, JobPhase, JobStats, MigrationJob, MigrationOutcome } from '../hypervisor/driver.js';
import type { CommandReply, CommandRequest, JobSummary, MigrationRef, ResultMessage } from '../bus/protocol.js';
import { HandlerError } from '../bus/rpc.js';
import { publishProgress } from '../bus/progress.js';
import { publishResult } from '../bus/results.js';
import type { Logger } from '../util/log.js';
import { jobKey, refFields } from './jobKey.js';
import { statsMessage } from './statsMessage.js';

interface SourceJob {
  ref: MigrationRef;
  domain: string;
  state: 'starting' | JobPhase;
  /** Settles when the driver has (or has not) started the migration; repeats wait on it. */
  started: Promise<void>;
  job?: MigrationJob;
  stats?: JobStats;
  progressTimer?: unknown;
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
}

/**
 * The source side of migrations on one node: starts them, steers them while they
 * run, reports progress, and publishes how each one ended.
 */
export class SourceRole {
  private readonly jobs = new Map<string, SourceJob>();
  private readonly settling = new Set<Promise<void>>();

  constructor(private readonly d: SourceRoleDeps) {}

  async start(req: CommandRequest<'start-source'>): Promise<CommandReply<'start-source'>> {
    const key = jobKey(req);
    const known = this.jobs.get(key);
    if (known) {
      await known.started;
      return { ok: true, state: known.state === 'starting' ? 'running' : known.state };
    }
    for (const other of this.jobs.values()) {
      if (other.domain === req.guest.name && (other.state === 'starting' || other.state === 'running')) {
        throw new HandlerError('conflict', `${other.domain} on ${this.d.node} is already migrating (migration ${other.ref.migrationUid} attempt ${other.ref.attempt})`);
      }
    }
    const entry: SourceJob = { ref: req, domain: req.guest.name, state: 'starting', started: Promise.resolve() };
    this.jobs.set(key, entry);
    entry.started = this.launch(entry, req);
    await entry.started;
    return { ok: true, state: 'started' };
  }

  private async launch(entry: SourceJob, req: CommandRequest<'start-source'>): Promise<void> {
    const { driver, node, log } = this.d;
    let job: MigrationJob;
    try {
      await driver.ensureRunning(req.guest);
      job = await driver.migrate(req.guest.name, { node: req.targetNode, address: req.targetAddress }, req.controls, req.migrationUid);
    } catch (err) {
      // Nothing runs, so a retry of the same attempt may start it afresh.
      this.jobs.delete(jobKey(req));
      throw new HandlerError('driver-error', `starting migration of ${entry.domain} from ${node} to ${req.targetNode} failed: ${(err as Error).message}`);
    }
    entry.job = job;
    entry.state = 'running';
    log.info({ node, ...refFields(req), domain: entry.domain, targetNode: req.targetNode, controls: req.controls }, 'migration started');
    this.reportProgress(entry, job);
    void job.done.then((outcome) => {
      const settled = this.settle(entry, outcome);
      this.settling.add(settled);
      void settled.finally(() => this.settling.delete(settled));
    });
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

  private async settle(entry: SourceJob, outcome: MigrationOutcome): Promise<void> {
    const { js, node, driver, clock, log, stopped } = this.d;
    entry.state = outcome.status;
    entry.stats = outcome.stats;
    if (entry.progressTimer !== undefined) clock.clearTimeout(entry.progressTimer);
    const reason = outcome.status === 'completed' ? undefined : outcome.reason;
    const fields = { node, ...refFields(entry.ref), domain: entry.domain, outcome: outcome.status, reason };
    log.info({ ...fields, mode: outcome.stats.mode, downtimeMs: outcome.stats.downtimeMs }, `migration ${outcome.status}`);
    if (outcome.status === 'completed') {
      try {
        await driver.forget(entry.domain);
      } catch (err) {
        log.error({ ...fields, err: (err as Error).message }, 'forgetting the departed guest failed');
      }
    }
    if (stopped.aborted) {
      log.warn(fields, 'handler stopped; result not published');
      return;
    }
    const result: ResultMessage = {
      ...refFields(entry.ref),
      node,
      outcome: outcome.status,
      mode: outcome.status === 'completed' ? outcome.mode : outcome.stats.mode,
      stats: statsMessage(outcome.stats),
      at: new Date(clock.now()).toISOString(),
    };
    if (reason !== undefined) result.reason = reason;
    const downtimeMs = outcome.status === 'completed' ? outcome.downtimeMs : outcome.stats.downtimeMs;
    if (downtimeMs !== undefined && Number.isFinite(downtimeMs)) result.downtimeMs = downtimeMs;
    try {
      await publishResult(js, result, { signal: stopped, log, clock });
    } catch (err) {
      log.error({ ...fields, err: (err as Error).message }, 'migration result lost');
    }
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
