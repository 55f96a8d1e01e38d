/**
 * Runs tasks with two rules: tasks of the same key run one after another, in
 * the order given; at most `limit` tasks are accepted (running or waiting for
 * their key) at once, and `accept()` waits while that many are, so whoever
 * feeds it slows down instead of piling up work.
 */
export class KeyedLimiter {
  private inFlight = 0;
  private readonly tails = new Map<string, Promise<void>>();
  private readonly waiters: Array<() => void> = [];
  private readonly idleWaiters: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`a KeyedLimiter needs a limit of at least 1, got ${limit}`);
  }

  /** Tasks accepted and not yet finished. */
  get size(): number {
    return this.inFlight;
  }

  /** Resolves once another task may be accepted. */
  async accept(): Promise<void> {
    while (this.inFlight >= this.limit) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Queues `task` behind the earlier tasks of `key`. The returned promise settles with it; the limiter never sees its error. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    this.inFlight++;
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.then(() => undefined, () => undefined).finally(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
      this.inFlight--;
      this.waiters.shift()?.();
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
    this.tails.set(key, tail);
    return result;
  }

  /** Resolves when no task is accepted. */
  idle(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
