import { performance } from 'node:perf_hooks';
import { abortPrecopy, jobStats, startPostCopy, timeToFinishMs } from '../../src/hypervisor/precopy.js';
import { MinHeap } from './heap.js';
import { CAPACITY_TOLERANCE } from '../../src/limits/waterfill.js';
import { Network, type Flow } from './physics.js';
import type { ClusterView, Policy, PolicyName, QueuedVm, RunningVm, SimNode } from './policy.js';
import type { Scenario, ScenarioVm } from './scenario.js';
import { TrackedMigration } from './tracked.js';

const GiB = 2 ** 30;
/** KubeVirt's evacuation back-off: 20 s after the first failure, doubling after each further one. */
export const RETRY_BASE_MS = 20_000;
export const DEFAULT_MAX_VIRTUAL_MS = 48 * 3600 * 1000;

export interface SimOptions {
  /** Stop (and report the VMs left) when virtual time passes this. */
  maxVirtualMs?: number;
}

export interface Failure {
  vm: string;
  atMs: number;
  reason: string;
}

export interface SimResult {
  scenario: string;
  policy: PolicyName;
  /** Virtual ms until the last VM left the drained nodes; null when some never did. */
  makespanMs: number | null;
  unfinished: string[];
  succeeded: number;
  failed: number;
  retried: number;
  totalDowntimeMs: number;
  maxDowntimeMs: number;
  peakClusterConcurrency: number;
  peakOutbound: Record<string, number>;
  peakInbound: Record<string, number>;
  /** Highest total bytes/s seen on each NIC, beside its capacity. */
  peakNic: Record<string, { peak: number; capacity: number }>;
  /** Where every VM ended. */
  placement: Record<string, string>;
  failures: Failure[];
  decisions: number;
  wallMs: number;
}

interface Active extends RunningVm {
  track: TrackedMigration;
  /** On the wire: its NICs and the rate limit the policy set. */
  flow: Flow;
  /** Completion deadline (virtual ms); Infinity when the timeout is off. */
  deadline: number;
  rate: number;
  version: number;
}

type Event = { at: number; kind: 'migration' | 'retry'; vm: string; version: number };

/**
 * A drain in virtual time: jumps from event to event (a migration completes, a
 * progress or completion timeout fires, a retry back-off ends), asking the
 * policy what to start and at what rate after each, and running every
 * migration on the pre-copy model over a shared-NIC network. It checks the
 * physics and the policy's own limits at every step and throws when either is
 * broken: a benchmark that silently over-books a NIC would measure nothing.
 */
export class DrainSimulator {
  private readonly nodes: SimNode[];
  private readonly node = new Map<string, SimNode>();
  private readonly net: Network;
  private queue: QueuedVm[] = [];
  private readonly queued = new Map<string, QueuedVm>();
  private readonly outbound = new Map<string, number>();
  private readonly inbound = new Map<string, number>();
  private readonly running = new Map<string, Active>();
  private readonly events = new MinHeap<Event>((a, b) => a.at < b.at);
  private readonly failures = new Map<string, number>();
  private readonly location = new Map<string, string>();
  private readonly onDrained = new Set<string>();
  private now = 0;
  private lastFinish = 0;
  private readonly vms: Map<string, ScenarioVm>;
  private readonly r: SimResult;

  constructor(private readonly scenario: Scenario, private readonly policy: Policy, private readonly options: SimOptions = {}) {
    const drained = new Set(scenario.drain);
    this.nodes = scenario.nodes.map((n) => ({ name: n.name, nic: n.nic, memory: n.memory, used: 0, reserved: 0, drained: drained.has(n.name) }));
    for (const n of this.nodes) this.node.set(n.name, n);
    this.net = new Network(this.nodes.map((n) => n.name), this.nodes.map((n) => n.nic));
    this.vms = new Map(scenario.vms.map((vm) => [vm.name, vm]));
    for (const vm of scenario.vms) {
      this.nodeOf(vm.node).used += vm.memory;
      this.location.set(vm.name, vm.node);
    }
    this.r = {
      scenario: scenario.name,
      policy: policy.name,
      makespanMs: null,
      unfinished: [],
      succeeded: 0,
      failed: 0,
      retried: 0,
      totalDowntimeMs: 0,
      maxDowntimeMs: 0,
      peakClusterConcurrency: 0,
      peakOutbound: {},
      peakInbound: {},
      peakNic: Object.fromEntries(this.nodes.map((n) => [n.name, { peak: 0, capacity: n.nic }])),
      placement: {},
      failures: [],
      decisions: 0,
      wallMs: 0,
    };
  }

  run(): SimResult {
    const wall0 = performance.now();
    // The drains are requested in the listed order, 1 ms apart, and each node's
    // VMs queue behind the previous node's, as KubeVirt's evacuation controller
    // creates migrations node by node. (Retries re-queue at their own time.)
    const order = new Map(this.scenario.drain.map((n, i) => [n, i]));
    for (const vm of this.scenario.vms) {
      const rank = order.get(vm.node);
      if (rank === undefined) continue;
      this.onDrained.add(vm.name);
      this.enqueue({ vm, node: vm.node, enqueuedAt: rank });
    }
    this.queue.sort(byQueueOrder);
    const maxMs = this.options.maxVirtualMs ?? DEFAULT_MAX_VIRTUAL_MS;
    this.step();
    let idle = 0;
    while (this.onDrained.size > 0) {
      const ev = this.nextEvent();
      if (!ev || ev.at > maxMs) break;
      idle = ev.at > this.now ? 0 : idle + 1;
      if (idle > 100_000) throw new Error(`simulation makes no progress at ${this.now} ms`);
      this.now = Math.max(this.now, ev.at);
      this.handle(ev);
      // Everything else due at this instant, so one decision sees all of it.
      for (let e = this.peekEvent(); e && e.at <= this.now; e = this.peekEvent()) this.handle(this.events.pop() as Event);
      this.step();
    }

    this.r.makespanMs = this.onDrained.size === 0 ? this.lastFinish : null;
    this.r.unfinished = [...this.onDrained].sort();
    this.r.placement = Object.fromEntries(this.location);
    this.r.wallMs = performance.now() - wall0;
    return this.r;
  }

  /** Asks the policy, starts what it says, and sets every migration's rate from the network. */
  private step(): void {
    const view: ClusterView = { now: this.now, nodes: this.nodes, queue: this.queue, running: [...this.running.values()] };
    const d = this.policy.decide(view);
    this.r.decisions++;
    if (d.start.length > 0) {
      for (const s of d.start) {
        const q = this.queued.get(s.vm);
        if (!q) throw new Error(`${this.policy.name} started ${s.vm}, which is not waiting in the queue`);
        this.queued.delete(s.vm);
        this.start(q, s.target);
      }
      this.queue = this.queue.filter((q) => this.queued.has(q.vm.name));
      this.r.peakClusterConcurrency = Math.max(this.r.peakClusterConcurrency, this.running.size);
      if (this.running.size > this.policy.limits.cluster) {
        throw new Error(`${this.policy.name} broke its cluster limit (${this.running.size} > ${this.policy.limits.cluster}) at ${this.now} ms`);
      }
    }
    this.setRates(d.limits);
  }

  private start(q: QueuedVm, targetName: string): void {
    const target = this.nodeOf(targetName);
    const vm = q.vm;
    if (target.drained) throw new Error(`${this.policy.name} sent ${vm.name} to ${targetName}, which is being drained`);
    if (targetName === q.node) throw new Error(`${this.policy.name} sent ${vm.name} to the node it runs on`);
    if (target.memory - target.used - target.reserved < vm.memory) {
      throw new Error(`${this.policy.name} sent ${vm.name} (${vm.memory} B) to ${targetName}, which lacks the memory`);
    }
    const rules = this.policy.rules;
    if ((this.failures.get(vm.name) ?? 0) > 0) this.r.retried++;
    target.reserved += vm.memory;
    const track = new TrackedMigration(
      { memoryBytes: vm.memory, dirtyRate: vm.dirtyRate, workingSet: vm.workingSet, zeroFraction: vm.zeroFraction },
      // The real rate is set below, before any time passes.
      { bandwidth: target.nic, maxDowntimeMs: rules.maxDowntimeMs, autoConverge: rules.autoConverge, postCopy: rules.postCopy },
      this.now,
    );
    const deadline = rules.completionTimeoutPerGiB > 0 ? this.now + rules.completionTimeoutPerGiB * 1000 * (vm.memory / GiB) : Infinity;
    const flow = this.net.flow(q.node, targetName);
    this.running.set(vm.name, { vm, source: q.node, target: targetName, track, flow, deadline, rate: 0, version: 0 });
    const { outbound, inbound } = this.policy.limits;
    const out = this.count(this.outbound, q.node, +1);
    const inb = this.count(this.inbound, targetName, +1);
    if (out > outbound) throw new Error(`${this.policy.name} broke its outbound limit on ${q.node} (${out} > ${outbound}) at ${this.now} ms`);
    if (inb > inbound) throw new Error(`${this.policy.name} broke its inbound limit on ${targetName} (${inb} > ${inbound}) at ${this.now} ms`);
    this.r.peakOutbound[q.node] = Math.max(this.r.peakOutbound[q.node] ?? 0, out);
    this.r.peakInbound[targetName] = Math.max(this.r.peakInbound[targetName] ?? 0, inb);
  }

  private count(counts: Map<string, number>, node: string, delta: number): number {
    const c = (counts.get(node) ?? 0) + delta;
    counts.set(node, c);
    return c;
  }

  private stop(a: Active): void {
    this.running.delete(a.vm.name);
    this.count(this.outbound, a.source, -1);
    this.count(this.inbound, a.target, -1);
  }

  private enqueue(q: QueuedVm): void {
    this.queued.set(q.vm.name, q);
    this.queue.push(q);
    const n = this.queue.length;
    if (n > 1 && byQueueOrder(this.queue[n - 2]!, this.queue[n - 1]!) > 0) this.queue.sort(byQueueOrder);
  }

  private setRates(limits: Map<string, number>): void {
    const active = [...this.running.values()];
    const flows = active.map((a) => {
      a.flow.cap = limits.get(a.vm.name) ?? Infinity;
      return a.flow;
    });
    const rates = this.net.rates(flows);
    const loads = this.net.loads(flows, rates);
    loads.forEach((load, i) => {
      const cap = this.net.capacity[i]!;
      const name = this.nodes[i]!.name;
      if (load > cap * (1 + CAPACITY_TOLERANCE)) {
        throw new Error(`NIC of ${name} over capacity at ${this.now} ms: ${load} B/s > ${cap} B/s (${this.policy.name})`);
      }
      const peak = this.r.peakNic[name]!;
      if (load > peak.peak) peak.peak = load;
    });
    active.forEach((a, i) => {
      const rate = rates[i]!;
      if (!(rate > 0) || !Number.isFinite(rate)) throw new Error(`${a.vm.name} got rate ${rate} at ${this.now} ms`);
      if (Math.abs(rate - a.rate) <= 1e-12 * rate) return;
      a.track.advanceTo(this.now);
      a.track.setBandwidth(rate);
      a.rate = rate;
      this.schedule(a);
    });
  }

  private handle(ev: Event): void {
    if (ev.kind === 'retry') {
      this.enqueue({ vm: this.vmOf(ev.vm), node: this.location.get(ev.vm)!, enqueuedAt: this.now });
      return;
    }
    const a = this.running.get(ev.vm);
    if (!a || a.version !== ev.version) return;
    a.track.advanceTo(this.now);
    // Rounding can leave a last sliver that no later instant would represent: finish it here.
    const left = timeToFinishMs(a.track.state);
    if (a.track.state.stage !== 'completed' && left < 1e-6) a.track.advanceTo(this.now + left);
    const s = a.track.state;
    const rules = this.policy.rules;
    if (s.stage === 'completed') {
      this.complete(a);
      return;
    }
    if (s.stage === 'precopy' && rules.progressTimeoutMs > 0 && this.now - a.track.lastProgressAt >= rules.progressTimeoutMs) {
      this.fail(a, `live migration stuck for ${rules.progressTimeoutMs / 1000} seconds and has been aborted`);
      return;
    }
    if (s.stage === 'precopy' && this.now >= a.deadline) {
      if (!rules.postCopy) {
        this.fail(a, `live migration is not completed after ${Math.round(s.elapsedMs / 1000)} seconds and has been aborted`);
        return;
      }
      a.track.state = startPostCopy(s);
    }
    this.schedule(a);
  }

  private complete(a: Active): void {
    this.stop(a);
    const source = this.nodeOf(a.source);
    const target = this.nodeOf(a.target);
    source.used -= a.vm.memory;
    target.reserved -= a.vm.memory;
    target.used += a.vm.memory;
    this.location.set(a.vm.name, a.target);
    this.onDrained.delete(a.vm.name);
    this.failures.delete(a.vm.name);
    const downtime = jobStats(a.track.state).downtimeMs ?? 0;
    this.r.succeeded++;
    this.r.totalDowntimeMs += downtime;
    this.r.maxDowntimeMs = Math.max(this.r.maxDowntimeMs, downtime);
    this.lastFinish = this.now;
  }

  private fail(a: Active, reason: string): void {
    a.track.state = abortPrecopy(a.track.state, reason);
    this.stop(a);
    this.nodeOf(a.target).reserved -= a.vm.memory;
    const count = (this.failures.get(a.vm.name) ?? 0) + 1;
    this.failures.set(a.vm.name, count);
    this.r.failed++;
    if (this.r.failures.length < 100) this.r.failures.push({ vm: a.vm.name, atMs: this.now, reason });
    this.events.push({ at: this.now + RETRY_BASE_MS * 2 ** (count - 1), kind: 'retry', vm: a.vm.name, version: 0 });
  }

  /** The next instant this migration needs looking at: completion, or a timeout that could fire. */
  private schedule(a: Active): void {
    a.version++;
    const t = a.track;
    let at = t.finishesAt();
    if (t.state.stage === 'precopy') {
      at = Math.min(at, a.deadline);
      const progress = this.policy.rules.progressTimeoutMs;
      if (progress > 0) at = Math.min(at, t.lastProgressAt + progress);
    }
    if (at < Infinity) this.events.push({ at: Math.max(at, this.now), kind: 'migration', vm: a.vm.name, version: a.version });
  }

  private nextEvent(): Event | undefined {
    for (;;) {
      const e = this.events.pop();
      if (!e || e.kind === 'retry' || this.running.get(e.vm)?.version === e.version) return e;
    }
  }

  private peekEvent(): Event | undefined {
    for (;;) {
      const e = this.events.peek();
      if (!e || e.kind === 'retry' || this.running.get(e.vm)?.version === e.version) return e;
      this.events.pop();
    }
  }

  private nodeOf(name: string): SimNode {
    const n = this.node.get(name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  private vmOf(name: string): ScenarioVm {
    const vm = this.vms.get(name);
    if (!vm) throw new Error(`unknown vm ${name}`);
    return vm;
  }
}

function byQueueOrder(a: QueuedVm, b: QueuedVm): number {
  return a.enqueuedAt - b.enqueuedAt || (a.vm.name < b.vm.name ? -1 : a.vm.name > b.vm.name ? 1 : 0);
}
