/**
 * A handler keeps a tombstone of every migration it has finished (its outcome,
 * in memory and, with records, on disk) until the controller says, with
 * `forget-job`, that it has the final outcome. Until then a late or replayed
 * command about that migration gets the truth ("already finished", "completed")
 * instead of "not found", which a controller could only read as "never
 * happened".
 *
 * A controller that never says so (it lost its state, the migration's object
 * was deleted) must not make the maps grow without bound, so tombstones also go
 * when they are older than a day or when there are more than ten thousand,
 * oldest first. Either bound is far beyond any migration's lifetime.
 */
export interface TombstoneLimits {
  maxAgeMs: number;
  maxCount: number;
}

export const TOMBSTONE_LIMITS: TombstoneLimits = { maxAgeMs: 24 * 60 * 60 * 1000, maxCount: 10_000 };

/** The keys of the tombstones to drop now, oldest first. */
export function tombstonesToPrune(
  tombstones: Iterable<{ key: string; finishedAt: number }>,
  now: number,
  limits: TombstoneLimits = TOMBSTONE_LIMITS,
): string[] {
  const byAge = [...tombstones].sort((a, b) => a.finishedAt - b.finishedAt);
  const excess = Math.max(0, byAge.length - limits.maxCount);
  return byAge.filter((t, i) => i < excess || now - t.finishedAt > limits.maxAgeMs).map((t) => t.key);
}
