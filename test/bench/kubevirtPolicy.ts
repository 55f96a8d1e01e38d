import { DEFAULT_CONFIG, type Scenario } from './scenario.js';
import type { ClusterView, Policy, PolicyDecision, SimNode } from './policy.js';

/**
 * KubeVirt as shipped: 5 migrations per cluster, 2 outbound per node, no
 * inbound limit, no bandwidth limit (the NICs share themselves out), target
 * chosen by the scheduler as the least memory-loaded node that fits, and the
 * migrations abort on progressTimeout / completionTimeoutPerGiB without
 * auto-converge or post-copy. The scenario's own config is ignored on purpose.
 */
export class KubevirtDefaultPolicy implements Policy {
  readonly name = 'kubevirt-default' as const;
  readonly limits = {
    cluster: DEFAULT_CONFIG.parallelMigrationsPerCluster,
    outbound: DEFAULT_CONFIG.parallelOutboundMigrationsPerNode,
    inbound: Infinity,
  };
  readonly rules = {
    progressTimeoutMs: DEFAULT_CONFIG.progressTimeout * 1000,
    completionTimeoutPerGiB: DEFAULT_CONFIG.completionTimeoutPerGiB,
    autoConverge: false,
    postCopy: false,
    maxDowntimeMs: DEFAULT_CONFIG.maxDowntimeMs,
  };

  constructor(readonly scenario: Scenario) {}

  decide(view: ClusterView): PolicyDecision {
    const start: PolicyDecision['start'] = [];
    let cluster = view.running.length;
    const outbound = new Map<string, number>();
    for (const r of view.running) outbound.set(r.source, (outbound.get(r.source) ?? 0) + 1);
    const load = new Map<string, number>(view.nodes.map((n) => [n.name, n.used + n.reserved]));
    const candidates = view.nodes.filter((n) => !n.drained);
    for (const q of view.queue) {
      if (cluster >= this.limits.cluster) break;
      if ((outbound.get(q.node) ?? 0) >= this.limits.outbound) continue;
      const target = leastLoaded(candidates, load, q.node, q.vm.memory);
      if (!target) continue;
      start.push({ vm: q.vm.name, target: target.name });
      cluster++;
      outbound.set(q.node, (outbound.get(q.node) ?? 0) + 1);
      load.set(target.name, (load.get(target.name) ?? 0) + q.vm.memory);
    }
    return { start, limits: new Map() };
  }
}

/** The default scheduler's LeastAllocated scoring on memory alone; ties by name. */
function leastLoaded(nodes: readonly SimNode[], load: Map<string, number>, source: string, memory: number): SimNode | undefined {
  let best: SimNode | undefined;
  let bestShare = Infinity;
  for (const n of nodes) {
    if (n.name === source) continue;
    const used = load.get(n.name) ?? 0;
    if (used + memory > n.memory) continue;
    const share = used / n.memory;
    if (share < bestShare || (share === bestShare && best !== undefined && n.name < best.name)) {
      best = n;
      bestShare = share;
    }
  }
  return best;
}
