import { planRunbook, type PlanInput, type PlanNode, type PlanVm } from '../../../src/runbook/plan.js';
import { MigrationEngine } from '../../../src/runbook/simulation/engine.js';
import { LimitsPolicy } from '../../../src/runbook/simulation/limitsPolicy.js';

const Mi = 2 ** 20;
const Gi = 2 ** 30;
const T0 = Date.parse('2025-06-01T02:00:00Z');
const HOUR = 3_600_000;

const limits = {
  parallelMigrationsPerCluster: 5,
  parallelOutboundMigrationsPerNode: 2,
  parallelInboundMigrationsPerNode: 2,
  bandwidthBudget: 0,
  defaultNicCapacity: 1024 * Mi,
  bandwidthPerMigration: 0,
};
const rules = { progressTimeoutMs: 150_000, completionTimeoutPerGiB: 150, autoConverge: false, postCopy: false, maxDowntimeMs: 300 };
const noOverheads = { migrationStartMs: 0, migrationFinishMs: 0, batchGapMs: 0 };

const node = (name: string, nic = 1024 * Mi): PlanNode => ({ name, nic, memory: 256 * Gi, schedulable: true });
const vm = (name: string, on: string, memory: number, extra: Partial<PlanVm> = {}): PlanVm => ({
  name,
  node: on,
  memory,
  dirtyRate: 0,
  workingSet: 0,
  zeroFraction: 0,
  moves: true,
  ...extra,
});

/**
 * Four nodes to maintain of different sizes, and two spare ones with faster
 * NICs, which placement prefers (most NIC left), so that VMs do not land on
 * nodes still to be maintained and the arithmetic stays simple.
 */
function cluster(): Pick<PlanInput, 'nodes' | 'vms'> {
  return {
    nodes: [...['a', 'b', 'c', 'd'].map((n) => node(n)), node('s1', 4096 * Mi), node('s2', 4096 * Mi)],
    vms: [
      vm('a1', 'a', 1 * Gi),
      vm('b1', 'b', 2 * Gi),
      vm('b2', 'b', 2 * Gi),
      vm('c1', 'c', 4 * Gi),
      vm('d1', 'd', 512 * Mi),
      vm('s1-1', 's1', 8 * Gi),
    ],
  };
}

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    now: T0,
    window: { start: T0, end: T0 + HOUR },
    ...cluster(),
    maintain: ['a', 'b', 'c', 'd'],
    maxNodesInMaintenance: 1,
    maintenanceMs: 0,
    settings: { limits, rules, overheads: noOverheads },
    ...over,
  };
}

describe('the order of nodes', () => {
  test('quickest to empty first; equally quick ones by name', () => {
    const plan = planRunbook(input());
    // d: 512Mi; a: 1Gi; b: 2×2Gi sharing its NIC and c: 4Gi alone take the same 4 s.
    expect(plan.order).toEqual(['d', 'a', 'b', 'c']);
    expect(plan.nodes.map((n) => n.soloMs)).toEqual([500, 1000, 4000, 4000]);
  });

  test('an order given by an earlier plan is kept, new nodes go after it', () => {
    const plan = planRunbook(input({ order: ['c', 'a'] }));
    expect(plan.order).toEqual(['c', 'a', 'd', 'b']);
  });
});

describe('batches', () => {
  test('one node at a time: each starts when the previous one is done', () => {
    const plan = planRunbook(input());
    const byName = Object.fromEntries(plan.nodes.map((n) => [n.name, n]));
    expect(plan.batches).toEqual([['d'], ['a'], ['b'], ['c']]);
    expect(byName['d']).toMatchObject({ batch: 1, start: T0, finish: T0 + 500 });
    expect(byName['a']).toMatchObject({ batch: 2, start: T0 + 500, finish: T0 + 1500 });
    expect(byName['b']).toMatchObject({ batch: 3, start: T0 + 1500, finish: T0 + 5500 });
    expect(byName['c']).toMatchObject({ batch: 4, start: T0 + 5500, finish: T0 + 9500 });
    expect(plan.predictedEnd).toBe(T0 + 9500);
    expect(plan.wontFit).toEqual([]);
  });

  test('two at a time: batch mates start together, never more than two nodes out of service', () => {
    const plan = planRunbook(input({ maxNodesInMaintenance: 2 }));
    expect(plan.batches).toEqual([['d', 'a'], ['b', 'c']]);
    const [d, a, b, c] = plan.nodes;
    expect(d!.start).toBe(a!.start);
    expect(b!.start).toBe(c!.start);
    // The second batch waits for the slower node of the first.
    expect(b!.start).toBe(Math.max(d!.finish!, a!.finish!));
    for (const t of plan.nodes.map((n) => n.start!)) {
      const out = plan.nodes.filter((n) => n.start! <= t && t < n.finish!).length;
      expect(out).toBeLessThanOrEqual(2);
    }
    // Running two at a time is quicker than one at a time.
    expect(plan.predictedEnd!).toBeLessThan(planRunbook(input()).predictedEnd!);
  });

  test('the maintenance time of each node is added to its finish, and holds up the next batch', () => {
    const plan = planRunbook(input({ maintenanceMs: 60_000 }));
    const [d, a] = plan.nodes;
    expect(d!.evacuated).toBe(T0 + 500);
    expect(d!.finish).toBe(T0 + 60_500);
    expect(a!.start).toBe(T0 + 60_500);
  });

  test('VMs that evacuation leaves where they are are not waited for', () => {
    const base = cluster();
    const plan = planRunbook(input({ vms: [...base.vms, vm('pinned', 'd', 64 * Gi, { moves: false })] }));
    const d = plan.nodes.find((n) => n.name === 'd')!;
    expect(d).toMatchObject({ vmsToMove: 1, vmsStaying: 1, bytesToMove: 512 * Mi });
    expect(d.finish! - d.start!).toBe(500);
  });

  test('planning before the window opens starts the plan at its opening', () => {
    const plan = planRunbook(input({ now: T0 - HOUR }));
    expect(plan.start).toBe(T0);
    expect(plan.nodes[0]!.start).toBe(T0);
  });

  test('on a sped-up sim hypervisor model time is divided, fixed overheads are not', () => {
    const overheads = { migrationStartMs: 200, migrationFinishMs: 50, batchGapMs: 10 };
    const plan = planRunbook(input({ maintain: ['d'], settings: { limits, rules, overheads, timeScale: 4 } }));
    // 512Mi at 1Gi/s is 500 ms of model time: 125 ms at ×4, plus 250 ms of overheads.
    expect(plan.nodes[0]!.finish! - plan.start).toBeCloseTo(375, 6);
  });
});

describe('the window', () => {
  test('nodes predicted not to be done before it closes are dropped, the others kept in order', () => {
    // Batches of one: d ends at 0.5 s, a at 1.5 s, b at 5.5 s, c at 9.5 s.
    const plan = planRunbook(input({ window: { start: T0, end: T0 + 6000 } }));
    expect(plan.batches).toEqual([['d'], ['a'], ['b']]);
    expect(plan.wontFit).toEqual(['c']);
    const c = plan.nodes.find((n) => n.name === 'c')!;
    expect(c).toMatchObject({ fits: false, droppedAt: 4 });
    expect(c.reason).toMatch(/not to be done before the window closes/);
    expect(plan.predictedEnd).toBe(T0 + 5500);
    for (const n of plan.nodes) if (n.fits) expect(n.finish!).toBeLessThanOrEqual(T0 + 6000);
  });

  test('a dropped node gives its place to the next one, whose batch mate no longer shares with it', () => {
    // Two at a time, 3.5 s: batch 1 (d, a) ends at 1 s; b and c together would end at 5 s.
    const plan = planRunbook(input({ maxNodesInMaintenance: 2, window: { start: T0, end: T0 + 3500 } }));
    expect(plan.batches[0]).toEqual(['d', 'a']);
    expect(plan.wontFit).toEqual(['b', 'c']);
    expect(plan.nodes.find((n) => n.name === 'b')!.droppedAt).toBe(2);
  });

  test('a node whose turn comes after the window has closed does not fit either', () => {
    const plan = planRunbook(input({ maintenanceMs: 2000, window: { start: T0, end: T0 + 2500 } }));
    // d is done just as the window closes; a's turn would come only then.
    expect(plan.batches).toEqual([['d']]);
    const a = plan.nodes.find((n) => n.name === 'a')!;
    expect(a.fits).toBe(false);
    expect(a.droppedAt).toBeUndefined();
    expect(a.reason).toMatch(/turn would come after the window closes/);
  });

  test('a node with a VM that never converges never fits', () => {
    const base = cluster();
    const hot = vm('hot', 'd', 4 * Gi, { dirtyRate: 4096 * Mi, workingSet: 4 * Gi });
    const plan = planRunbook(input({ vms: [...base.vms, hot] }));
    expect(plan.wontFit).toContain('d');
    expect(plan.nodes.find((n) => n.name === 'd')!.soloMs).toBe(Infinity);
    expect(plan.wontFit).not.toContain('a');
  });
});

test('VMs moved off a node onto one maintained later are counted when that one is emptied', () => {
  // All NICs equal: placement falls back to names, and d's VM lands on a.
  const nodes = ['a', 'b', 'c', 'd', 's1', 's2'].map((n) => node(n));
  const plan = planRunbook(input({ nodes }));
  const a = plan.nodes.find((n) => n.name === 'a')!;
  expect(a.vmsToMove).toBe(1);
  // 1Gi of its own plus d's 512Mi, over one 1Gi/s NIC.
  expect(a.finish! - a.start!).toBe(1500);
});

test('the prediction is exactly a direct simulation of the batches on the migration engine', () => {
  const overheads = { migrationStartMs: 300, migrationFinishMs: 100, batchGapMs: 20 };
  const vms: PlanVm[] = [
    ...cluster().vms.map((v) => ({ ...v, dirtyRate: 30 * Mi, workingSet: 256 * Mi, zeroFraction: 0.2 })),
    vm('a2', 'a', 3 * Gi, { dirtyRate: 80 * Mi, workingSet: 1 * Gi }),
  ];
  const plan = planRunbook(input({ vms, maxNodesInMaintenance: 2, settings: { limits, rules, overheads } }));

  // The same runbook driven by hand: batches of two in the planned order.
  const engine = new MigrationEngine(cluster().nodes.map(({ name, nic, memory }) => ({ name, nic, memory })), vms, new LimitsPolicy(limits, rules), {
    startDelayMs: overheads.migrationStartMs,
    finishDelayMs: overheads.migrationFinishMs,
  });
  const finish: Record<string, number> = {};
  for (const batch of plan.batches) {
    const start = engine.now;
    engine.drain(batch);
    expect(engine.run({ until: () => batch.every((n) => engine.emptiedAt(n) !== undefined), maxMs: HOUR })).toBe(true);
    for (const n of batch) {
      finish[n] = engine.emptiedAt(n)!;
      engine.uncordon(n);
      expect(plan.nodes.find((p) => p.name === n)!.start).toBe(T0 + start);
    }
    engine.advanceTo(engine.now + overheads.batchGapMs);
  }
  for (const n of plan.nodes) expect(n.finish).toBeCloseTo(T0 + finish[n.name]!, 6);
  expect(Object.keys(finish).sort()).toEqual(['a', 'b', 'c', 'd']);
});
