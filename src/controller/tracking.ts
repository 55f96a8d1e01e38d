import { effectiveConfiguration, type MigrationPolicy } from '../api/migrationPolicy.js';
import { PENDING_POD_TIMEOUT_S, UNSCHEDULABLE_POD_TIMEOUT_S, type MigrationConfiguration } from '../api/migrationConfig.js';
import { Annotations, type VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, type MigrationPhase, type VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { FerryConfig } from '../config/ferryConfig.js';
import { describeApiError, type KubeClient } from '../kube/client.js';
import type { ControllerMetrics } from '../metrics/index.js';
import { MigrationTrace } from '../tracing/migration.js';
import type { Clock } from '../util/clock.js';
import type { FailureCleanup } from './cleanup.js';
import { createMigrationActor } from './migrationActor.js';
import { sidesFromPods } from './sidesFromPods.js';
import { MigrationSession, type SessionEnv } from './session.js';
import { StatusWriter, type PhaseInfo } from './statusWriter.js';
import type { Tracked } from './tracked.js';

export interface TrackingDeps {
  kube: KubeClient;
  clock: Clock;
  config: FerryConfig;
  env: SessionEnv;
  metrics: ControllerMetrics | undefined;
  cleanup: FailureCleanup;
  migrationConfig: () => MigrationConfiguration;
  vmi: (namespace: string, name: string) => VirtualMachineInstance | undefined;
  policyFor: (vmi: VirtualMachineInstance) => MigrationPolicy | undefined;
  /** Adds the new migration to the registry. */
  register: (t: Tracked) => void;
  /** Re-runs admission (a slot may have been freed or taken). */
  schedule: () => void;
  /** A migration from this node ended: VMIs waiting to leave it may go (evacuation). */
  sourceFreed: (node: string | undefined) => void;
  enqueue: (key: string) => void;
  /** A timer the controller cancels on stop. */
  later: (fn: () => void, ms: number) => void;
  stopped: () => boolean;
  /** How often progress is written to VMIM status (default PROGRESS_WRITE_INTERVAL_MS). */
  progressWriteIntervalMs?: number | undefined;
}

/**
 * Progress reaches VMIM status at most this often (`ferry status` shows it
 * within a few seconds); the bus carries it every second. Progress between
 * writes rides on the next phase write.
 */
const PROGRESS_WRITE_INTERVAL_MS = 3000;
/**
 * How long a purely reporting phase step (Pending, Scheduled, PreparingTarget)
 * waits for the next one to share its status write. Steps a restarted
 * controller resumes from (Scheduling, TargetReady, Running, final) are never
 * held: they go out at once, with whatever is waiting.
 */
const PHASE_COALESCE_MS = 1000;

/** Phases after the hand-off: the migration's two sides exist (as pods at least). */
const HANDED_OFF: ReadonlySet<MigrationPhase> = new Set(['Scheduled', 'PreparingTarget', 'TargetReady', 'Running']);

/**
 * Starts following one VMIM: its session (I/O), status writer, trace and
 * statechart actor, resumed in the phase its status records. What the chart
 * decides is carried out here: phases are persisted in order (a failure after
 * its first cleanup attempt), and a final one releases the admission slot.
 */
export function trackMigration(d: TrackingDeps, vmim: VirtualMachineInstanceMigration, phase: MigrationPhase | undefined): Tracked {
  const vmi = d.vmi(vmim.metadata.namespace ?? 'default', vmim.spec.vmiName);
  const policy = vmi ? d.policyFor(vmi) : undefined;
  const session = new MigrationSession(d.env, vmim, vmi, { name: policy?.metadata.name, effective: effectiveConfiguration(d.migrationConfig(), policy) });
  const writer = new StatusWriter(d.kube, vmim, session.logBase, () => d.vmi(session.namespace, session.vmiName), {
    clock: d.clock,
    fence: d.env.fence,
    progressIntervalMs: d.progressWriteIntervalMs ?? PROGRESS_WRITE_INTERVAL_MS,
    coalesceMs: PHASE_COALESCE_MS,
  });
  const migrationTrace = new MigrationTrace({ uid: session.uid, namespace: session.namespace, name: session.name, vmi: session.vmiName, createdMs: session.enqueuedAt }, d.clock.now());
  session.trace = migrationTrace;
  const cfg = session.effective;
  const ann = vmim.metadata.annotations ?? {};
  const secs = (k: string, d: number) => {
    const v = Number(ann[k]);
    return Number.isFinite(v) && v > 0 ? v : d;
  };
  let resolveSettled!: () => void;
  const settled = new Promise<void>((r) => (resolveSettled = r));
  // The Failed phase is written after the first cleanup attempt, so that the VMIM's final
  // copy of the VMI's migration state is the closed one when the cleanup can close it.
  let firstRecordDone!: () => void;
  const firstRecord = new Promise<void>((r) => (firstRecordDone = r));
  const restored = { ...session.restored };
  // Past its hand-off, a migration whose recorded state names neither side (its VMI not in this replica's
  // view, or its state overwritten) would ask nobody and ignore its source's result: the pods say where they are.
  if (phase && HANDED_OFF.has(phase) && (!(restored.sourceNode ?? session.sourceNode) || !restored.targetNode)) {
    const sides = sidesFromPods(d.env.podsOfMigration?.(session.namespace, session.uid) ?? [], session.uid);
    if (!(restored.sourceNode ?? session.sourceNode) && sides.source) restored.sourceNode = session.sourceNode = sides.source;
    if (!restored.targetNode && sides.target) {
      restored.targetNode = session.targetNode = sides.target;
      restored.targetPod ??= sides.targetPod;
    }
    session.log.warn({ sourceNode: restored.sourceNode ?? session.sourceNode ?? null, targetNode: restored.targetNode ?? null }, 'the recorded migration state does not name both sides; took them from the launcher pods');
  }
  const actor = createMigrationActor({
    session,
    clock: d.clock,
    input: {
      migrationUid: session.uid,
      vmiKey: session.vmiKey,
      attempt: session.attempt,
      memoryBytes: session.memoryBytes,
      allowPostCopy: cfg.allowPostCopy,
      timeouts: {
        unschedulableMs: secs(Annotations.unschedulablePodTimeout, UNSCHEDULABLE_POD_TIMEOUT_S) * 1000,
        pendingPodMs: secs(Annotations.pendingPodTimeout, PENDING_POD_TIMEOUT_S) * 1000,
        targetReadyMs: d.config.timeouts.targetReadySeconds * 1000,
        progressMs: cfg.progressTimeout * 1000,
        completionPerGiBMs: cfg.completionTimeoutPerGiB * 1000,
        abortRetryMs: d.config.timeouts.abortRetrySeconds * 1000,
        retryMs: d.config.timeouts.retrySeconds * 1000,
        resolveMs: d.config.timeouts.resolveSeconds * 1000,
        silenceMs: d.config.timeouts.progressSilenceSeconds * 1000,
      },
      ...(phase ? { resumePhase: phase } : {}),
      ...(restored.sourceNode ?? session.sourceNode ? { sourceNode: (restored.sourceNode ?? session.sourceNode)! } : {}),
      ...(restored.targetNode ? { targetNode: restored.targetNode } : {}),
      ...(restored.targetPod ? { targetPod: restored.targetPod } : {}),
      ...(restored.targetAddress ? { targetAddress: restored.targetAddress } : {}),
      ...(vmi?.status?.migrationState?.migrationUid === session.uid && vmi.status.migrationState.mode ? { mode: vmi.status.migrationState.mode } : {}),
    },
    onPhase: (p: MigrationPhase, snapshotInfo: PhaseInfo) => {
      // The phase a restarted controller resumes in was counted by its predecessor.
      if (p !== phase) d.metrics?.phaseTransition(session.namespace, session.vmiName, p, (d.clock.now() - session.enqueuedAt) / 1000);
      session.setPhase(p);
      if (p === 'Succeeded' || p === 'Failed') migrationTrace.end(p, d.clock.now(), snapshotInfo.failureReason);
      else migrationTrace.phase(p, d.clock.now());
      // The outcome must reach the VMIM: keep trying until the write goes through.
      // A failure waits for the chart's first cleanup attempt (recordFailure).
      const cleaned = p === 'Failed' ? firstRecord : Promise.resolve();
      const persist = (): void => {
        writer.phase(p, snapshotInfo).then(
          () => {
            if (!FINAL_PHASES.has(p)) return;
            t.finalWritten = true;
            // Its source node may have VMIs waiting for this one to end (evacuation).
            d.sourceFreed(session.sourceNode);
            resolveSettled();
            d.schedule();
            d.enqueue(`${session.namespace}/${session.name}`);
          },
          (err: unknown) => {
            session.log.error({ err: describeApiError(err) }, `could not record phase ${p}; retrying`);
            // Only while it is still the current phase: a later one supersedes it.
            if (!d.stopped() && session.phase === p) d.later(persist, 5000);
          },
        );
      };
      void cleaned.then(persist);
      d.schedule();
    },
    recordFailure: async (ctx) => {
      try {
        await d.cleanup.run(vmim, { reason: ctx.failureReason, aborted: ctx.abortRequested });
      } finally {
        firstRecordDone();
      }
    },
    onUnresolved: (why) => {
      const msg = `Ferry cannot tell where the guest runs after ${d.config.timeouts.resolveSeconds}s of asking (${why}); it keeps asking and removes nothing until it knows`;
      session.event('Warning', 'MigrationUnresolved', msg);
      session.log.error({ why }, 'migration outcome unresolved; still asking');
      writer.condition('MigrationUnresolved', 'True', 'OutcomeUnknown', msg);
    },
    log: session.log,
  });
  const t: Tracked = { session, actor, writer, settled, lastFact: '', targetPodSeen: false, finalWritten: false };
  d.register(t);
  session.log.info({ phase: phase ?? '(new)' }, phase ? 'resumed migration' : 'tracking new migration');
  return t;
}
