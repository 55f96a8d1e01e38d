import type { KubernetesObject } from '@kubernetes/client-node';
import { FINAL_PHASES, type MigrationPhase } from '../api/vmim.js';
import type { ProgressMessage, ResultMessage } from '../bus/protocol.js';
import type { ResultOrigin, ResultVerdict } from '../bus/results.js';
import { subjectToken } from '../bus/subjects.js';
import type { FerryConfig } from '../config/ferryConfig.js';
import { downtimeForIteration } from '../limits/downtime.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { isUncertainFailure } from './arbiter.js';
import type { Tracked } from './tracked.js';

export interface BusBridgeDeps {
  config: FerryConfig;
  clock: Clock;
  log: Logger;
  find: (uid: string) => Tracked | undefined;
  /** The VMIM cache's objects (a result may arrive before its migration is tracked). */
  vmims: () => readonly KubernetesObject[];
  /** Asks admission to re-balance bandwidth (a dirty rate moved). */
  rebalance: () => void;
  /** Counts a result ignored because it did not come from its migration's source node. */
  onWrongNode?: (() => void) | undefined;
}

/**
 * From the bus to the charts: progress (lossy, into VMIM status through its writer, live
 * downtime stepping) and results (JetStream; acknowledged only once the outcome
 * is persisted, so a crash in between redelivers it).
 */
export class BusBridge {
  constructor(private readonly d: BusBridgeDeps) {}


  onProgress(m: ProgressMessage): void {
    const t = this.d.find(m.migrationUid);
    if (!t) return;
    const s = t.session;
    const dirtyChanged = Math.abs(m.stats.dirtyRate - s.lastDirtyRate) > Math.max(1, s.lastDirtyRate * 0.1);
    s.lastDirtyRate = m.stats.dirtyRate;
    s.lastRemaining = m.stats.dataRemaining;
    const ended = m.stats.phase !== 'running' && !s.sourceEnded;
    if (ended) s.sourceEnded = true;
    t.actor.send({ type: 'PROGRESS', stats: m.stats });
    const downtime = downtimeForIteration(m.stats.iteration, { baseMs: this.d.config.maxDowntimeMs, ...this.d.config.downtimeSteps });
    if (m.stats.phase === 'running' && m.stats.mode === 'PreCopy' && downtime > s.appliedDowntimeMs) {
      s.setDowntime(downtime).catch((err: unknown) => s.log.warn({ err: String(err), downtime }, 'could not raise max downtime'));
    }
    // The writer throttles what reaches the VMIM (StatusWriter.progress).
    t.writer.progress(m.stats);
    // The limits re-balance when a dirty rate moves.
    // …and when a source is done: its bandwidth is free for the next start.
    if (dirtyChanged || ended) this.d.rebalance();
  }

  async onResult(m: ResultMessage, origin: ResultOrigin = { subjectNode: undefined }): Promise<ResultVerdict | void> {
    const t = this.d.find(m.migrationUid);
    if (!t) {
      const known = this.d.vmims().find((o) => o.metadata?.uid === m.migrationUid);
      const phase = (known as { status?: { phase?: string } } | undefined)?.status?.phase;
      if (known && !(phase && FINAL_PHASES.has(phase as MigrationPhase))) {
        // Not tracked yet (we are starting up): let the server redeliver it.
        throw new Error(`result for ${m.vmi} arrived before its migration was tracked`);
      }
      this.d.log.info({ uid: m.migrationUid, outcome: m.outcome }, 'result for a finished or unknown migration; terminated');
      return 'term';
    }
    // Only the source publishes a result: one from any other node (its credentials let it publish
    // under its own name only) is forged or misrouted, and must not move the migration.
    const source = t.actor.context().sourceNode ?? t.session.sourceNode;
    if (m.node !== source || (origin.subjectNode !== undefined && origin.subjectNode !== subjectToken(source))) {
      t.session.log.error(
        { resultNode: m.node, subjectNode: origin.subjectNode, sourceNode: source, outcome: m.outcome },
        'ignoring a result that does not come from the migration\'s source node',
      );
      this.d.onWrongNode?.();
      return 'term';
    }
    // An outcome the source is sure of: its job is over. 'unknown' (or an uncertain failure) may still be sending.
    if (!t.session.sourceEnded && (m.outcome === 'completed' || m.outcome === 'aborted' || (m.outcome !== 'unknown' && !isUncertainFailure(m.reason ?? '')))) {
      t.session.sourceEnded = true;
      this.d.rebalance(); // its bandwidth is free for the next start
    }
    // The last figures ride on the final phase's write.
    t.writer.progress(m.stats, { hold: true });
    if (m.outcome === 'completed') t.actor.send({ type: 'MIGRATION_COMPLETED', mode: m.mode, downtimeMs: m.downtimeMs ?? 0 });
    else if (m.outcome === 'aborted') t.actor.send({ type: 'MIGRATION_ABORTED', reason: m.reason ?? 'aborted' });
    // 'unknown': the source lost sight of the job; never a failure, always a question.
    else if (m.outcome === 'unknown') t.actor.send({ type: 'MIGRATION_FAILED', reason: m.reason ?? 'the source cannot tell how the migration ended', uncertain: true });
    else t.actor.send({ type: 'MIGRATION_FAILED', reason: m.reason ?? 'failed', ...(isUncertainFailure(m.reason ?? '') ? { uncertain: true } : {}) });
    // Acknowledge only once the outcome is persisted, so a crash in between redelivers it;
    // but don't hold the consumer hostage to a slow finalization: let it come back later.
    let timer: unknown;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.d.clock.setTimeout(() => reject(new Error(`outcome of ${m.vmi} not persisted yet`)), 10_000);
    });
    try {
      await Promise.race([t.settled, timeout]);
    } finally {
      this.d.clock.clearTimeout(timer);
    }
  }
}
