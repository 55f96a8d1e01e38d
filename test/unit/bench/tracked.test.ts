import { TrackedMigration } from '../../../src/runbook/simulation/tracked.js';

const Mi = 2 ** 20;
const Gi = 2 ** 30;

describe('a migration tracked through virtual time', () => {
  const controls = { bandwidth: 1000 * Mi, maxDowntimeMs: 300, autoConverge: false, postCopy: false };

  test('one long jump and many small steps see the same progress', () => {
    const guest = { memoryBytes: 16 * Gi, dirtyRate: 700 * Mi, workingSet: 6 * Gi, zeroFraction: 0.1 };
    const jump = new TrackedMigration(guest, controls, 0);
    const steps = new TrackedMigration(guest, controls, 0);
    jump.advanceTo(20_000);
    for (let t = 0; t <= 20_000; t += 37) steps.advanceTo(t);
    steps.advanceTo(20_000);
    expect(steps.state.stage).toBe(jump.state.stage);
    expect(steps.lowestRemaining).toBeCloseTo(jump.lowestRemaining, -3);
    expect(steps.lastProgressAt).toBeCloseTo(jump.lastProgressAt, 3);
    expect(steps.state.dataProcessed).toBeCloseTo(jump.state.dataProcessed, -3);
  });

  test('a guest dirtying faster than the link stops making progress once its first round ends', () => {
    const hot = new TrackedMigration({ memoryBytes: 8 * Gi, dirtyRate: 1500 * Mi, workingSet: 2 * Gi, zeroFraction: 0 }, controls, 1000);
    hot.advanceTo(600_000);
    // Round 0 sends 8Gi in 8.192 s; after that every round re-sends the same 2Gi.
    expect(hot.lastProgressAt).toBeCloseTo(1000 + 8192, 0);
    expect(hot.finishesAt()).toBe(Infinity);
  });

  test('it completes when the model says it does', () => {
    const calm = new TrackedMigration({ memoryBytes: 4 * Gi, dirtyRate: 10 * Mi, workingSet: 256 * Mi, zeroFraction: 0 }, controls, 500);
    const end = calm.finishesAt();
    calm.advanceTo(end - 1);
    expect(calm.state.stage).not.toBe('completed');
    calm.advanceTo(end);
    expect(calm.state.stage).toBe('completed');
  });
});
