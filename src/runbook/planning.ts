import type { Node } from '../api/core.js';
import { MaintenanceAnnotations, type MaintenanceWindowSpec, type NodeProgress } from '../api/maintenanceWindow.js';
import type { BatchOutcome, PlanOutcome, RunbookContext, WindowTimes } from '../../statecharts/runbook.js';
import { maintenanceMsOf, nextBatch, planInputFor, plannedNodes, planSummary, type ClusterSnapshot } from './decisions.js';
import { planRunbook, type Plan } from './plan.js';
import type { RunbookSettings } from './settings.js';
import { occurrenceAfter, occurrenceAt, resolveWindow } from './window.js';

/**
 * The runbook chart's two planning steps, as pure functions of the runbook's
 * spec and context and a snapshot of the cluster: which nodes, in what order,
 * in which window (`makePlan`), and which nodes the next batch starts
 * (`planNextBatch`). The controller only feeds them its caches and the clock.
 */

export interface PlanningInput {
  runbook: string;
  spec: MaintenanceWindowSpec;
  context: Readonly<RunbookContext>;
  cluster: ClusterSnapshot;
  settings: RunbookSettings;
  now: number;
}

/** Why `runbook` cannot take node `name` now, if it cannot. */
export function unavailable(runbook: string, name: string, node: Node | undefined): string | undefined {
  if (!node) return 'no such node';
  const owner = node.metadata.annotations?.[MaintenanceAnnotations.owner];
  if (owner && owner !== runbook) return `held by maintenance window ${owner}`;
  if (node.spec?.unschedulable && owner !== runbook) return 'already cordoned by someone else';
  return undefined;
}

function nodeByName(cluster: ClusterSnapshot, name: string): Node | undefined {
  return cluster.nodes.find((n) => n.metadata.name === name);
}

/**
 * The plan for the current window occurrence (or the one after `after`).
 * Throws on a window spec that does not resolve: the chart records that as a failed plan.
 */
export function makePlan(input: PlanningInput & { after?: WindowTimes | undefined }): { outcome: PlanOutcome; plan?: Plan } {
  const { runbook, spec, context, cluster, settings, now } = input;
  const resolved = resolveWindow(spec.window);
  if (!resolved.ok) throw new Error(resolved.reason);
  const window = input.after ? occurrenceAfter(resolved.window, input.after) : occurrenceAt(resolved.window, now);
  const recurring = resolved.window.kind === 'recurring';
  const unplanned = plannedNodes(context.nodes, spec, cluster, undefined);
  if (!window) return { outcome: { plannedAt: now, recurring, nodes: unplanned } };
  const maintain = unplanned.filter((n) => n.phase === 'Pending' && unavailable(runbook, n.name, nodeByName(cluster, n.name)) === undefined).map((n) => n.name);
  const plan = planRunbook(planInputFor({ spec, cluster, settings, now, window, maintain }));
  const outcome: PlanOutcome = { plannedAt: now, window, recurring, nodes: plannedNodes(context.nodes, spec, cluster, plan), plan: planSummary(plan, now) };
  if (plan.predictedEnd !== undefined) outcome.eta = plan.predictedEnd;
  return { outcome, plan };
}

/** The next batch within the planned window; nodes someone else took meanwhile are skipped, with why. */
export function planNextBatch(input: PlanningInput): BatchOutcome {
  const { runbook, spec, context, cluster, settings, now } = input;
  const window = context.window;
  if (!window) throw new Error('no window to plan in');
  const held = new Map<string, string>();
  for (const n of context.nodes) {
    if (n.phase !== 'Pending') continue;
    const why = unavailable(runbook, n.name, nodeByName(cluster, n.name));
    if (why) held.set(n.name, why);
  }
  const nodes = context.nodes.map((n): NodeProgress => (held.has(n.name) ? { ...n, phase: 'Skipped', reason: held.get(n.name)! } : n));
  const maintain = nodes.filter((n) => n.phase === 'Pending').map((n) => n.name);
  const plan = planRunbook(planInputFor({ spec, cluster, settings, now, window, maintain, order: context.plan?.order ?? [] }));
  return nextBatch({ nodes, plan, now, recurring: context.recurring, windowLengthMs: window.end - window.start, maintenanceMs: maintenanceMsOf(spec) });
}
