import fc from 'fast-check';
import { Workqueue } from '../../../src/kube/workqueue.js';
import { ManualClock } from '../../../src/util/clock.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('Workqueue', () => {
  it('holds a waiting key once however often it is added', async () => {
    const seen: string[] = [];
    const q = new Workqueue(async (k) => { seen.push(k); }, { workers: 1 });
    q.add('a'); q.add('a'); q.add('b'); q.add('a');
    await q.whenIdle();
    expect(seen).toEqual(['a', 'b']);
  });

  it('never runs one key twice at once, and re-runs a key added while in flight', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new Workqueue(async () => {
      inFlight++; runs++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      if (runs === 1) await gate;
      inFlight--;
    }, { workers: 4 });
    q.add('k');
    await tick();
    q.add('k'); q.add('k');
    await tick();
    expect(inFlight).toBe(1);
    release();
    await q.whenIdle();
    expect(maxInFlight).toBe(1);
    expect(runs).toBe(2);
  });

  it('retries a failing key with exponential back-off and forgets it on success', async () => {
    const clock = new ManualClock();
    const times: number[] = [];
    let fail = 3;
    const errors: number[] = [];
    const q = new Workqueue(async () => {
      times.push(clock.now());
      if (fail-- > 0) throw new Error('apiserver said 500');
    }, { clock, baseDelayMs: 100, maxDelayMs: 10_000, onError: (_k, _e, _n, delay) => errors.push(delay) });
    q.add('x');
    for (let i = 0; i < 10; i++) { await tick(); clock.advance(100); }
    await q.whenIdle();
    expect(errors).toEqual([100, 200, 400]);
    expect(times).toEqual([0, 100, 300, 700]);
    expect(q.numRequeues('x')).toBe(0);
  });

  it('caps the back-off', () => {
    const q = new Workqueue(async () => {}, { clock: new ManualClock(), baseDelayMs: 100, maxDelayMs: 1000 });
    const d = [1, 2, 3, 4, 5, 6].map(() => q.addRateLimited('y'));
    expect(d).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('keeps processing other keys while one is slow', async () => {
    const done: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new Workqueue(async (k) => {
      if (k === 'slow') await gate;
      done.push(k);
    }, { workers: 2 });
    q.add('slow'); q.add('a'); q.add('b');
    await tick(); await tick();
    expect(done).toEqual(['a', 'b']);
    release();
    await q.whenIdle();
    expect(done).toEqual(['a', 'b', 'slow']);
  });

  it('shutDown cancels delayed keys and waits for in-flight runs', async () => {
    const clock = new ManualClock();
    const seen: string[] = [];
    const q = new Workqueue(async (k) => { seen.push(k); }, { clock });
    q.addAfter('later', 1000);
    await q.shutDown();
    clock.advance(2000);
    q.add('after-shutdown');
    await tick();
    expect(seen).toEqual([]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('property: no key runs concurrently with itself, every added key runs after its last add', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        async (ops, workers) => {
          const running = new Set<string>();
          let violation = false;
          const lastAdd = new Map<string, number>();
          const lastStart = new Map<string, number>();
          let seq = 0;
          const q = new Workqueue(async (k) => {
            if (running.has(k)) violation = true;
            running.add(k);
            lastStart.set(k, ++seq);
            for (let i = 0; i < (k.charCodeAt(0) % 3); i++) await tick();
            running.delete(k);
          }, { workers });
          for (const [k, waits] of ops) {
            lastAdd.set(k, ++seq);
            q.add(k);
            for (let i = 0; i < waits; i++) await tick();
          }
          await q.whenIdle();
          expect(violation).toBe(false);
          for (const [k, at] of lastAdd) expect(lastStart.get(k)!).toBeGreaterThan(at);
        },
      ),
      { numRuns: 60 },
    );
  });
});
