import { performance } from 'node:perf_hooks';
import { decide } from '../../src/limits/decide.js';
import type { LimitsConfig, NodeState, QueuedMigration, RunningMigration } from '../../src/limits/types.js';
import type { ClusterView, Policy, PolicyDecision, QueuedVm, RunningVm } from './policy.js';
import type { Scenario } from './scenario.js';

/**
 * Ferry: the limits core decides what starts, where, and at what bandwidth,
 * re-run on every start and end; the scenario's config applies (including its
 * auto-converge / post-copy permissions and Ferry's own inbound limit and budget).
 */
export class FerryPolicy implements Policy {
  readonly name = 'ferry' as const;
  readonly limits: { cluster: number; outbound: number; inbound: number };
  readonly rules: Policy['rules'];
  readonly latencies: number[] = [];
  readonly cpuTimes: number[] = [];
  private readonly config: LimitsConfig;
  /** Queue entries live from enqueue to start; converting each once keeps decisions cheap. */
  private readonly asQueued = new WeakMap<QueuedVm, QueuedMigration>();
  private readonly asRunning = new WeakMap<RunningVm, RunningMigration>();
  private readonly nodeStates = new Map<string, NodeState>();

  constructor(readonly scenario: Scenario) {
    const c = scenario.config;
    this.limits = { cluster: c.parallelMigrationsPerCluster, outbound: c.parallelOutboundMigrationsPerNode, inbound: c.parallelInboundMigrationsPerNode };
    this.rules = {
      progressTimeoutMs: c.progressTimeout * 1000,
      completionTimeoutPerGiB: c.completionTimeoutPerGiB,
      autoConverge: c.allowAutoConverge,
      postCopy: c.allowPostCopy,
      maxDowntimeMs: c.maxDowntimeMs,
    };
    this.config = {
      parallelMigrationsPerCluster: c.parallelMigrationsPerCluster,
      parallelOutboundMigrationsPerNode: c.parallelOutboundMigrationsPerNode,
      parallelInboundMigrationsPerNode: c.parallelInboundMigrationsPerNode,
      bandwidthBudget: scenario.bandwidthBudget,
      // Every node names its NIC; this only covers nodes decide has not been told about.
      defaultNicCapacity: Math.min(...scenario.nodes.map((n) => n.nic)),
      bandwidthPerMigration: c.bandwidthPerMigration,
    };
  }

  decide(view: ClusterView): PolicyDecision {
    // Kept between decisions and brought up to date, rather than rebuilt, to spare the collector.
    const nodes: NodeState[] = view.nodes.map((n) => {
      let s = this.nodeStates.get(n.name);
      if (!s) this.nodeStates.set(n.name, (s = { name: n.name, nicCapacity: n.nic, schedulable: true }));
      s.schedulable = !n.drained;
      s.freeMemory = n.memory - n.used - n.reserved;
      return s;
    });
    const flags = { maxDowntimeMs: this.rules.maxDowntimeMs, allowAutoConverge: this.rules.autoConverge, allowPostCopy: this.rules.postCopy };
    const running: RunningMigration[] = view.running.map((r) => {
      let m = this.asRunning.get(r);
      if (!m) {
        m = {
          id: r.vm.name,
          sourceNode: r.source,
          targetNode: r.target,
          priority: 'evacuation',
          memoryBytes: r.vm.memory,
          dirtyRate: r.vm.dirtyRate,
          workingSet: r.vm.workingSet,
          ...flags,
        };
        this.asRunning.set(r, m);
      }
      return m;
    });
    const queued: QueuedMigration[] = view.queue.map((q) => {
      let m = this.asQueued.get(q);
      if (!m) {
        m = {
          id: q.vm.name,
          sourceNode: q.node,
          priority: 'evacuation',
          enqueuedAt: q.enqueuedAt,
          memoryBytes: q.vm.memory,
          dirtyRate: q.vm.dirtyRate,
          workingSet: q.vm.workingSet,
          ...flags,
        };
        this.asQueued.set(q, m);
      }
      return m;
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const d = decide({ config: this.config, nodes, running, queued, now: view.now });
    this.latencies.push(performance.now() - t0);
    const cpu = process.cpuUsage(cpu0);
    this.cpuTimes.push((cpu.user + cpu.system) / 1000);
    return {
      start: d.start.map((s) => {
        // Nothing is pinned here, so placement always names the node.
        if (s.targetNode === undefined) throw new Error(`ferry started ${s.id} without a target node`);
        return { vm: s.id, target: s.targetNode };
      }),
      limits: new Map(Object.entries(d.bandwidth)),
    };
  }
}
