import { migrationCap, requiredBandwidth } from './convergence.js';
import { Network } from './network.js';
import type { BandwidthDemand, LimitsConfig, NodeState } from './types.js';
import { waterFill, type Flow } from './waterfill.js';

/**
 * Bytes/s for each migration: never more than a NIC, the budget or a cap allows,
 * shared max-min fairly, but convergence first. Conceptually two fills:
 *  1. everyone up to what it needs to converge (max-min fairly among those
 *     needs), so a busy guest takes from the others only down to their own need;
 *  2. what is left, max-min fairly on the totals, up to the caps.
 * Every migration needs something, so every one gets a non-zero share.
 */
export function allocateBandwidth(
  config: LimitsConfig,
  nodes: readonly NodeState[],
  migrations: readonly BandwidthDemand[],
): Record<string, number> {
  const net = new Network(config, nodes);
  const paths = migrations.map((m) => net.path(m.sourceNode, m.targetNode));
  const caps = migrations.map((m) => migrationCap(config.bandwidthPerMigration, m));
  const needs = migrations.map((m) => requiredBandwidth(m));
  return byId(migrations, allocateFlows(net.capacities, paths, caps, needs));
}

export function byId(migrations: readonly { id: string }[], shares: ArrayLike<number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < migrations.length; i++) out[migrations[i]!.id] = shares[i]!;
  return out;
}

/** The allocation for flows along `paths`, with per-flow caps and convergence needs. */
export function allocateFlows(
  capacities: readonly number[],
  paths: readonly (readonly number[])[],
  caps: readonly number[],
  needs: readonly number[],
): Float64Array {
  const flows: Flow[] = paths.map((resources, i) => ({ resources, floor: 0, cap: caps[i]! }));
  const fair = waterFill(capacities, flows);
  // Usually plain max-min fairness already covers every need; then it is the answer,
  // because it stays max-min fair within the smaller set of allocations that do.
  let covered = true;
  for (let i = 0; i < flows.length && covered; i++) covered = fair[i]! >= Math.min(needs[i]!, caps[i]!);
  if (covered) return fair;
  for (let i = 0; i < flows.length; i++) flows[i]!.cap = Math.min(caps[i]!, needs[i]!);
  const needed = waterFill(capacities, flows);
  for (let i = 0; i < flows.length; i++) {
    flows[i]!.floor = needed[i]!;
    flows[i]!.cap = caps[i]!;
  }
  return waterFill(capacities, flows);
}
