import { systemClock, type Clock, type TimerHandle } from '../util/clock.js';

/**
 * A rate-limited work queue with client-go's semantics, shared by every
 * controller in Ferry (migrations, evacuation, runbooks).
 *
 * - A key waiting in the queue is held once, however often it is added (dirty set).
 * - A key is never processed by two workers at once: added while in flight, it is
 *   marked dirty and processed again after the current run ends.
 * - A run that throws is retried with per-key exponential back-off
 *   (base·2^n, capped); a run that returns forgets the key's failures.
 * - `workers` runs proceed in parallel, so one slow key does not stall the rest.
 * - Delays go through the injected clock, so tests and benchmarks control time.
 */
export interface WorkqueueOptions {
  /** Parallel workers; default 2. */
  workers?: number;
  /** First retry delay after a failure; default 200 ms. */
  baseDelayMs?: number;
  /** Ceiling of the back-off; default 60 s. */
  maxDelayMs?: number;
  clock?: Clock;
  /** Called once per failed run, before the retry is scheduled (log, metrics). */
  onError?: (key: string, err: unknown, retries: number, retryInMs: number) => void;
  /** Called when the queue runs dry (every worker idle, nothing waiting). */
  onIdle?: () => void;
}

export type Reconcile = (key: string) => Promise<void>;

export class Workqueue {
  private readonly order: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; handle: TimerHandle }>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly clock: Clock;
  private readonly workers: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private active = 0;
  private shuttingDown = false;

  constructor(private readonly reconcile: Reconcile, private readonly opts: WorkqueueOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.workers = Math.max(1, opts.workers ?? 2);
    this.baseDelayMs = opts.baseDelayMs ?? 200;
    this.maxDelayMs = opts.maxDelayMs ?? 60_000;
  }

  /** Queues a key now. Idempotent while the key waits. */
  add(key: string): void {
    if (this.shuttingDown || !key) return;
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    // In flight: the worker re-queues it when the current run ends.
    if (!this.processing.has(key)) this.order.push(key);
    this.schedulePump();
  }

  /** Queues a key after ms; an earlier pending add-after for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown || !key) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const prev = this.delayed.get(key);
    if (prev && prev.at <= at) return;
    if (prev) this.clock.clearTimeout(prev.handle);
    const handle = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, handle });
  }

  /** Queues a key after its back-off (base·2^failures, capped) and counts the failure. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(n, 30));
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears a key's failure count (its next failure starts from the base delay). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Keys waiting now (not counting delayed or in-flight ones). */
  len(): number {
    return this.order.length;
  }

  /** Keys waiting, delayed or in flight: how much work the queue knows of. */
  size(): number {
    return new Set([...this.order, ...this.delayed.keys(), ...this.processing]).size;
  }

  /** Resolves once no key waits and no worker runs (delayed keys do not count). */
  whenIdle(): Promise<void> {
    if (this.active === 0 && this.order.length === 0 && !this.pumpScheduled) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops taking work, cancels delayed keys and waits for the runs in flight. */
  async shutDown(): Promise<void> {
    this.shuttingDown = true;
    for (const d of this.delayed.values()) this.clock.clearTimeout(d.handle);
    this.delayed.clear();
    this.order.length = 0;
    this.dirty.clear();
    await this.whenIdle();
  }

  private pumpScheduled = false;

  /** Starts workers on the next microtask, so a burst of adds coalesces first. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (!this.shuttingDown && this.active < this.workers && this.order.length > 0) {
      const key = this.order.shift()!;
      this.dirty.delete(key);
      this.processing.add(key);
      this.active++;
      void this.run(key);
    }
    if (this.active === 0 && this.order.length === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async run(key: string): Promise<void> {
    try {
      await this.reconcile(key);
      this.forget(key);
    } catch (err) {
      if (!this.shuttingDown) {
        const retries = (this.failures.get(key) ?? 0) + 1;
        const delay = this.addRateLimited(key);
        try {
          this.opts.onError?.(key, err, retries, delay);
        } catch {
          // A failing error hook must not take the queue down with it.
        }
      }
    } finally {
      this.processing.delete(key);
      this.active--;
      // Added while in flight: run it again now that this run has ended.
      if (this.dirty.has(key) && !this.shuttingDown) this.order.push(key);
      this.pump();
      if (this.active === 0 && this.order.length === 0) {
        const waiters = this.idleWaiters.splice(0);
        for (const w of waiters) w();
        try {
          if (!this.shuttingDown) this.opts.onIdle?.();
        } catch {
          // as above
        }
      }
    }
  }
}
