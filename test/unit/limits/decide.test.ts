import { convergenceNeed } from '../../../src/limits/convergence.js';
import { decide } from '../../../src/limits/decide.js';
import type { DecideInput } from '../../../src/limits/types.js';
import { Gi, Mi, config, nodes, queued, running } from './fixtures.js';

const ids = (d: { start: Array<{ id: string }> }) => d.start.map((s) => s.id);

function run(over: Partial<DecideInput> & Pick<DecideInput, 'queued'>) {
  return decide({ config: config(), nodes: nodes(['a', 'b', 'c', 'd', 'e', 'f']), running: [], now: 0, ...over });
}

/** A database that needs 600Mi/s of a 1000Mi/s NIC to converge well: more than half. */
const busy = { memoryBytes: 16 * Gi, dirtyRate: 300 * Mi, workingSet: 8 * Gi };
/** A guest that dirties faster than any NIC here can send. */
const hopeless = { memoryBytes: 16 * Gi, dirtyRate: 2000 * Mi, workingSet: 16 * Gi };

describe('parallel limits', () => {
  test('no more than the cluster limit run at once, and the rest say why', () => {
    const q = ['a', 'b', 'c', 'd', 'e', 'f'].map((n, i) => queued(`vm${i}`, n, { enqueuedAt: i }));
    const d = run({ config: config({ parallelMigrationsPerCluster: 3 }), queued: q, running: [running('r', 'a', 'b')] });
    expect(ids(d)).toEqual(['vm0', 'vm1']);
    expect(d.waiting).toEqual({
      vm2: 'cluster limit 3/3 reached',
      vm3: 'cluster limit 3/3 reached',
      vm4: 'cluster limit 3/3 reached',
      vm5: 'cluster limit 3/3 reached',
    });
  });

  test('a node sends at most its outbound limit, counting what already runs', () => {
    const q = [queued('vm1', 'a', { enqueuedAt: 1 }), queued('vm2', 'a', { enqueuedAt: 2 })];
    const d = run({ queued: q, running: [running('r', 'a', 'b')] });
    expect(ids(d)).toEqual(['vm1']);
    expect(d.waiting.vm2).toBe('outbound limit on a (2/2)');
  });

  test('a node receives at most its inbound limit: placement spreads, then stops', () => {
    const q = [1, 2, 3, 4].map((i) => queued(`vm${i}`, 'a', { enqueuedAt: i }));
    const d = run({
      nodes: nodes(['a', 'b', 'c'], ['a']),
      config: config({ parallelOutboundMigrationsPerNode: 10, parallelInboundMigrationsPerNode: 2 }),
      queued: q,
      running: [running('r', 'x', 'b')],
    });
    expect(d.start).toEqual([
      { id: 'vm1', targetNode: 'c' },
      { id: 'vm2', targetNode: 'b' },
      { id: 'vm3', targetNode: 'c' },
    ]);
    expect(d.waiting.vm4).toBe('every schedulable node has reached its inbound limit (2)');
  });

  test('a running migration without a target yet counts against the cluster and its source, not any target', () => {
    const cluster = nodes(['a', 'b', 'c'], ['a']);
    const limits = config({ parallelMigrationsPerCluster: 3, parallelInboundMigrationsPerNode: 1 });
    const pending = running('r', 'a', undefined);
    const d = run({ nodes: cluster, config: limits, running: [pending], queued: [queued('vm1', 'a', { enqueuedAt: 1 }), queued('vm2', 'a', { enqueuedAt: 2 })] });
    expect(d.start).toEqual([{ id: 'vm1', targetNode: 'b' }]);
    expect(d.waiting.vm2).toBe('outbound limit on a (2/2)');

    const full = run({ nodes: cluster, config: { ...limits, parallelMigrationsPerCluster: 2 }, running: [pending], queued: [queued('vm1', 'a', { enqueuedAt: 1 }), queued('vm3', 'c', { enqueuedAt: 3 })] });
    expect(ids(full)).toEqual(['vm1']);
    expect(full.waiting.vm3).toBe('cluster limit 2/2 reached');
  });

  test('limits already exceeded (e.g. lowered while migrations run) start nothing', () => {
    const d = run({
      config: config({ parallelMigrationsPerCluster: 1 }),
      running: [running('r1', 'a', 'b'), running('r2', 'c', 'd')],
      queued: [queued('vm', 'e')],
    });
    expect(d.start).toEqual([]);
    expect(d.waiting.vm).toBe('cluster limit 2/1 reached');
  });
});

describe('priorities', () => {
  const one = config({ parallelMigrationsPerCluster: 1 });

  test('evacuation goes before user before background, whatever came first', () => {
    const q = [
      queued('bg', 'a', { priority: 'background', enqueuedAt: 1 }),
      queued('user', 'b', { priority: 'user', enqueuedAt: 2 }),
      queued('evac', 'c', { priority: 'evacuation', enqueuedAt: 3 }),
    ];
    expect(ids(run({ config: one, queued: q }))).toEqual(['evac']);
    expect(ids(run({ config: one, queued: q.filter((m) => m.id !== 'evac') }))).toEqual(['user']);
  });

  test('first come first served within a class, by id on a tie', () => {
    const q = [queued('late', 'a', { enqueuedAt: 9 }), queued('z', 'b', { enqueuedAt: 1 }), queued('y', 'c', { enqueuedAt: 1 })];
    expect(ids(run({ config: config({ parallelMigrationsPerCluster: 2 }), queued: q }))).toEqual(['y', 'z']);
  });

  test('a lower class uses a slot a higher one cannot use because of its node', () => {
    const q = [queued('evac', 'a', { enqueuedAt: 1 }), queued('bg', 'c', { priority: 'background', enqueuedAt: 2 })];
    const d = run({ queued: q, running: [running('r1', 'a', 'b'), running('r2', 'a', 'd')] });
    expect(ids(d)).toEqual(['bg']);
    expect(d.waiting.evac).toBe('outbound limit on a (2/2)');
  });

  test('the order of the queue as handed in does not matter', () => {
    const q = ['a', 'b', 'c', 'd'].flatMap((n, i) => [
      queued(`u${i}`, n, { priority: 'user', enqueuedAt: 10 - i }),
      queued(`e${i}`, n, { enqueuedAt: i }),
      queued(`b${i}`, n, { priority: 'background', enqueuedAt: i }),
    ]);
    const sorted = run({ queued: q });
    const reversed = run({ queued: [...q].reverse() });
    expect(reversed).toEqual(sorted);
    expect(ids(sorted)).toEqual(['e0', 'e1', 'e2', 'e3', 'u3']);
  });
});

describe('convergence-aware admission', () => {
  test('a busy guest is given what it needs to converge, the quiet ones keep theirs', () => {
    const d = run({ running: [running('quiet', 'a', 'b')], queued: [queued('db', 'a', busy)] });
    expect(ids(d)).toEqual(['db']);
    const need = convergenceNeed({ id: 'db', sourceNode: 'a', ...busy });
    expect(d.bandwidth.db).toBeCloseTo(need);
    expect(d.bandwidth.quiet).toBeCloseTo(1000 * Mi - need);
  });

  test('a guest whose share cannot beat its dirty rate waits, and says so with the numbers', () => {
    const d = run({ running: [running('db1', 'a', 'b', busy)], queued: [queued('db2', 'a', busy)] });
    expect(d.start).toEqual([]);
    expect(d.waiting.db2).toBe("share 400Mi/s on a's NIC cannot beat dirty rate 300Mi/s (needs 600Mi/s); waiting for bandwidth");
  });

  test('a busy guest is not placed on a target whose NIC is already promised', () => {
    const d = run({
      nodes: nodes(['a', 'b', 'c'], ['a']),
      running: [running('in-b', 'x', 'b', busy), running('in-c', 'y', 'c', busy)],
      queued: [queued('db', 'a', busy)],
    });
    expect(d.waiting.db).toBe('no target node has 600Mi/s of NIC left to beat dirty rate 300Mi/s; waiting for bandwidth');
  });

  test('a guest allowed to auto-converge or switch to post-copy may start with less', () => {
    const db1 = running('db1', 'a', 'b', busy);
    for (const allow of [{ allowAutoConverge: true }, { allowPostCopy: true }]) {
      const d = run({ running: [db1], queued: [queued('db2', 'a', { ...busy, ...allow })] });
      expect(ids(d)).toEqual(['db2']);
      expect(d.bandwidth.db2).toBeLessThan(convergenceNeed(db1));
      expect(d.bandwidth.db1).toBeGreaterThanOrEqual(convergenceNeed(db1) * (1 - 1e-9));
    }
  });

  test('a guest no NIC can satisfy waits until its path is idle, then gets all of it', () => {
    const waiting = run({ running: [running('quiet', 'a', 'b')], queued: [queued('hog', 'a', hopeless)] });
    expect(waiting.start).toEqual([]);
    expect(waiting.waiting.hog).toBe(
      "share 998Mi/s on a's NIC cannot beat dirty rate 1.95Gi/s (needs 3.91Gi/s, more than its 1000Mi/s); waiting for it to be free",
    );
    const idle = run({ queued: [queued('hog', 'a', hopeless)] });
    expect(ids(idle)).toEqual(['hog']);
    expect(idle.bandwidth.hog).toBeCloseTo(1000 * Mi);
  });

  test('a migration whose source is done keeps its slot but frees its bandwidth for the next', () => {
    const finishing = running('db1', 'a', 'b', { ...busy, sourceDone: true });
    const d = run({ config: config({ parallelOutboundMigrationsPerNode: 2 }), running: [finishing], queued: [queued('db2', 'a', { ...busy, enqueuedAt: 1 }), queued('db3', 'a', { ...busy, enqueuedAt: 2 })] });
    expect(ids(d)).toEqual(['db2']);
    expect(d.bandwidth.db1).toBe(0);
    expect(d.bandwidth.db2).toBeCloseTo(1000 * Mi);
    // It still counts against the outbound limit until its outcome is recorded.
    expect(d.waiting.db3).toBe('outbound limit on a (2/2)');
  });

  test('migrations behind a starved one do not take the bandwidth it waits for', () => {
    const d = run({
      running: [running('db1', 'a', 'b', busy)],
      queued: [queued('db2', 'a', { ...busy, enqueuedAt: 1 }), queued('small', 'a', { priority: 'background', enqueuedAt: 2 }), queued('elsewhere', 'c', { priority: 'background', enqueuedAt: 3 })],
    });
    expect(d.waiting.small).toBe("waiting behind db2 for bandwidth on a's NIC");
    expect(ids(d)).toEqual(['elsewhere']);
  });

  test('the cluster budget is shared out by need, and a guest it cannot fit waits for it', () => {
    const d = run({
      config: config({ bandwidthBudget: 1000 * Mi }),
      running: [running('db1', 'a', 'b', busy)],
      queued: [queued('db2', 'c', { ...busy, enqueuedAt: 1 }), queued('quiet', 'd', { enqueuedAt: 2 })],
    });
    expect(d.waiting.db2).toBe('share 400Mi/s on the cluster bandwidth budget cannot beat dirty rate 300Mi/s (needs 600Mi/s); waiting for bandwidth');
    expect(d.waiting.quiet).toBe('waiting behind db2 for bandwidth on the cluster bandwidth budget');
  });
});

describe('placement', () => {
  test('prefers the node with fewest migrations landing, then the most NIC left, then the name', () => {
    const cluster = [
      { name: 'src', schedulable: false },
      { name: 'busy', schedulable: true, nicCapacity: 10_000 * Mi },
      { name: 'big', schedulable: true, nicCapacity: 2000 * Mi },
      { name: 'x', schedulable: true },
      { name: 'w', schedulable: true },
    ];
    const d = run({
      nodes: cluster,
      config: config({ parallelOutboundMigrationsPerNode: 5 }),
      running: [running('r', 'elsewhere', 'busy')],
      queued: [1, 2, 3, 4].map((i) => queued(`vm${i}`, 'src', { enqueuedAt: i })),
    });
    expect(d.start.map((s) => s.targetNode)).toEqual(['big', 'w', 'x', 'busy']);
  });

  test('never the source, never a cordoned node, never one without the memory', () => {
    const cluster = [
      { name: 'a', schedulable: true, freeMemory: 64 * Gi },
      { name: 'b', schedulable: false, freeMemory: 64 * Gi },
      { name: 'c', schedulable: true, freeMemory: 2 * Gi },
      { name: 'd', schedulable: true, freeMemory: 6 * Gi },
    ];
    const d = run({ nodes: cluster, queued: [queued('vm1', 'a', { enqueuedAt: 1 }), queued('vm2', 'a', { enqueuedAt: 2 })] });
    // vm1 takes 4Gi of d's 6Gi, so vm2 fits nowhere.
    expect(d.start).toEqual([{ id: 'vm1', targetNode: 'd' }]);
    expect(d.waiting.vm2).toBe('no schedulable node has 4.00Gi free memory');
  });

  test('a node cannot move anywhere when it is the only schedulable one', () => {
    const d = run({ nodes: nodes(['a', 'b'], ['b']), queued: [queued('vm', 'a')] });
    expect(d.waiting.vm).toBe('no schedulable node to move to besides a');
  });

  test('a pinned target is used as is, and checked', () => {
    const cluster = [
      { name: 'a', schedulable: true },
      { name: 'b', schedulable: true },
      { name: 'small', schedulable: true, freeMemory: 1 * Gi },
      { name: 'cordoned', schedulable: false },
    ];
    const d = run({
      nodes: cluster,
      config: config({ parallelOutboundMigrationsPerNode: 9, parallelInboundMigrationsPerNode: 1 }),
      queued: [
        queued('ok', 'a', { targetNode: 'b', enqueuedAt: 1 }),
        queued('full', 'a', { targetNode: 'b', enqueuedAt: 2 }),
        queued('self', 'a', { targetNode: 'a', enqueuedAt: 3 }),
        queued('tiny', 'a', { targetNode: 'small', enqueuedAt: 4 }),
        queued('closed', 'a', { targetNode: 'cordoned', enqueuedAt: 5 }),
        queued('ghost', 'a', { targetNode: 'nowhere', enqueuedAt: 6 }),
      ],
    });
    expect(d.start).toEqual([{ id: 'ok' }]);
    expect(d.waiting).toEqual({
      full: 'inbound limit on b (1/1)',
      self: 'pinned target a is the node it runs on',
      tiny: 'pinned target small has 1.00Gi free memory, needs 4.00Gi',
      closed: 'pinned target cordoned is not schedulable',
      ghost: 'pinned target nowhere is not a known node',
    });
  });
});

describe('the decision as a whole', () => {
  test('gives bandwidth to every running and every started migration, within each NIC', () => {
    const d = run({
      running: [running('r1', 'a', 'b'), running('r2', 'c', 'b')],
      queued: [queued('vm1', 'a', { enqueuedAt: 1 }), queued('vm2', 'd', { enqueuedAt: 2 })],
    });
    expect(Object.keys(d.bandwidth).sort()).toEqual(['r1', 'r2', 'vm1', 'vm2']);
    for (const x of Object.values(d.bandwidth)) expect(x).toBeGreaterThan(0);
    expect(d.bandwidth.r1! + d.bandwidth.vm1!).toBeLessThanOrEqual(1000 * Mi);
  });

  test('an empty cluster decides nothing', () => {
    expect(run({ queued: [] })).toEqual({ start: [], bandwidth: {}, waiting: {} });
  });
});
