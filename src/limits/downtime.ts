/**
 * Downtime stepping: a migration that keeps iterating is allowed a longer
 * stop-and-copy pause, step by step, so it can finish instead of burning
 * bandwidth until a timeout. The first rounds keep the configured downtime;
 * then it doubles every `every` rounds, never beyond `capMs`.
 */
export interface DowntimeSteps {
  baseMs: number;
  /** Rounds that run at the base downtime before stepping starts. */
  firstStepAfter: number;
  every: number;
  capMs: number;
}

export function downtimeForIteration(iteration: number, steps: DowntimeSteps): number {
  if (iteration <= steps.firstStepAfter) return steps.baseMs;
  const n = Math.floor((iteration - steps.firstStepAfter - 1) / Math.max(1, steps.every)) + 1;
  return Math.min(steps.capMs, steps.baseMs * 2 ** Math.min(n, 30));
}
