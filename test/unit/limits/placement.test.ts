import { pickTargetNode } from '../../../src/limits/placement.js';
import { Gi, Mi, config, nodes, queued, running } from './fixtures.js';

describe('pickTargetNode', () => {
  const cluster = nodes(['a', 'b', 'c', 'd'], ['a']);

  test('takes the node with the fewest migrations landing on it', () => {
    const placed = pickTargetNode({ config: config(), nodes: cluster, running: [running('r1', 'x', 'b'), running('r2', 'y', 'c')], migration: queued('vm', 'a') });
    expect(placed).toEqual({ node: 'd' });
  });

  test('among equally loaded nodes, the one with the most NIC left, then by name', () => {
    // c also sends a busy guest, so it has less NIC left than b or d.
    const busy = running('out', 'c', 'x', { memoryBytes: 16 * Gi, dirtyRate: 600 * Mi, workingSet: 8 * Gi });
    expect(pickTargetNode({ config: config(), nodes: cluster, running: [busy], migration: queued('vm', 'a') })).toEqual({ node: 'b' });
    expect(pickTargetNode({ config: config(), nodes: nodes(['a', 'c', 'd'], ['a']), running: [busy], migration: queued('vm', 'a') })).toEqual({ node: 'd' });
  });

  test('explains when no node qualifies', () => {
    expect(pickTargetNode({ config: config({ parallelInboundMigrationsPerNode: 1 }), nodes: nodes(['a', 'b'], ['a']), running: [running('r', 'x', 'b')], migration: queued('vm', 'a') })).toEqual({
      reason: 'every schedulable node has reached its inbound limit (1)',
    });
    expect(pickTargetNode({ config: config(), nodes: nodes(['a', 'b'], ['a'], { freeMemory: 1 * Gi }), running: [], migration: queued('vm', 'a') })).toEqual({
      reason: 'no schedulable node has 4.00Gi free memory',
    });
  });
});
