import { predictMigration } from '../../src/hypervisor/precopy.js';
import type { Scenario, ScenarioVm } from './scenario.js';

export interface Bound {
  ms: number;
  /** Which term sets it, for the report. */
  binding: string;
}

export interface Bounds {
  /**
   * No drain can beat this: every byte a drained node holds must cross its NIC,
   * and all of them must fit through the receiving NICs (and the budget, if set).
   * Zero pages are never sent, so only the non-zero part of memory counts.
   */
  lower: Bound;
  /**
   * The same bound with each VM's pre-copy re-sends counted as if it migrated
   * alone at full NIC speed (the fewest bytes pre-copy can send for it). Only
   * meaningful without auto-converge and post-copy, which change what is sent.
   */
  precopy: Bound | null;
}

export function bounds(s: Scenario): Bounds {
  const sent = (vm: ScenarioVm) => vm.memory * (1 - vm.zeroFraction);
  const lower = drainBound(s, sent);
  if (s.config.allowAutoConverge || s.config.allowPostCopy) return { lower, precopy: null };
  const drained = new Set(s.drain);
  const nic = new Map(s.nodes.map((n) => [n.name, n.nic]));
  const fastestTarget = Math.max(...s.nodes.filter((n) => !drained.has(n.name)).map((n) => n.nic));
  const precopy = drainBound(s, (vm) => {
    const bandwidth = Math.min(nic.get(vm.node)!, fastestTarget);
    const p = predictMigration(
      { memoryBytes: vm.memory, dirtyRate: vm.dirtyRate, workingSet: vm.workingSet, zeroFraction: vm.zeroFraction },
      { bandwidth, maxDowntimeMs: s.config.maxDowntimeMs, autoConverge: false, postCopy: false },
    );
    return (p.durationMs / 1000) * bandwidth;
  });
  return { lower, precopy };
}

function drainBound(s: Scenario, bytesOf: (vm: ScenarioVm) => number): Bound {
  const drained = new Set(s.drain);
  const perNode = new Map<string, number>();
  let total = 0;
  for (const vm of s.vms) {
    if (!drained.has(vm.node)) continue;
    const b = bytesOf(vm);
    perNode.set(vm.node, (perNode.get(vm.node) ?? 0) + b);
    total += b;
  }
  let best: Bound = { ms: 0, binding: 'nothing to move' };
  for (const n of s.nodes) {
    const bytes = perNode.get(n.name);
    if (bytes === undefined) continue;
    const ms = (bytes / n.nic) * 1000;
    if (ms > best.ms) best = { ms, binding: `${n.name}'s NIC` };
  }
  const receive = s.nodes.filter((n) => !drained.has(n.name)).reduce((sum, n) => sum + n.nic, 0);
  const through = s.bandwidthBudget > 0 ? Math.min(s.bandwidthBudget, receive) : receive;
  const ms = (total / through) * 1000;
  if (ms > best.ms) best = { ms, binding: through === receive ? 'the receiving NICs together' : 'the bandwidth budget' };
  return best;
}
