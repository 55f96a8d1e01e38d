import { waterFill } from '../../../src/limits/waterfill.js';

const flow = (resources: number[], cap = Infinity, floor = 0) => ({ resources, cap, floor });

describe('max-min fair water-filling', () => {
  test('flows on one link split it equally', () => {
    expect([...waterFill([90], [flow([0]), flow([0]), flow([0])])]).toEqual([30, 30, 30]);
  });

  test('a capped flow leaves its unused share to the others', () => {
    expect([...waterFill([100], [flow([0], 10), flow([0]), flow([0])])]).toEqual([10, 45, 45]);
  });

  test('a flow held back by one link frees room on the other (parking lot)', () => {
    // Long flow crosses both links; link 1 also carries two short flows.
    const a = waterFill([100, 60], [flow([0, 1]), flow([0]), flow([1]), flow([1])]);
    expect(a[0]).toBeCloseTo(20);
    expect(a[2]).toBeCloseTo(20);
    expect(a[3]).toBeCloseTo(20);
    expect(a[1]).toBeCloseTo(80);
  });

  test('floors are kept and the rest fills the lowest first', () => {
    // 80 reserved for the first, 10 for the second: the spare 10 goes to the second.
    expect([...waterFill([100], [flow([0], Infinity, 80), flow([0], Infinity, 10)])]).toEqual([80, 20]);
    // With more spare both rise together once the second catches up.
    expect([...waterFill([200], [flow([0], Infinity, 80), flow([0], Infinity, 10)])]).toEqual([100, 100]);
  });

  test('a flow crossing no finite resource and without a cap is unbounded', () => {
    expect(waterFill([Infinity], [flow([0])])[0]).toBe(Infinity);
    expect(waterFill([Infinity], [flow([0], 5)])[0]).toBe(5);
  });

  test('floors that do not fit are refused', () => {
    expect(() => waterFill([10], [flow([0], Infinity, 8), flow([0], Infinity, 8)])).toThrow(/floors need 16 on resource 0/);
  });

  test('the result never overshoots a capacity, even with awkward floats', () => {
    const caps = [0.3, 0.7, 1e9 / 3];
    const flows = [flow([0, 1]), flow([0]), flow([1, 2]), flow([2]), flow([2], 1e8 / 7), flow([0, 2])];
    const a = waterFill(caps, flows);
    caps.forEach((c, r) => {
      const sum = flows.reduce((s, f, i) => (f.resources.includes(r) ? s + a[i]! : s), 0);
      expect(sum).toBeLessThanOrEqual(c);
    });
    for (const x of a) expect(x).toBeGreaterThan(0);
  });
});
