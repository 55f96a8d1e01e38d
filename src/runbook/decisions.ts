import type { Node } from '../api/core.js';
import type { MaintenanceWindowSpec, NodeProgress, PlanSummary } from '../api/maintenanceWindow.js';
import type { EvictionStrategy, VirtualMachineInstance } from '../api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { BatchOutcome } from '../../statecharts/runbook.js';
import { planNodes, planVms, selectNodes } from './clusterView.js';
import type { Plan, PlanInput } from './plan.js';
import type { RunbookSettings } from './settings.js';
import { parseDuration, type Occurrence } from './window.js';

/**
 * From a plan to what the runbook does: the node list with predictions, and
 * which nodes the next batch starts, skips or leaves for a later window. Pure.
 */

export interface ClusterSnapshot {
  nodes: readonly Node[];
  vmis: readonly VirtualMachineInstance[];
  vmims: readonly VirtualMachineInstanceMigration[];
  clusterEvictionStrategy?: EvictionStrategy | undefined;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function maintenanceMsOf(spec: MaintenanceWindowSpec): number {
  return spec.maintenanceDuration ? parseDuration(spec.maintenanceDuration) : 0;
}

/** The planner's input for the nodes still to do, from live objects. */
export function planInputFor(args: {
  spec: MaintenanceWindowSpec;
  cluster: ClusterSnapshot;
  settings: RunbookSettings;
  now: number;
  window: Occurrence;
  maintain: readonly string[];
  order?: readonly string[];
}): PlanInput {
  const { spec, cluster, settings } = args;
  const input: PlanInput = {
    now: args.now,
    window: args.window,
    nodes: planNodes(cluster.nodes, { annotation: settings.nicCapacityAnnotation, default: settings.limits.defaultNicCapacity }),
    vms: planVms(cluster.vmis, cluster.vmims, cluster.clusterEvictionStrategy),
    maintain: args.maintain,
    maxNodesInMaintenance: spec.maxNodesInMaintenance,
    maintenanceMs: maintenanceMsOf(spec),
    settings,
  };
  if (args.order) input.order = args.order;
  return input;
}

export function planSummary(plan: Plan, now: number): PlanSummary {
  const s: PlanSummary = { createdAt: iso(now), order: plan.order, batches: plan.batches, wontFit: plan.wontFit };
  if (plan.predictedEnd !== undefined) s.predictedEnd = iso(plan.predictedEnd);
  return s;
}

function withPrediction(n: NodeProgress, plan: Plan): NodeProgress {
  const p = plan.nodes.find((x) => x.name === n.name);
  const { predictedStart: _s, predictedFinish: _f, ...rest } = n;
  if (!p) return rest;
  if (!p.fits) return { ...rest, vmsTotal: p.vmsToMove, vmsStaying: p.vmsStaying, reason: `${p.reason}; re-checked when its turn comes` };
  const { reason: _r, ...clean } = rest;
  return { ...clean, vmsTotal: p.vmsToMove, vmsStaying: p.vmsStaying, predictedStart: iso(p.start!), predictedFinish: iso(p.finish!) };
}

/**
 * The runbook's nodes for a (new) plan: nodes already started, done or skipped
 * stay as they are; nodes still pending and newly selected ones are Pending
 * with the plan's predictions, in plan order; names that are not nodes are Skipped.
 */
export function plannedNodes(existing: readonly NodeProgress[], spec: MaintenanceWindowSpec, cluster: ClusterSnapshot, plan: Plan | undefined): NodeProgress[] {
  const { selected, missing } = selectNodes(spec, cluster.nodes);
  const settled = existing.filter((n) => n.phase !== 'Pending');
  const known = new Set(settled.map((n) => n.name));
  const pending = (plan?.order ?? selected).filter((n) => !known.has(n));
  const previous = new Map(existing.map((n) => [n.name, n]));
  const fresh = pending.map((name) => {
    const n: NodeProgress = previous.get(name) ?? { name, phase: 'Pending' };
    return plan ? withPrediction(n, plan) : n;
  });
  const gone = missing.filter((n) => !known.has(n)).map((name): NodeProgress => ({ name, phase: 'Skipped', reason: 'no such node' }));
  return [...settled, ...fresh, ...gone];
}

/**
 * The next batch from a plan made now for the pending nodes: the plan's first
 * batch starts. A node dropped from that batch (predicted not to be done in
 * time) is Skipped — or, for a recurring window, left for the next one unless
 * it would not be done even in a whole window. Pending nodes get the plan's
 * fresh predictions.
 */
export function nextBatch(args: {
  nodes: readonly NodeProgress[];
  plan: Plan;
  now: number;
  recurring: boolean;
  windowLengthMs: number;
  maintenanceMs: number;
}): BatchOutcome {
  const { plan, now } = args;
  const first = new Set(plan.batches[0] ?? []);
  const batch = Math.max(0, ...args.nodes.map((n) => n.batch ?? 0)) + 1;
  const nodes = args.nodes.map((n): NodeProgress => {
    if (n.phase !== 'Pending') return n;
    const p = plan.nodes.find((x) => x.name === n.name);
    if (!p) return n;
    if (first.has(n.name)) {
      const { reason: _r, ...rest } = n;
      return {
        ...rest,
        phase: 'Evacuating',
        batch,
        startedAt: iso(now),
        predictedStart: iso(p.start!),
        predictedFinish: iso(p.finish!),
        vmsTotal: p.vmsToMove,
        vmsMoved: 0,
        vmsStaying: p.vmsStaying,
      };
    }
    if (!p.fits && p.droppedAt === 1) {
      if (!args.recurring) return { ...n, phase: 'Skipped', reason: p.reason ?? 'predicted not to fit in the window' };
      if (p.soloMs + args.maintenanceMs > args.windowLengthMs) {
        return { ...n, phase: 'Skipped', reason: 'predicted not to be done even in a whole window on its own' };
      }
      return { ...n, reason: 'predicted not to be done before this window closes; waits for the next one' };
    }
    return withPrediction(n, plan);
  });
  const out: BatchOutcome = { nodes, started: [...first] };
  if (plan.predictedEnd !== undefined) out.eta = plan.predictedEnd;
  return out;
}
