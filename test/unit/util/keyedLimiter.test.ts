import { KeyedLimiter } from '../../../src/util/keyedLimiter.js';

const tick = () => new Promise((r) => setImmediate(r));

function deferred() {
  let resolve!: () => void;
  const p = new Promise<void>((r) => { resolve = r; });
  return { p, resolve };
}

test('tasks of one key run in order, one at a time; other keys do not wait for them', async () => {
  const l = new KeyedLimiter(10);
  const log: string[] = [];
  const a1 = deferred();
  void l.run('a', async () => { log.push('a1 start'); await a1.p; log.push('a1 end'); });
  void l.run('a', async () => { log.push('a2'); });
  void l.run('b', async () => { log.push('b1'); });
  await tick();
  expect(log).toEqual(['a1 start', 'b1']);
  a1.resolve();
  await l.idle();
  expect(log).toEqual(['a1 start', 'b1', 'a1 end', 'a2']);
});

test('accept() waits while the limit is reached, and a failing task frees its place too', async () => {
  const l = new KeyedLimiter(2);
  const first = deferred();
  const failing = l.run('x', async () => { await first.p; throw new Error('boom'); });
  void l.run('y', () => new Promise<void>(() => undefined)); // never ends
  let accepted = false;
  void l.accept().then(() => { accepted = true; });
  await tick();
  expect(accepted).toBe(false);
  expect(l.size).toBe(2);
  first.resolve();
  await expect(failing).rejects.toThrow('boom');
  await tick();
  expect(accepted).toBe(true);
  expect(l.size).toBe(1);
});
