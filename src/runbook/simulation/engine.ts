import { abortPrecopy, jobStats, startPostCopy, timeToFinishMs } from '../../hypervisor/precopy.js';
import { CAPACITY_TOLERANCE } from '../../limits/waterfill.js';
import { MinHeap } from './heap.js';
import { Network, type Flow } from './network.js';
import type { ClusterView, Policy, QueuedVm, RunningVm, SimNode, SimVm } from './policy.js';
import { TrackedMigration } from './tracked.js';

const GiB = 2 ** 30;
/** KubeVirt's evacuation back-off: 20 s after the first failure, doubling after each further one. */
export const RETRY_BASE_MS = 20_000;

export interface EngineNode {
  name: string;
  /** Bytes/s each way. */
  nic: number;
  /** Bytes. */
  memory: number;
}

export interface EngineOptions {
  /**
   * Admission → first byte sent: what a real migration spends creating,
   * scheduling and starting its target pod and handing off to the source. It
   * holds its slot and its bandwidth meanwhile, as the controller counts it.
   */
  startDelayMs?: number;
  /** Last byte sent → slot freed: reporting the result and finalising. */
  finishDelayMs?: number;
  /** Told the instant the last VM that had to leave a drained node has left it. */
  onNodeEmptied?: (node: string, at: number) => void;
}

export interface Failure {
  vm: string;
  atMs: number;
  reason: string;
}

/** What the engine observed on the way; a benchmark reports it, a planner ignores it. */
export interface EngineStats {
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
  failures: Failure[];
  decisions: number;
}

interface Active extends RunningVm {
  track: TrackedMigration;
  /** The node it must leave: where it was when it was queued. */
  origin: string;
  /** On the wire: its NICs and the rate limit the policy set. */
  flow: Flow;
  /** Completion deadline (virtual ms); Infinity when the timeout is off. */
  deadline: number;
  rate: number;
  version: number;
  /** Set once its last byte is sent: when it lets go of its slot. */
  releaseAt?: number;
}

type Event =
  | { at: number; kind: 'migration'; vm: string; version: number }
  | { at: number; kind: 'retry'; vm: string; version: number }
  | { at: number; kind: 'timer'; vm: string; version: number; fn: () => void };

/**
 * Migrations in virtual time: jumps from event to event (a migration
 * completes, a progress or completion timeout fires, a retry back-off ends, a
 * caller's timer), asking the policy what to start and at what rate after
 * each, and running every migration on the pre-copy model over a shared-NIC
 * network. It checks the physics and the policy's own limits at every step and
 * throws when either is broken: a simulation that silently over-books a NIC
 * would predict nothing.
 *
 * Callers drive it: `drain` nodes (their VMs queue to leave), `run` until
 * something holds, `uncordon` nodes, set timers with `at`. The drain benchmark
 * drains once and runs to the end; the runbook planner drains batch by batch.
 */
export class MigrationEngine {
  now = 0;
  /** Virtual ms at which the last migration completed. */
  lastFinish = 0;
  readonly stats: EngineStats;
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
  /** VMs that must still leave a drained node, by that node. */
  private readonly leaving = new Map<string, Set<string>>();
  /** VM → the node it must leave. */
  private readonly originOf = new Map<string, string>();
  private readonly emptied = new Map<string, number>();
  private readonly vms: Map<string, SimVm>;
  private readonly startDelay: number;
  private readonly finishDelay: number;

  constructor(nodes: readonly EngineNode[], vms: readonly SimVm[], private readonly policy: Policy, private readonly options: EngineOptions = {}) {
    this.nodes = nodes.map((n) => ({ name: n.name, nic: n.nic, memory: n.memory, used: 0, reserved: 0, drained: false }));
    for (const n of this.nodes) this.node.set(n.name, n);
    this.net = new Network(this.nodes.map((n) => n.name), this.nodes.map((n) => n.nic));
    this.vms = new Map(vms.map((vm) => [vm.name, vm]));
    for (const vm of vms) {
      this.nodeOf(vm.node).used += vm.memory;
      this.location.set(vm.name, vm.node);
    }
    this.startDelay = options.startDelayMs ?? 0;
    this.finishDelay = options.finishDelayMs ?? 0;
    for (const [what, v] of [['startDelayMs', this.startDelay], ['finishDelayMs', this.finishDelay]] as const) {
      if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`migration engine: ${what} must be a finite number ≥ 0, got ${v}`);
    }
    this.stats = {
      succeeded: 0,
      failed: 0,
      retried: 0,
      totalDowntimeMs: 0,
      maxDowntimeMs: 0,
      peakClusterConcurrency: 0,
      peakOutbound: {},
      peakInbound: {},
      peakNic: Object.fromEntries(this.nodes.map((n) => [n.name, { peak: 0, capacity: n.nic }])),
      failures: [],
      decisions: 0,
    };
  }

  /**
   * Cordons `nodes` and queues every VM on them (but those in `stay`) to leave,
   * node after node in the given order, 1 ms apart, as KubeVirt's evacuation
   * controller creates migrations node by node. A node with nothing to move is
   * empty at once.
   */
  drain(nodes: readonly string[], stay: ReadonlySet<string> = new Set()): void {
    const rank = new Map<string, number>();
    for (const name of nodes) {
      const n = this.nodeOf(name);
      n.drained = true;
      if (!rank.has(name)) rank.set(name, rank.size);
      if (!this.leaving.has(name)) this.leaving.set(name, new Set());
      this.emptied.delete(name);
    }
    for (const vm of this.vms.values()) {
      const at = this.location.get(vm.name)!;
      const r = rank.get(at);
      if (r === undefined || stay.has(vm.name) || this.originOf.has(vm.name)) continue;
      this.leaving.get(at)!.add(vm.name);
      this.originOf.set(vm.name, at);
      this.enqueue({ vm, node: at, enqueuedAt: this.now + r });
    }
    for (const name of rank.keys()) if (this.leaving.get(name)!.size === 0) this.markEmptied(name);
  }

  /** Marks `node` unschedulable without moving anything off it (cordoned by someone else). */
  cordon(node: string): void {
    this.nodeOf(node).drained = true;
  }

  /** Uncordons `node`: it may receive VMs again. */
  uncordon(node: string): void {
    this.nodeOf(node).drained = false;
  }

  /** VMs that still have to leave `node`. */
  leftOn(node: string): number {
    return this.leaving.get(node)?.size ?? 0;
  }

  /** VMs that still have to leave any drained node. */
  unfinished(): string[] {
    return [...this.originOf.keys()].sort();
  }

  /** When the last VM that had to leave `node` left it, if it has. */
  emptiedAt(node: string): number | undefined {
    return this.emptied.get(node);
  }

  /** Where every VM is now. */
  placement(): Record<string, string> {
    return Object.fromEntries(this.location);
  }

  /** Calls `fn` at virtual time `t` (no earlier than now), between migration events. */
  at(t: number, fn: () => void): void {
    this.events.push({ at: Math.max(t, this.now), kind: 'timer', vm: '', version: 0, fn });
  }

  /**
   * Runs events until `until()` holds (default: no VM left to move) or the next
   * event is past `maxMs`. True when `until()` held.
   */
  run(opts: { until?: () => boolean; maxMs: number }): boolean {
    const done = opts.until ?? (() => this.originOf.size === 0);
    this.step();
    let idle = 0;
    while (!done()) {
      const ev = this.nextEvent();
      if (!ev) return false;
      if (ev.at > opts.maxMs) {
        this.events.push(ev);
        return false;
      }
      idle = ev.at > this.now ? 0 : idle + 1;
      if (idle > 100_000) throw new Error(`simulation makes no progress at ${this.now} ms`);
      this.now = Math.max(this.now, ev.at);
      this.handle(ev);
      // Everything else due at this instant, so one decision sees all of it.
      for (let e = this.peekEvent(); e && e.at <= this.now; e = this.peekEvent()) this.handle(this.events.pop() as Event);
      this.step();
    }
    return true;
  }

  /** Moves time to `t`, handling whatever falls due on the way. */
  advanceTo(t: number): void {
    this.run({ until: () => false, maxMs: t });
    this.now = Math.max(this.now, t);
  }

  /** Asks the policy, starts what it says, and sets every migration's rate from the network. */
  private step(): void {
    const view: ClusterView = { now: this.now, nodes: this.nodes, queue: this.queue, running: [...this.running.values()] };
    const d = this.policy.decide(view);
    this.stats.decisions++;
    if (d.start.length > 0) {
      for (const s of d.start) {
        const q = this.queued.get(s.vm);
        if (!q) throw new Error(`${this.policy.name} started ${s.vm}, which is not waiting in the queue`);
        this.queued.delete(s.vm);
        this.start(q, s.target);
      }
      this.queue = this.queue.filter((q) => this.queued.has(q.vm.name));
      this.stats.peakClusterConcurrency = Math.max(this.stats.peakClusterConcurrency, this.running.size);
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
    if ((this.failures.get(vm.name) ?? 0) > 0) this.stats.retried++;
    target.reserved += vm.memory;
    const track = new TrackedMigration(
      { memoryBytes: vm.memory, dirtyRate: vm.dirtyRate, workingSet: vm.workingSet, zeroFraction: vm.zeroFraction },
      // The real rate is set below, before any time passes.
      { bandwidth: target.nic, maxDowntimeMs: rules.maxDowntimeMs, autoConverge: rules.autoConverge, postCopy: rules.postCopy },
      // Its pre-copy begins once the target is up; until then the model stands still.
      this.now + this.startDelay,
    );
    const deadline = rules.completionTimeoutPerGiB > 0 ? this.now + rules.completionTimeoutPerGiB * 1000 * (vm.memory / GiB) : Infinity;
    const flow = this.net.flow(q.node, targetName);
    const origin = this.originOf.get(vm.name) ?? q.node;
    this.running.set(vm.name, { vm, source: q.node, target: targetName, origin, track, flow, deadline, rate: 0, version: 0 });
    const { outbound, inbound } = this.policy.limits;
    const out = this.count(this.outbound, q.node, +1);
    const inb = this.count(this.inbound, targetName, +1);
    if (out > outbound) throw new Error(`${this.policy.name} broke its outbound limit on ${q.node} (${out} > ${outbound}) at ${this.now} ms`);
    if (inb > inbound) throw new Error(`${this.policy.name} broke its inbound limit on ${targetName} (${inb} > ${inbound}) at ${this.now} ms`);
    this.stats.peakOutbound[q.node] = Math.max(this.stats.peakOutbound[q.node] ?? 0, out);
    this.stats.peakInbound[targetName] = Math.max(this.stats.peakInbound[targetName] ?? 0, inb);
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
      const peak = this.stats.peakNic[name]!;
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
    if (ev.kind === 'timer') {
      ev.fn();
      return;
    }
    if (ev.kind === 'retry') {
      this.enqueue({ vm: this.vmOf(ev.vm), node: this.location.get(ev.vm)!, enqueuedAt: this.now });
      return;
    }
    const a = this.running.get(ev.vm);
    if (!a || a.version !== ev.version) return;
    if (a.releaseAt !== undefined) {
      if (this.now >= a.releaseAt) this.complete(a);
      else this.schedule(a);
      return;
    }
    a.track.advanceTo(this.now);
    // Rounding can leave a last sliver that no later instant would represent: finish it here.
    const left = timeToFinishMs(a.track.state);
    if (a.track.state.stage !== 'completed' && left < 1e-6) a.track.advanceTo(this.now + left);
    const s = a.track.state;
    const rules = this.policy.rules;
    if (s.stage === 'completed') {
      if (this.finishDelay > 0) {
        a.releaseAt = this.now + this.finishDelay;
        this.schedule(a);
      } else this.complete(a);
      return;
    }
    // The same sum `schedule` woke us for: `now − last ≥ timeout` can round the other way and loop for ever.
    if (s.stage === 'precopy' && rules.progressTimeoutMs > 0 && this.now >= a.track.lastProgressAt + rules.progressTimeoutMs) {
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
    this.originOf.delete(a.vm.name);
    this.failures.delete(a.vm.name);
    const downtime = jobStats(a.track.state).downtimeMs ?? 0;
    this.stats.succeeded++;
    this.stats.totalDowntimeMs += downtime;
    this.stats.maxDowntimeMs = Math.max(this.stats.maxDowntimeMs, downtime);
    this.lastFinish = this.now;
    const left = this.leaving.get(a.origin);
    if (left?.delete(a.vm.name) && left.size === 0) this.markEmptied(a.origin);
  }

  private markEmptied(node: string): void {
    this.emptied.set(node, this.now);
    this.options.onNodeEmptied?.(node, this.now);
  }

  private fail(a: Active, reason: string): void {
    a.track.state = abortPrecopy(a.track.state, reason);
    this.stop(a);
    this.nodeOf(a.target).reserved -= a.vm.memory;
    const count = (this.failures.get(a.vm.name) ?? 0) + 1;
    this.failures.set(a.vm.name, count);
    this.stats.failed++;
    if (this.stats.failures.length < 100) this.stats.failures.push({ vm: a.vm.name, atMs: this.now, reason });
    this.events.push({ at: this.now + RETRY_BASE_MS * 2 ** (count - 1), kind: 'retry', vm: a.vm.name, version: 0 });
  }

  /** The next instant this migration needs looking at: completion, release, or a timeout that could fire. */
  private schedule(a: Active): void {
    a.version++;
    if (a.releaseAt !== undefined) {
      this.events.push({ at: Math.max(a.releaseAt, this.now), kind: 'migration', vm: a.vm.name, version: a.version });
      return;
    }
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
      if (!e || e.kind !== 'migration' || this.running.get(e.vm)?.version === e.version) return e;
    }
  }

  private peekEvent(): Event | undefined {
    for (;;) {
      const e = this.events.peek();
      if (!e || e.kind !== 'migration' || this.running.get(e.vm)?.version === e.version) return e;
      this.events.pop();
    }
  }

  private nodeOf(name: string): SimNode {
    const n = this.node.get(name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  private vmOf(name: string): SimVm {
    const vm = this.vms.get(name);
    if (!vm) throw new Error(`unknown vm ${name}`);
    return vm;
  }
}

function byQueueOrder(a: QueuedVm, b: QueuedVm): number {
  return a.enqueuedAt - b.enqueuedAt || (a.vm.name < b.vm.name ? -1 : a.vm.name > b.vm.name ? 1 : 0);
}
