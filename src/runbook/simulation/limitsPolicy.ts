import { performance } from 'node:perf_hooks';
import { decide } from '../../limits/decide.js';
import type { LimitsConfig, NodeState, QueuedMigration, RunningMigration } from '../../limits/types.js';
import type { ClusterView, MigrationRules, Policy, PolicyDecision, QueuedVm, RunningVm } from './policy.js';

/**
 * Ferry's way: the limits core (`decide`) says what starts, where, and at what
 * bandwidth, re-run on every start and end, exactly as the controller's
 * admission does. Every simulated migration is an evacuation.
 */
export class LimitsPolicy implements Policy {
  readonly limits: { cluster: number; outbound: number; inbound: number };
  readonly latencies: number[] = [];
  readonly cpuTimes: number[] = [];
  /** Queue entries live from enqueue to start; converting each once keeps decisions cheap. */
  private readonly asQueued = new WeakMap<QueuedVm, QueuedMigration>();
  private readonly asRunning = new WeakMap<RunningVm, RunningMigration>();
  private readonly nodeStates = new Map<string, NodeState>();

  constructor(
    private readonly config: LimitsConfig,
    readonly rules: MigrationRules,
    readonly name: string = 'ferry',
  ) {
    this.limits = {
      cluster: config.parallelMigrationsPerCluster,
      outbound: config.parallelOutboundMigrationsPerNode,
      inbound: config.parallelInboundMigrationsPerNode,
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
        if (s.targetNode === undefined) throw new Error(`${this.name} started ${s.id} without a target node`);
        return { vm: s.id, target: s.targetNode };
      }),
      limits: new Map(Object.entries(d.bandwidth)),
    };
  }
}
