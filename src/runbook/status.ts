import type { MaintenanceWindowStatus, RunbookPhase } from '../api/maintenanceWindow.js';
import type { RunbookContext } from '../../statecharts/runbook.js';
import { nodeFacts } from './clusterView.js';
import type { ClusterSnapshot } from './decisions.js';

/**
 * What a runbook's status says, as a pure function of its chart's snapshot
 * (phase, batch state, context), the cluster and the clock. The controller
 * writes it; a restarted controller resumes from it.
 */

const iso = (ms: number) => new Date(ms).toISOString();

export interface StatusInput {
  phase: RunbookPhase;
  /** The Running batch sub-state (Planning, Evacuating, InMaintenance), if any. */
  batchState: string | undefined;
  context: Readonly<RunbookContext>;
  cluster: ClusterSnapshot;
  generation: number | undefined;
  /** What the status said before (RFC 3339), kept once set. */
  startedAt: string | undefined;
  finishedAt: string | undefined;
  now: number;
}

/**
 * The status to write, without the condition's lastTransitionTime (the writer
 * keeps the previous one while the condition is unchanged). `startedAt` is set
 * when the runbook first runs; `finishedAt` once it is over and no node is left
 * in evacuation or maintenance, and dropped again if one is.
 */
export function runbookStatus(input: StatusInput): MaintenanceWindowStatus {
  const { phase, batchState, context: ctx, cluster, now } = input;
  const nodes = ctx.nodes.map((n) => {
    if (n.phase !== 'Evacuating' || n.vmsTotal === undefined) return n;
    const f = nodeFacts(n.name, cluster.vmis, cluster.vmims, cluster.clusterEvictionStrategy);
    return { ...n, vmsMoved: Math.max(0, n.vmsTotal - f.toMove) };
  });
  const terminal = phase === 'Completed' || phase === 'WindowClosed' || phase === 'Failed';
  const settled = terminal && !ctx.nodes.some((n) => n.phase === 'Evacuating' || n.phase === 'ReadyForMaintenance');
  const startedAt = input.startedAt ?? (phase === 'Running' || phase === 'Paused' ? iso(now) : undefined);
  const finishedAt = settled ? input.finishedAt ?? iso(now) : undefined;
  const active = nodes.filter((n) => n.phase === 'Evacuating' || n.phase === 'ReadyForMaintenance');
  const batch = Math.max(0, ...active.map((n) => n.batch ?? 0));
  const status: MaintenanceWindowStatus = {
    phase,
    nodes,
    progress: `${nodes.filter((n) => n.phase === 'Done').length}/${nodes.length}`,
    currentBatch: active.length > 0 ? `${batch}: ${active.map((n) => n.name).join(',')}` : '',
    conditions: [],
  };
  if (input.generation !== undefined) status.observedGeneration = input.generation;
  if (ctx.window) status.window = { start: iso(ctx.window.start), end: iso(ctx.window.end) };
  if (ctx.plan) status.plan = ctx.plan;
  if (ctx.eta !== undefined && !terminal) status.eta = iso(ctx.eta);
  if (startedAt) status.startedAt = startedAt;
  if (finishedAt) status.finishedAt = finishedAt;
  status.conditions = [
    ctx.error
      ? { type: phase === 'Failed' ? 'Failed' : 'PlanningFailed', status: 'True', reason: phase === 'Failed' ? 'InvalidSpec' : 'PlanningError', message: ctx.error }
      : { type: 'Progressing', status: terminal ? 'False' : 'True', reason: batchState ?? phase, message: describePhase(phase, batchState, status) },
  ];
  return status;
}

export function describePhase(phase: RunbookPhase, batchState: string | undefined, s: MaintenanceWindowStatus): string {
  switch (phase) {
    case 'Waiting':
      return `waiting for the window to open at ${s.window?.start ?? '?'}`;
    case 'Running':
      return batchState === 'InMaintenance' ? `batch ${s.currentBatch} in maintenance` : batchState === 'Evacuating' ? `evacuating batch ${s.currentBatch}` : 'planning the next batch';
    case 'Paused':
      return 'paused: no new node starts';
    case 'WindowClosed':
      return 'the window is over; what did not fit was skipped';
    case 'Completed':
      return 'every node done';
    default:
      return phase;
  }
}
