import { decide } from '../../../src/limits/decide.js';
import type { NodeState, QueuedMigration, RunningMigration } from '../../../src/limits/types.js';
import { Gi, Mi, config } from './fixtures.js';

test('deciding over 1,000 nodes, 600 running and 3,000 queued takes milliseconds, not seconds', () => {
  const nodes: NodeState[] = Array.from({ length: 1000 }, (_, i) => ({ name: `n${i}`, schedulable: i >= 300, freeMemory: 400 * Gi }));
  const vm = (i: number) => ({
    sourceNode: `n${i % 300}`,
    memoryBytes: (4 << i % 3) * Gi,
    dirtyRate: (i % 40) * 5 * Mi,
    workingSet: Gi,
    priority: (['evacuation', 'user', 'background'] as const)[i % 3]!,
  });
  const running: RunningMigration[] = Array.from({ length: 599 }, (_, i) => ({ id: `r${i}`, targetNode: `n${300 + (i % 700)}`, ...vm(i) }));
  const queued: QueuedMigration[] = Array.from({ length: 3000 }, (_, i) => ({ id: `q${i}`, enqueuedAt: i, ...vm(i + 7) }));
  const input = { config: config({ parallelMigrationsPerCluster: 600, defaultNicCapacity: 2500 * Mi }), nodes, running, queued, now: 0 };
  const times: number[] = [];
  let d = decide(input);
  for (let k = 0; k < 30; k++) {
    const t0 = performance.now();
    d = decide(input);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  expect(d.start).toHaveLength(1);
  expect(Object.keys(d.waiting)).toHaveLength(2999);
  // Typically under 2 ms; the bound only catches work growing with queue × nodes.
  expect(times[15]).toBeLessThan(25);
});
