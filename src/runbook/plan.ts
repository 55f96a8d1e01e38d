import type { LimitsConfig } from '../limits/types.js';
import { MigrationEngine, type EngineNode } from './simulation/engine.js';
import { LimitsPolicy } from './simulation/limitsPolicy.js';
import type { MigrationRules, SimVm } from './simulation/policy.js';
import type { Occurrence } from './window.js';

/**
 * The runbook planner: in what order to take the nodes, and when each will be
 * done. Pure: it simulates the runbook in virtual time with the limits core
 * (`decide`: admission, placement, bandwidth) and the pre-copy model, the same
 * code the controller admits with and the sim hypervisor migrates with — the
 * migration engine of the drain benchmark.
 *
 * Times in and out are wall-clock epoch ms. The simulation runs in model time;
 * `timeScale` (model ms per wall ms) is 1 on real clusters and the sim driver's
 * speed-up on the embedded one.
 */

export interface PlanNode {
  name: string;
  /** NIC bytes/s each way. */
  nic: number;
  /** Allocatable memory, bytes. */
  memory: number;
  /** Ready and not cordoned: may receive VMs. */
  schedulable: boolean;
}

export interface PlanVm extends SimVm {
  /** False for VMs evacuation does not move (eviction strategy None/External, not live-migratable). */
  moves: boolean;
}

/** Fixed costs around each migration, in wall ms, measured on the cluster the plan is for. */
export interface Overheads {
  /** Admission → first byte: target pod created, scheduled, started; hand-off to the source. */
  migrationStartMs: number;
  /** Last byte → the migration's slot is free: result reported, VMI and pods finalised. */
  migrationFinishMs: number;
  /** Between one batch's last node done and the next batch cordoned and tainted. */
  batchGapMs: number;
}

/**
 * Measured on the embedded dev cluster (kubelet pod start-up 300 ms, a
 * scheduler pass, adoption and admission, NATS hand-offs; then result and
 * finalisation): fitted so that a 6-node, 3-batch runbook's predicted end lands
 * on the actual one (400 ms: −8 %, 700 ms: +8 %). test/e2e/runbook.test.ts
 * prints predicted against actual on every run.
 */
export const DEV_CLUSTER_OVERHEADS: Overheads = { migrationStartMs: 550, migrationFinishMs: 100, batchGapMs: 50 };

export interface PlanSettings {
  limits: LimitsConfig;
  rules: MigrationRules;
  overheads: Overheads;
  /** Model ms per wall ms. Default 1. */
  timeScale?: number;
}

export interface PlanInput {
  /** Wall-clock time the plan starts from. */
  now: number;
  /** The window occurrence to plan in. */
  window: Occurrence;
  /** Every node of the cluster (targets included). */
  nodes: readonly PlanNode[];
  vms: readonly PlanVm[];
  /** Nodes the runbook still has to take. */
  maintain: readonly string[];
  /** Keep this order (an earlier plan's); nodes not in it go last, in planner order. */
  order?: readonly string[];
  maxNodesInMaintenance: number;
  /** Expected maintenance time per node once empty; 0 predicts evacuation only. */
  maintenanceMs: number;
  settings: PlanSettings;
}

export interface NodePlan {
  name: string;
  /** 1-based; undefined when the node does not fit. */
  batch?: number;
  /** Wall ms: cordoned and tainted. */
  start?: number;
  /** Wall ms: empty (ready for maintenance). */
  evacuated?: number;
  /** Wall ms: maintenance done, node released. */
  finish?: number;
  fits: boolean;
  /** Why it does not fit. */
  reason?: string;
  /**
   * For a node that does not fit: the batch whose turn it was when it was
   * dropped (1 = it would start now), or undefined when its turn would come only
   * after the window has closed.
   */
  droppedAt?: number;
  vmsToMove: number;
  vmsStaying: number;
  bytesToMove: number;
  /** Predicted evacuation time of this node alone (ms wall): the ordering key. */
  soloMs: number;
}

export interface Plan {
  /** Wall ms the first batch starts (now, or the window's start if later). */
  start: number;
  windowEnd: number;
  order: string[];
  /** The batches of nodes that fit, in order. */
  batches: string[][];
  /** In `order`. */
  nodes: NodePlan[];
  /** When the last node that fits is done; undefined when none fits. */
  predictedEnd?: number;
  /** Nodes predicted not to be done before the window closes. */
  wontFit: string[];
}

interface Simulated {
  batches: string[][];
  start: Map<string, number>;
  evacuated: Map<string, number>;
  finish: Map<string, number>;
  /** Nodes whose turn would come only once the window has closed. */
  unreached: string[];
}

interface Dropped {
  node: string;
  batch: number;
}

/**
 * Plans the runbook.
 *
 * Order: nodes whose evacuation alone is predicted quickest go first (ties by
 * name). The window is the binding constraint, so shortest-first finishes the
 * most nodes before it closes; and since a batch lasts as long as its slowest
 * node, sorting puts nodes of similar length together, so no batch holds quick
 * nodes hostage to one slow one. (Where the whole runbook fits, this is also
 * within one partial batch of the least total time: sorting and chunking
 * minimises the sum of batch maxima.)
 *
 * Fit: batches are chunks of `maxNodesInMaintenance` nodes in that order. The
 * runbook is simulated; the first node predicted to be done after the window
 * closes is dropped (marked won't-fit) — the latest-finishing one of the first
 * batch that overruns — and the rest simulated again, so that a dropped node's
 * place goes to the next one in order and its batch mates are not slowed by it.
 * A node whose turn comes after the window has closed does not fit either.
 */
export function planRunbook(input: PlanInput): Plan {
  const scale = input.settings.timeScale ?? 1;
  if (!(scale > 0)) throw new RangeError(`planner: timeScale must be > 0, got ${scale}`);
  if (!(input.maxNodesInMaintenance >= 1)) throw new RangeError(`planner: maxNodesInMaintenance must be ≥ 1, got ${input.maxNodesInMaintenance}`);
  const start = Math.max(input.now, input.window.start);
  const known = new Set(input.nodes.map((n) => n.name));
  const missing = input.maintain.filter((n) => !known.has(n));
  if (missing.length > 0) throw new Error(`planner: nodes ${missing.join(', ')} are not in the cluster`);
  const toWall = (modelMs: number) => start + modelMs / scale;

  const solo = new Map(input.maintain.map((n) => [n, soloEvacuationMs(input, n)]));
  const order = orderNodes(input, solo);
  const skipped = new Set<string>();
  const droppedAt = new Map<string, number>();
  const windowEnd = (input.window.end - start) * scale;
  let sim = simulate(input, order, skipped, start);
  for (;;) {
    const late = firstOverrun(sim, windowEnd);
    if (late === undefined) break;
    skipped.add(late.node);
    droppedAt.set(late.node, late.batch);
    sim = simulate(input, order, skipped, start);
  }
  for (const n of sim.unreached) skipped.add(n);

  const batchOf = new Map<string, number>();
  sim.batches.forEach((b, i) => b.forEach((n) => batchOf.set(n, i + 1)));
  const nodes: NodePlan[] = order.map((name) => {
    const vms = input.vms.filter((v) => v.node === name);
    const moving = vms.filter((v) => v.moves);
    const base = {
      name,
      vmsToMove: moving.length,
      vmsStaying: vms.length - moving.length,
      bytesToMove: moving.reduce((s, v) => s + v.memory, 0),
      soloMs: solo.get(name)! / scale,
    };
    if (skipped.has(name)) {
      const reason = sim.unreached.includes(name)
        ? `its turn would come after the window closes at ${new Date(input.window.end).toISOString()}`
        : `predicted not to be done before the window closes at ${new Date(input.window.end).toISOString()}`;
      const at = droppedAt.get(name);
      return { ...base, fits: false, reason, ...(at !== undefined ? { droppedAt: at } : {}) };
    }
    return {
      ...base,
      fits: true,
      batch: batchOf.get(name)!,
      start: toWall(sim.start.get(name)!),
      evacuated: toWall(sim.evacuated.get(name)!),
      finish: toWall(sim.finish.get(name)!),
    };
  });
  const finishes = nodes.flatMap((n) => (n.finish === undefined ? [] : [n.finish]));
  const plan: Plan = {
    start,
    windowEnd: input.window.end,
    order,
    batches: sim.batches.filter((b) => b.length > 0),
    nodes,
    wontFit: order.filter((n) => skipped.has(n)),
  };
  if (finishes.length > 0) plan.predictedEnd = Math.max(...finishes);
  return plan;
}

/**
 * The latest-finishing node of the first batch that overruns the window (model
 * ms), if any; among nodes not done at all, the last in order (the longest).
 */
function firstOverrun(sim: Simulated, windowEnd: number): Dropped | undefined {
  for (const [i, batch] of sim.batches.entries()) {
    let worst: string | undefined;
    let worstAt = windowEnd;
    for (const n of batch) {
      const f = sim.finish.get(n) ?? Infinity;
      if (f > worstAt || (f === Infinity && worstAt === Infinity)) {
        worst = n;
        worstAt = f;
      }
    }
    if (worst !== undefined) return { node: worst, batch: i + 1 };
  }
  return undefined;
}

function orderNodes(input: PlanInput, solo: Map<string, number>): string[] {
  const todo = new Set(input.maintain);
  const fixed = (input.order ?? []).filter((n) => todo.has(n));
  const kept = new Set(fixed);
  const rest = input.maintain
    .filter((n) => !kept.has(n))
    .sort((a, b) => solo.get(a)! - solo.get(b)! || (a < b ? -1 : a > b ? 1 : 0));
  return [...fixed, ...rest];
}

function engineFor(input: PlanInput, onNodeEmptied?: (node: string, at: number) => void): MigrationEngine {
  const scale = input.settings.timeScale ?? 1;
  const o = input.settings.overheads;
  const nodes: EngineNode[] = input.nodes.map((n) => ({ name: n.name, nic: n.nic, memory: n.memory }));
  const policy = new LimitsPolicy(input.settings.limits, scaledRules(input.settings.rules, scale), 'ferry');
  const engine = new MigrationEngine(nodes, input.vms, policy, {
    startDelayMs: o.migrationStartMs * scale,
    finishDelayMs: o.migrationFinishMs * scale,
    ...(onNodeEmptied ? { onNodeEmptied } : {}),
  });
  const runbook = new Set(input.maintain);
  for (const n of input.nodes) if (!n.schedulable && !runbook.has(n.name)) engine.cordon(n.name);
  return engine;
}

/** The controller times migrations out in wall time; the model runs `scale` times faster. */
function scaledRules(rules: MigrationRules, scale: number): MigrationRules {
  return { ...rules, progressTimeoutMs: rules.progressTimeoutMs * scale, completionTimeoutPerGiB: rules.completionTimeoutPerGiB * scale };
}

function staying(input: PlanInput): Set<string> {
  return new Set(input.vms.filter((v) => !v.moves).map((v) => v.name));
}

/** A node not empty after a week of model time alone never will be (a VM that cannot converge). */
const SOLO_HORIZON_MS = 7 * 24 * 3600_000;

/** Model ms to empty `node` alone from an otherwise idle cluster; Infinity if it never empties. */
function soloEvacuationMs(input: PlanInput, node: string): number {
  const engine = engineFor(input);
  engine.drain([node], staying(input));
  engine.run({ until: () => engine.emptiedAt(node) !== undefined, maxMs: SOLO_HORIZON_MS });
  return engine.emptiedAt(node) ?? Infinity;
}

/**
 * The runbook in model time (0 = `start`): batch after batch of the nodes in
 * `order` but `skipped`, each node released (uncordoned) when its maintenance
 * is done, the next batch cordoned once every node of this one is.
 */
function simulate(input: PlanInput, order: readonly string[], skipped: ReadonlySet<string>, start: number): Simulated {
  const scale = input.settings.timeScale ?? 1;
  const windowEnd = (input.window.end - start) * scale;
  const maintenance = input.maintenanceMs * scale;
  const gap = input.settings.overheads.batchGapMs * scale;
  const out: Simulated = { batches: [], start: new Map(), evacuated: new Map(), finish: new Map(), unreached: [] };
  const engine = engineFor(input, (node, at) => {
    if (!out.start.has(node)) return;
    out.evacuated.set(node, at);
    engine.at(at + maintenance, () => {
      out.finish.set(node, engine.now);
      engine.uncordon(node);
    });
  });
  const stay = staying(input);
  const queue = order.filter((n) => !skipped.has(n));
  const size = input.maxNodesInMaintenance;
  for (let i = 0; i < queue.length; i += size) {
    if (engine.now >= windowEnd) {
      out.unreached.push(...queue.slice(i));
      break;
    }
    const batch = queue.slice(i, i + size);
    out.batches.push(batch);
    for (const n of batch) out.start.set(n, engine.now);
    engine.drain(batch, stay);
    // Past the window nothing matters but that it overran; stop there.
    const finished = engine.run({ until: () => batch.every((n) => out.finish.has(n)), maxMs: windowEnd });
    if (!finished) break;
    engine.advanceTo(engine.now + gap);
  }
  return out;
}
