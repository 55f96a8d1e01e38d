import type { HypervisorDriver, JobPhase, JobStats, MigrationJob, MigrationOutcome } from '../hypervisor/driver.js';
import type { MigrationInspection } from '../hypervisor/libvirt/driver.js';
import type { Logger } from '../util/log.js';
import type { JobRecordStore, SourceJobRecord } from './jobRecords.js';

/**
 * A driver whose migrations outlive the handler process (libvirt: they run in
 * libvirtd), so a restarted handler can look at them and take them over.
 */
export interface RecoverableDriver extends HypervisorDriver {
  inspectMigration(name: string): Promise<MigrationInspection>;
  attachMigration(name: string, migrationId: string): Promise<MigrationJob | null>;
}

export function isRecoverable(driver: HypervisorDriver): driver is RecoverableDriver {
  const d = driver as Partial<RecoverableDriver>;
  return typeof d.inspectMigration === 'function' && typeof d.attachMigration === 'function';
}

/** What to do about one recorded migration, given what the hypervisor shows now. */
export type RecoveryStep =
  | { kind: 'attach' }
  /** The job ended while no handler watched: report this outcome. */
  | { kind: 'settle'; outcome: MigrationOutcome }
  /** The domain is between states (paused, no job): look again shortly. */
  | { kind: 'look-again' };

function statsAs(phase: JobPhase, seen: JobStats | undefined): JobStats {
  const base: JobStats = seen ?? {
    phase, mode: 'PreCopy', elapsedMs: 0, dataTotal: 0, dataProcessed: 0, dataRemaining: 0,
    memoryBandwidth: 0, dirtyRate: 0, iteration: 0, autoConvergeThrottle: 0, bandwidthLimit: 0,
  };
  return { ...base, phase };
}

/**
 * Decides from the domain's state, not only from libvirt's record of the last
 * job: that record may describe an older job (the guest's arrival here, say),
 * while the state says where the guest is now. A source domain shut off after
 * a migration job means the guest left; one still running here means the job
 * ended without moving it.
 */
export function recoveryStep(record: SourceJobRecord, seen: MigrationInspection, opts: { node: string; lastLook: boolean }): RecoveryStep {
  if (seen.migrating) return { kind: 'attach' };
  const lastPhase = seen.stats?.phase;
  const where = `${record.domain} on ${opts.node}`;
  if (seen.state === 'shutoff' && lastPhase !== 'failed' && lastPhase !== 'aborted') {
    const stats = statsAs('completed', seen.stats);
    return { kind: 'settle', outcome: { status: 'completed', mode: stats.mode, downtimeMs: stats.downtimeMs ?? 0, stats: { ...stats, dataRemaining: 0 } } };
  }
  if (seen.state === 'missing') {
    // Gone from here, with no record of how: it may run on the target now. Only the target can say.
    return {
      kind: 'settle',
      outcome: {
        status: 'unknown',
        reason: `${where} disappeared while no handler was watching its migration, and no outcome had been recorded; cannot tell whether it completed`,
        stats: statsAs('running', undefined),
      },
    };
  }
  if (seen.state === 'paused' && !opts.lastLook) return { kind: 'look-again' };
  if (lastPhase === 'aborted') {
    return { kind: 'settle', outcome: { status: 'aborted', reason: seen.lastError ?? `the migration of ${where} was cancelled while no handler was watching`, stats: statsAs('aborted', seen.stats) } };
  }
  if (seen.state === 'paused' && lastPhase !== 'failed') {
    // Stopped here with no job and no failure on record (post-copy, say): the guest may be running on the target.
    return {
      kind: 'settle',
      outcome: { status: 'unknown', reason: `${where} stays paused with no migration job and no recorded failure; cannot tell whether the guest runs on the target`, stats: statsAs('running', seen.stats) },
    };
  }
  // A 'completed' record beside a guest that is still here belongs to another job.
  const ownRecord = lastPhase === 'failed' ? seen.stats : undefined;
  return {
    kind: 'settle',
    outcome: {
      status: 'failed',
      reason: seen.lastError ?? `the migration job of ${where} ended while no handler was watching, and the guest is still ${seen.state} there`,
      stats: statsAs('failed', ownRecord),
    },
  };
}

/** What a source role offers recovery: take over a running job, or report one that ended unseen. */
export interface RecoveringSource {
  adopt(record: SourceJobRecord, job: MigrationJob): void;
  settleUnwatched(record: SourceJobRecord, outcome: MigrationOutcome): void;
  republish(record: SourceJobRecord & { result: NonNullable<SourceJobRecord['result']> }): void;
  restoreTombstone(record: SourceJobRecord & { result: NonNullable<SourceJobRecord['result']> }): void;
}

export interface RecoverySummary {
  attached: string[];
  settled: Array<{ domain: string; outcome: MigrationOutcome['status'] }>;
  republished: string[];
  /** Finished and published before the restart, not yet forgotten by the controller: kept as tombstones. */
  tombstones: string[];
  /** Records left on disk (unreadable, or the driver could not tell), for the next start. */
  left: string[];
}

const LOOKS = 5;
const LOOK_GAP_MS = 400;

/**
 * On handler start: for every migration this node's records say was running,
 * find out from the hypervisor what became of it, and either take the running
 * job over (progress and the final result are published as before) or report
 * how it ended while the handler was away.
 */
export async function recoverSourceJobs(deps: {
  records: JobRecordStore;
  driver: HypervisorDriver;
  source: RecoveringSource;
  node: string;
  log: Logger;
  sleep?: (ms: number) => Promise<void>;
}): Promise<RecoverySummary> {
  const { records, driver, source, node, log } = deps;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const summary: RecoverySummary = { attached: [], settled: [], republished: [], tombstones: [], left: [] };
  const listing = await records.list();
  for (const bad of listing.unreadable) {
    log.error({ node, dir: records.dir, file: bad.file, reason: bad.reason }, 'unreadable migration record left in place');
    summary.left.push(bad.file);
  }
  // A finished migration needs nothing from the driver: its record is its tombstone.
  const open: SourceJobRecord[] = [];
  for (const record of listing.records) {
    if (record.result && record.published) {
      source.restoreTombstone({ ...record, result: record.result });
      summary.tombstones.push(record.domain);
    } else {
      open.push(record);
    }
  }
  if (open.length === 0) return summary;
  if (!isRecoverable(driver)) {
    log.warn({ node, driver: driver.kind, records: open.length }, 'this driver cannot take over migrations after a restart; records left in place');
    summary.left.push(...open.map((r) => r.domain));
    return summary;
  }
  for (const record of open) {
    const fields = { node, migrationUid: record.migrationUid, attempt: record.attempt, vmi: record.vmi, domain: record.domain };
    try {
      if (record.result) {
        source.republish({ ...record, result: record.result });
        summary.republished.push(record.domain);
        log.info({ ...fields, outcome: record.result.outcome }, 'recovery: publishing an outcome recorded before the restart');
        continue;
      }
      let step: RecoveryStep = { kind: 'look-again' };
      for (let look = 1; step.kind === 'look-again' && look <= LOOKS; look++) {
        if (look > 1) await sleep(LOOK_GAP_MS);
        step = recoveryStep(record, await driver.inspectMigration(record.domain), { node, lastLook: look >= LOOKS });
        if (step.kind === 'attach') {
          const job = await driver.attachMigration(record.domain, record.migrationUid);
          if (job) {
            source.adopt(record, job);
            summary.attached.push(record.domain);
            log.info(fields, 'recovery: took over the migration still running in the hypervisor');
            break;
          }
          // It ended between the look and the take-over: look again.
          step = { kind: 'look-again' };
        }
      }
      if (step.kind === 'look-again') throw new Error(`the migration job kept ending and starting again over ${LOOKS} looks`);
      if (step.kind === 'settle') {
        source.settleUnwatched(record, step.outcome);
        summary.settled.push({ domain: record.domain, outcome: step.outcome.status });
        log.info({ ...fields, outcome: step.outcome.status }, 'recovery: the migration ended while no handler was watching');
      }
    } catch (err) {
      summary.left.push(record.domain);
      log.error({ ...fields, err: (err as Error).message }, 'recovery: could not find out what became of the migration; record left for the next start');
    }
  }
  return summary;
}
