import { downtimeForIteration } from '../../../src/limits/downtime.js';

const steps = { baseMs: 300, firstStepAfter: 4, every: 2, capMs: 2000 };

describe('downtime stepping', () => {
  test('keeps the configured downtime for the first rounds', () => {
    for (let i = 1; i <= 4; i++) expect(downtimeForIteration(i, steps)).toBe(300);
  });
  test('doubles every few rounds after that, up to the cap', () => {
    expect([5, 6, 7, 8, 9, 10, 30].map((i) => downtimeForIteration(i, steps))).toEqual([600, 600, 1200, 1200, 2000, 2000, 2000]);
  });
  test('never decreases as rounds go on', () => {
    let last = 0;
    for (let i = 1; i < 100; i++) {
      const d = downtimeForIteration(i, steps);
      expect(d).toBeGreaterThanOrEqual(last);
      last = d;
    }
  });
});
