import type { LimitsConfig, NodeState, Priority, QueuedMigration, RunningMigration } from '../../../src/limits/types.js';

export const Mi = 2 ** 20;
export const Gi = 2 ** 30;

export function config(over: Partial<LimitsConfig> = {}): LimitsConfig {
  return {
    parallelMigrationsPerCluster: 5,
    parallelOutboundMigrationsPerNode: 2,
    parallelInboundMigrationsPerNode: 2,
    bandwidthBudget: 0,
    defaultNicCapacity: 1000 * Mi,
    bandwidthPerMigration: 0,
    ...over,
  };
}

/** Nodes by name; names listed in `cordoned` are unschedulable. */
export function nodes(names: string[], cordoned: string[] = [], over: Partial<NodeState> = {}): NodeState[] {
  return names.map((name) => ({ name, schedulable: !cordoned.includes(name), ...over }));
}

/** A quiet guest: 4Gi, barely dirtying, so bandwidth never holds it back. */
export function queued(id: string, sourceNode: string, over: Partial<QueuedMigration> = {}): QueuedMigration {
  return {
    id,
    sourceNode,
    priority: 'evacuation' as Priority,
    enqueuedAt: 0,
    memoryBytes: 4 * Gi,
    dirtyRate: 1 * Mi,
    workingSet: 64 * Mi,
    ...over,
  };
}

export function running(id: string, sourceNode: string, targetNode: string | undefined, over: Partial<RunningMigration> = {}): RunningMigration {
  return {
    id,
    sourceNode,
    ...(targetNode === undefined ? {} : { targetNode }),
    priority: 'evacuation',
    memoryBytes: 4 * Gi,
    dirtyRate: 1 * Mi,
    workingSet: 64 * Mi,
    ...over,
  };
}
