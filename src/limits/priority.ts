import type { Priority, QueuedMigration } from './types.js';

export const PRIORITY_RANK: Readonly<Record<Priority, number>> = { evacuation: 0, user: 1, background: 2 };

/** Queue order: class first, then first come first served, then id so ties are stable. */
export function queueOrder(a: QueuedMigration, b: QueuedMigration): number {
  return (
    PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
    a.enqueuedAt - b.enqueuedAt ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

/**
 * The queue in order. Callers usually keep their queue sorted already, so check
 * that in one pass before paying for a sort.
 */
export function inQueueOrder<T extends QueuedMigration>(queued: readonly T[]): readonly T[] {
  for (let i = 1; i < queued.length; i++) {
    if (queueOrder(queued[i - 1] as T, queued[i] as T) > 0) return [...queued].sort(queueOrder);
  }
  return queued;
}
