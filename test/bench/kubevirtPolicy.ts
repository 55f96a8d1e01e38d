import { DEFAULT_CONFIG, type Scenario, type ScenarioConfig } from './scenario.js';
import type { ClusterView, MigrationRules, Policy, PolicyDecision, SimNode } from './policy.js';

const MiB = 2 ** 20;

/**
 * KubeVirt's migration controller as it works upstream: FIFO admission within
 * parallelMigrationsPerCluster and parallelOutboundMigrationsPerNode, no
 * inbound limit and no cluster bandwidth budget (KubeVirt has neither), the
 * target chosen by the scheduler as the least memory-loaded node that fits,
 * every migration capped at bandwidthPerMigration (0 = the NICs share
 * themselves out), aborted on progressTimeout / completionTimeoutPerGiB, or
 * switched to post-copy at the completion timeout when allowPostCopy is set;
 * auto-converge is QEMU's capability, on when allowAutoConverge is set.
 *
 * - `kubevirt-tuned` runs with the scenario's own `config` (every KubeVirt field
 *   in it; Ferry's own `parallelInboundMigrationsPerNode` and the budget do not
 *   exist in KubeVirt): what a user gets who tunes KubeVirt as the scenario
 *   tunes Ferry.
 * - `kubevirt-default` ignores the scenario's config: KubeVirt as shipped.
 */
export class KubevirtPolicy implements Policy {
  readonly limits: { cluster: number; outbound: number; inbound: number };
  readonly rules: MigrationRules;
  /** Bytes/s per migration as libvirt is told it; Infinity = unlimited. */
  readonly bandwidthPerMigration: number;

  constructor(readonly scenario: Scenario, readonly name: 'kubevirt-tuned' | 'kubevirt-default') {
    const c: ScenarioConfig = name === 'kubevirt-tuned' ? scenario.config : DEFAULT_CONFIG;
    this.limits = { cluster: c.parallelMigrationsPerCluster, outbound: c.parallelOutboundMigrationsPerNode, inbound: Infinity };
    this.rules = {
      progressTimeoutMs: c.progressTimeout * 1000,
      completionTimeoutPerGiB: c.completionTimeoutPerGiB,
      autoConverge: c.allowAutoConverge,
      postCopy: c.allowPostCopy,
      maxDowntimeMs: c.maxDowntimeMs,
    };
    this.bandwidthPerMigration = libvirtBandwidth(c.bandwidthPerMigration);
  }

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
    const limits = new Map<string, number>();
    if (this.bandwidthPerMigration < Infinity) {
      for (const r of view.running) limits.set(r.vm.name, this.bandwidthPerMigration);
      for (const s of start) limits.set(s.vm, this.bandwidthPerMigration);
    }
    return { start, limits };
  }
}

/**
 * What virt-launcher hands libvirt: bandwidthPerMigration in whole MiB/s
 * (below 1 MiB/s becomes 1 MiB/s, otherwise rounded to the nearest MiB/s);
 * 0 means no limit.
 */
export function libvirtBandwidth(bytesPerSecond: number): number {
  if (!(bytesPerSecond > 0)) return Infinity;
  return Math.max(1, Math.round(bytesPerSecond / MiB)) * MiB;
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
