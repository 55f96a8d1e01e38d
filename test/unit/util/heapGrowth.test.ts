import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { limitHeapGrowth } from '../../../src/util/heapGrowth.js';

const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));
const heapGrowth = fileURLToPath(new URL('../../../src/util/heapGrowth.ts', import.meta.url));

/** A process holding ~60 MB that replaces its objects for a while, as a controller's caches do; prints its peak heap ÷ live heap. */
const churn = (limit: boolean) => `
  const { limitHeapGrowth } = await import(${JSON.stringify(heapGrowth)});
  if (${limit}) limitHeapGrowth();
  const live = new Map();
  const mk = (i) => ({ name: 'vm-' + i, labels: { a: 'x'.repeat(20) + i }, list: Array.from({ length: 20 }, (_, k) => ({ k, s: 's' + k + '-' + i })) });
  for (let i = 0; i < 30000; i++) live.set(i, mk(i));
  let peak = 0;
  for (let n = 0; n < 150000; n++) { live.set(n % 30000, mk(n)); if (n % 1000 === 0) peak = Math.max(peak, process.memoryUsage().heapTotal); }
  globalThis.gc();
  console.log((peak / process.memoryUsage().heapUsed).toFixed(2), live.size);
`;

function peakOverLive(limit: boolean): number {
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', tsx, '--input-type=module', '-e', churn(limit)], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return Number(out.trim().split(" ")[0]);
}

describe('the controller\'s heap growth', () => {
  it('keeps the heap near what the process holds while it replaces cached objects', () => {
    const limited = peakOverLive(true);
    const unlimited = peakOverLive(false);
    // Young generation and code count in heapTotal too; V8 on its own goes past 4×.
    expect(limited).toBeLessThan(3);
    expect(unlimited).toBeGreaterThan(limited * 1.5);
  }, 60_000);

  it('leaves the operator\'s own setting alone', () => {
    expect(limitHeapGrowth(50, { NODE_OPTIONS: '--max-old-space-size=512 --heap-growing-percent=80' }, [])).toBeUndefined();
    expect(limitHeapGrowth(50, {}, ['--heap_growing_percent=80'])).toBeUndefined();
  });
});
