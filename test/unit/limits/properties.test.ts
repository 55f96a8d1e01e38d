import fc from 'fast-check';
import { allocateBandwidth } from '../../../src/limits/allocate.js';
import { migrationCap } from '../../../src/limits/convergence.js';
import { decide } from '../../../src/limits/decide.js';
import type { BandwidthDemand, Decision, LimitsConfig, NodeState, QueuedMigration, RunningMigration } from '../../../src/limits/types.js';
import { CAPACITY_TOLERANCE } from '../../../src/limits/waterfill.js';
import { Gi, Mi } from './fixtures.js';

const within = (sum: number, cap: number) => sum <= cap * (1 + CAPACITY_TOLERANCE) + 1e-6;

const limitsArb: fc.Arbitrary<LimitsConfig> = fc.record({
  parallelMigrationsPerCluster: fc.integer({ min: 1, max: 6 }),
  parallelOutboundMigrationsPerNode: fc.integer({ min: 1, max: 3 }),
  parallelInboundMigrationsPerNode: fc.integer({ min: 1, max: 3 }),
  bandwidthBudget: fc.oneof(fc.constant(0), fc.integer({ min: 50, max: 5000 }).map((x) => x * Mi)),
  defaultNicCapacity: fc.integer({ min: 50, max: 3000 }).map((x) => x * Mi),
  bandwidthPerMigration: fc.oneof(fc.constant(0), fc.integer({ min: 20, max: 1500 }).map((x) => x * Mi)),
});

interface World {
  config: LimitsConfig;
  nodeCount: number;
  nics: Array<number | undefined>;
  cordoned: boolean[];
  vms: Array<Omit<QueuedMigration, 'sourceNode' | 'targetNode' | 'id'> & { source: number; pin: number | undefined }>;
  events: Array<
    | { kind: 'finish'; pick: number }
    | { kind: 'dirty'; pick: number; rate: number }
    | { kind: 'cordon'; node: number; on: boolean }
  >;
}

const worldArb: fc.Arbitrary<World> = fc
  .record({ config: limitsArb, nodeCount: fc.integer({ min: 2, max: 7 }) })
  .chain(({ config, nodeCount }) =>
    fc.record({
      config: fc.constant(config),
      nodeCount: fc.constant(nodeCount),
      nics: fc.array(fc.option(fc.integer({ min: 30, max: 3000 }).map((x) => x * Mi), { nil: undefined }), {
        minLength: nodeCount,
        maxLength: nodeCount,
      }),
      cordoned: fc.array(fc.boolean(), { minLength: nodeCount, maxLength: nodeCount }),
      vms: fc.array(
        fc.record({
          source: fc.nat(nodeCount - 1),
          // A pinned target is any node other than the source (offset 1..n-1).
          pin: fc.option(fc.integer({ min: 1, max: nodeCount - 1 }), { nil: undefined }),
          priority: fc.constantFrom('evacuation' as const, 'user' as const, 'background' as const),
          enqueuedAt: fc.nat(100),
          memoryBytes: fc.integer({ min: 1, max: 64 }).map((x) => x * Gi),
          dirtyRate: fc.integer({ min: 0, max: 3000 }).map((x) => x * Mi),
          workingSet: fc.option(fc.integer({ min: 1, max: 8192 }).map((x) => x * Mi), { nil: undefined }),
          bandwidthCap: fc.option(fc.integer({ min: 0, max: 2000 }).map((x) => x * Mi), { nil: undefined }),
          maxDowntimeMs: fc.option(fc.integer({ min: 50, max: 2000 }), { nil: undefined }),
          allowAutoConverge: fc.boolean(),
          allowPostCopy: fc.boolean(),
        }),
        { minLength: 1, maxLength: 24 },
      ),
      events: fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }),
          fc.record({ kind: fc.constant('dirty' as const), pick: fc.nat(), rate: fc.integer({ min: 0, max: 3000 }).map((x) => x * Mi) }),
          fc.record({ kind: fc.constant('cordon' as const), node: fc.nat(nodeCount - 1), on: fc.boolean() }),
        ),
        { maxLength: 30 },
      ),
    }),
  );

/** A cluster driven only by what `decide` says, checked after every decision. */
class Harness {
  nodes: NodeState[];
  queued: QueuedMigration[];
  running: RunningMigration[] = [];
  now = 0;

  constructor(readonly w: World) {
    const name = (i: number) => `n${i}`;
    this.nodes = w.nics.map((nic, i) => ({ name: name(i), schedulable: !w.cordoned[i], ...(nic === undefined ? {} : { nicCapacity: nic }) }));
    this.queued = w.vms.map(({ source, pin, ...vm }, i) => ({
      ...vm,
      id: `vm${i}`,
      sourceNode: name(source),
      ...(pin === undefined ? {} : { targetNode: name((source + pin) % w.nodeCount) }),
    }));
  }

  step(): Decision {
    this.now += 1000;
    const d = decide({ config: this.w.config, nodes: this.nodes, running: this.running, queued: this.queued, now: this.now });
    const before = new Set(this.nodes.filter((n) => n.schedulable).map((n) => n.name));
    const byId = new Map(this.queued.map((q) => [q.id, q]));
    for (const s of d.start) {
      const q = byId.get(s.id);
      if (!q) throw new Error(`started ${s.id}, which is not queued`);
      const target = s.targetNode ?? q.targetNode;
      if (target === undefined) throw new Error(`started ${s.id} without a target`);
      if (target === q.sourceNode) throw new Error(`${s.id} targets its own node`);
      if (!before.has(target)) throw new Error(`${s.id} targets unschedulable ${target}`);
      if (q.targetNode !== undefined && s.targetNode !== undefined) throw new Error(`${s.id}: pinned target overridden`);
      const { enqueuedAt: _enqueuedAt, ...rest } = q;
      this.running.push({ ...rest, targetNode: target });
    }
    const started = new Set(d.start.map((s) => s.id));
    this.queued = this.queued.filter((q) => !started.has(q.id));
    this.check(d);
    return d;
  }

  private check(d: Decision): void {
    const c = this.w.config;
    expect(this.running.length).toBeLessThanOrEqual(c.parallelMigrationsPerCluster);
    const out = new Map<string, number>();
    const inb = new Map<string, number>();
    for (const r of this.running) {
      out.set(r.sourceNode, (out.get(r.sourceNode) ?? 0) + 1);
      if (r.targetNode) inb.set(r.targetNode, (inb.get(r.targetNode) ?? 0) + 1);
    }
    for (const n of out.values()) expect(n).toBeLessThanOrEqual(c.parallelOutboundMigrationsPerNode);
    for (const n of inb.values()) expect(n).toBeLessThanOrEqual(c.parallelInboundMigrationsPerNode);

    expect(Object.keys(d.bandwidth).sort()).toEqual(this.running.map((r) => r.id).sort());
    expect(Object.keys(d.waiting).sort()).toEqual(this.queued.map((q) => q.id).sort());
    checkAllocation(c, this.nodes, this.running, d.bandwidth);
  }

  finish(pick: number): void {
    if (this.running.length > 0) this.running.splice(pick % this.running.length, 1);
  }
}

function checkAllocation(c: LimitsConfig, nodes: NodeState[], migrations: BandwidthDemand[], bw: Record<string, number>): void {
  const nic = (n: string) => nodes.find((x) => x.name === n)?.nicCapacity ?? c.defaultNicCapacity;
  const load = new Map<string, number>();
  let total = 0;
  for (const m of migrations) {
    const x = bw[m.id]!;
    expect(x).toBeGreaterThan(0);
    expect(x).toBeLessThanOrEqual(migrationCap(c.bandwidthPerMigration, m) * (1 + CAPACITY_TOLERANCE));
    total += x;
    load.set(m.sourceNode, (load.get(m.sourceNode) ?? 0) + x);
    if (m.targetNode !== undefined && m.targetNode !== m.sourceNode) load.set(m.targetNode, (load.get(m.targetNode) ?? 0) + x);
  }
  for (const [n, sum] of load) expect(within(sum, nic(n))).toBe(true);
  if (c.bandwidthBudget > 0) expect(within(total, c.bandwidthBudget)).toBe(true);
  return;
}

describe('limits core, over random clusters and event sequences', () => {
  test('never exceeds a limit or a capacity, always feeds what runs, and eventually starts everything', () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const h = new Harness(w);
        h.step();
        for (const e of w.events) {
          if (e.kind === 'finish') h.finish(e.pick);
          else if (e.kind === 'dirty') {
            const all = [...h.running, ...h.queued];
            const m = all[e.pick % all.length];
            if (m) m.dirtyRate = e.rate;
          } else {
            const node = h.nodes[e.node]!;
            h.nodes[e.node] = { ...node, schedulable: !e.on };
          }
          h.step();
        }
        // From here on migrations keep finishing and every node takes guests again.
        h.nodes = h.nodes.map((n) => ({ ...n, schedulable: true }));
        const bound = 2 * (h.queued.length + h.running.length) + 2;
        let rounds = 0;
        while (h.queued.length > 0) {
          if (rounds++ > bound) throw new Error(`still queued after ${bound} rounds: ${JSON.stringify(h.step().waiting)}`);
          h.finish(rounds * 7919);
          h.step();
        }
      }),
      { numRuns: 300 },
    );
  });

  test('leaves no bandwidth unused: every migration is at its cap or crosses a full NIC or budget', () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const h = new Harness(w);
        const migrations: RunningMigration[] = h.queued.map((q) => ({
          ...q,
          targetNode: q.targetNode ?? `n${(Number(q.sourceNode.slice(1)) + 1) % w.nodeCount}`,
        }));
        const bw = allocateBandwidth(w.config, h.nodes, migrations);
        checkAllocation(w.config, h.nodes, migrations, bw);
        const nic = (n: string) => h.nodes.find((x) => x.name === n)?.nicCapacity ?? w.config.defaultNicCapacity;
        const load = new Map<string, number>();
        let total = 0;
        for (const m of migrations) {
          total += bw[m.id]!;
          for (const n of new Set([m.sourceNode, m.targetNode!])) load.set(n, (load.get(n) ?? 0) + bw[m.id]!);
        }
        const full = (sum: number, cap: number) => sum >= cap * (1 - 1e-9);
        for (const m of migrations) {
          const atCap = full(bw[m.id]!, migrationCap(w.config.bandwidthPerMigration, m));
          const nicFull = [m.sourceNode, m.targetNode!].some((n) => full(load.get(n)!, nic(n)));
          const budgetFull = w.config.bandwidthBudget > 0 && full(total, w.config.bandwidthBudget);
          expect(atCap || nicFull || budgetFull).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
