import { decide } from '../../../src/limits/decide.js';
import type { NodeState, QueuedMigration, RunningMigration } from '../../../src/limits/types.js';
import { Gi, Mi, config } from './fixtures.js';

/** A cluster of `n` nodes (30 % cordoned), with 0.6·n migrations running and 3·n queued. */
function clusterOf(n: number) {
  const cordoned = Math.round(n * 0.3);
  const nodes: NodeState[] = Array.from({ length: n }, (_, i) => ({ name: `n${i}`, schedulable: i >= cordoned, freeMemory: 400 * Gi }));
  const vm = (i: number) => ({
    sourceNode: `n${i % cordoned}`,
    memoryBytes: (4 << i % 3) * Gi,
    dirtyRate: (i % 40) * 5 * Mi,
    workingSet: Gi,
    priority: (['evacuation', 'user', 'background'] as const)[i % 3]!,
  });
  const runningCount = Math.round(n * 0.6) - 1;
  const running: RunningMigration[] = Array.from({ length: runningCount }, (_, i) => ({ id: `r${i}`, targetNode: `n${cordoned + (i % (n - cordoned))}`, ...vm(i) }));
  const queued: QueuedMigration[] = Array.from({ length: 3 * n }, (_, i) => ({ id: `q${i}`, enqueuedAt: i, ...vm(i + 7) }));
  return { config: config({ parallelMigrationsPerCluster: runningCount + 1, defaultNicCapacity: 2500 * Mi }), nodes, running, queued, now: 0 };
}

/**
 * How long `decide` takes is a benchmark's business (`decide` p99 is in test/bench/README.md). What a test can hold
 * on any machine, loaded or not, is the growth: ten times the nodes and ten times the queue must cost about ten times
 * as much, not a hundred (work growing with queue × nodes). The two sizes are timed interleaved, so whatever else the
 * machine does weighs on both alike.
 */
test('deciding grows linearly: 10× the nodes and the queue costs about 10× the time, not 100×', () => {
  const small = clusterOf(100);
  const large = clusterOf(1000);
  const d = decide(large);
  expect(d.start).toHaveLength(1);
  expect(Object.keys(d.waiting)).toHaveLength(2999);
  decide(small);
  const ts: number[] = [];
  const tl: number[] = [];
  const time = (input: ReturnType<typeof clusterOf>) => {
    const t0 = performance.now();
    decide(input);
    return performance.now() - t0;
  };
  for (let k = 0; k < 21; k++) {
    // Ten small decisions per large one, so each side of the ratio is a similar stretch of wall time.
    let s = 0;
    for (let j = 0; j < 10; j++) s += time(small);
    ts.push(s / 10);
    tl.push(time(large));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const growth = median(tl) / median(ts);
  // Linear measures 8–9× here; even a queue × nodes scan of the cheapest kind pushes it past 20×.
  if (process.env['SCALE_DEBUG']) console.log({ growth, small: median(ts), large: median(tl) });
  expect(growth).toBeLessThan(18);
});
