import fc from 'fast-check';
import {
  POSTCOPY_SWITCHOVER_BYTES,
  abortPrecopy,
  advance,
  convergenceBandwidth,
  jobStats,
  predictMigration,
  setBandwidth,
  setMaxDowntime,
  startPostCopy,
  startPrecopy,
  timeToFinishMs,
  type GuestModel,
  type PrecopyControls,
  type PrecopyState,
} from '../../../src/hypervisor/precopy.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function controls(over: Partial<PrecopyControls> = {}): PrecopyControls {
  return { bandwidth: 1e9, maxDowntimeMs: 100, autoConverge: false, postCopy: false, ...over };
}

function guest(over: Partial<GuestModel> = {}): GuestModel {
  return { memoryBytes: 4 * GiB, dirtyRate: 0, workingSet: 8 * GiB, zeroFraction: 0, ...over };
}

/** Advances in small steps and records the throttle seen in each live round (by 1-based iteration). */
function throttleByIteration(state: PrecopyState, stepMs: number, maxRounds: number): number[] {
  const seen: number[] = [];
  let s = state;
  while (s.stage === 'precopy' && seen.length < maxRounds) {
    const st = jobStats(s);
    seen[st.iteration - 1] = st.autoConvergeThrottle;
    s = advance(s, stepMs);
  }
  return seen;
}

describe('pre-copy model: closed-form cases', () => {
  test('an idle guest is sent in one round, in memory / bandwidth, with no downtime', () => {
    const p = predictMigration(guest(), controls());
    expect(p.converges).toBe(true);
    expect(p.rounds).toBe(1);
    expect(p.durationMs).toBeCloseTo((4 * GiB) / 1e6, 6);
    expect(p.downtimeMs).toBe(0);

    const done = advance(startPrecopy(guest(), controls()), p.durationMs);
    const st = jobStats(done);
    expect(st.phase).toBe('completed');
    expect(st.dataProcessed).toBeCloseTo(4 * GiB, 0);
    expect(st.dataRemaining).toBe(0);
    expect(st.downtimeMs).toBe(0);
  });

  test('zero pages cost nothing to send', () => {
    const g = guest({ zeroFraction: 0.75 });
    expect(jobStats(startPrecopy(g, controls())).dataTotal).toBeCloseTo(GiB, 0);
    expect(predictMigration(g, controls()).durationMs).toBeCloseTo(GiB / 1e6, 6);
  });

  test('a guest dirtying as fast as the link never converges, however long it runs', () => {
    for (const dirtyRate of [1e8, 3e8]) {
      const g = guest({ dirtyRate, workingSet: GiB });
      const c = controls({ bandwidth: 1e8, maxDowntimeMs: 300 });
      const p = predictMigration(g, c);
      expect(p).toEqual({ converges: false, durationMs: Infinity, downtimeMs: Infinity, rounds: Infinity });

      const s = startPrecopy(g, c);
      expect(timeToFinishMs(s)).toBe(Infinity);
      const later = advance(s, 10 * 3600_000);
      const st = jobStats(later);
      expect(st.phase).toBe('running');
      expect(st.iteration).toBeGreaterThan(100);
      expect(st.dataRemaining).toBeLessThanOrEqual(2 * GiB + 1);
      expect(timeToFinishMs(later)).toBe(Infinity);
    }
  });

  test('a month of a non-converging guest with a tiny working set is simulated at once, round for round', () => {
    // Rounds of 1 MiB at 10 GB/s last about 0.1 ms: some 25 billion of them in a month.
    const W = MiB;
    const g = guest({ memoryBytes: GiB, dirtyRate: 2e10, workingSet: W });
    const c = controls({ bandwidth: 1e10, maxDowntimeMs: 0.05 });
    const month = 30 * 24 * 3600_000;
    const s = advance(startPrecopy(g, c), month);
    const roundMs = W / 1e7;
    const expected = 1 + Math.floor((month - GiB / 1e7) / roundMs);
    expect(Math.abs(s.round - expected)).toBeLessThanOrEqual(1);
    expect(jobStats(s).dataProcessed).toBeCloseTo(1e7 * month, -6);
    expect(timeToFinishMs(s)).toBe(Infinity);
  });

  test('a guest dirtying at half the bandwidth follows the geometric series', () => {
    // Rounds of M, M/2, M/4 …; the first one under 1e8 bytes (100 ms at 1 GB/s) is M/64.
    const M = 4 * GiB;
    const g = guest({ dirtyRate: 5e8 });
    const p = predictMigration(g, controls());
    expect(p.converges).toBe(true);
    expect(p.rounds).toBe(6);
    expect(p.downtimeMs).toBeCloseTo(M / 64 / 1e6, 6);
    expect(p.durationMs).toBeCloseTo(((2 * M) * (127 / 128)) / 1e6, 6);

    // At the end of round 0 the job reports the second iteration with half the memory to send.
    const s = advance(startPrecopy(g, controls()), M / 1e6);
    const st = jobStats(s);
    expect(st.iteration).toBe(2);
    expect(st.dataRemaining).toBeCloseTo(M / 2, -1);
    expect(st.dirtyRate).toBe(5e8);
  });

  test('the working set caps what later rounds have to send', () => {
    const M = 4 * GiB;
    const W = 256 * MiB;
    const q = 0.8;
    const g = guest({ dirtyRate: q * 1e9, workingSet: W });
    const c = controls({ maxDowntimeMs: 50 });

    // Round 0 dirties 0.8 × 4 GiB, but only the 256 MiB working set is left to send.
    const afterFirst = advance(startPrecopy(g, c), M / 1e6);
    expect(jobStats(afterFirst).iteration).toBe(2);
    expect(jobStats(afterFirst).dataRemaining).toBeCloseTo(W, -2);

    // Then W, 0.8 W, … until W·0.8⁸ ≈ 45 MB fits in 50 ms at 1 GB/s: nine live rounds.
    const p = predictMigration(g, c);
    expect(p.rounds).toBe(9);
    expect(p.downtimeMs).toBeCloseTo((W * q ** 8) / 1e6, 6);
    expect(p.durationMs).toBeCloseTo((M + (W * (1 - q ** 8)) / (1 - q) + W * q ** 8) / 1e6, 6);
  });

  test('raising the bandwidth mid-migration makes a non-converging guest converge', () => {
    const g = guest({ memoryBytes: 2 * GiB, dirtyRate: 1.5e8, workingSet: GiB });
    let s = advance(startPrecopy(g, controls({ bandwidth: 1e8, maxDowntimeMs: 300 })), 60_000);
    expect(timeToFinishMs(s)).toBe(Infinity);

    s = setBandwidth(s, 1e9);
    const left = timeToFinishMs(s);
    expect(Number.isFinite(left)).toBe(true);
    expect(jobStats(s).bandwidthLimit).toBe(1e9);
    expect(jobStats(advance(s, left * 0.999)).phase).toBe('running');
    const done = advance(s, left);
    expect(jobStats(done).phase).toBe('completed');
    expect(done.elapsedMs).toBeCloseTo(60_000 + left, 6);
  });

  test('raising the max downtime lets the migration finish at the next round boundary', () => {
    const W = 256 * MiB;
    const g = guest({ memoryBytes: GiB, dirtyRate: 2e8, workingSet: W });
    let s = advance(startPrecopy(g, controls({ bandwidth: 1e8, maxDowntimeMs: 300 })), 20_000);
    expect(s.stage).toBe('precopy');
    expect(timeToFinishMs(s)).toBe(Infinity);

    s = setMaxDowntime(s, 3000);
    const toBoundary = s.roundLeft / 1e5;
    const stopAndCopy = W / 1e5;
    expect(timeToFinishMs(s)).toBeCloseTo(toBoundary + stopAndCopy, 6);
    expect(advance(s, toBoundary - 1).stage).toBe('precopy');
    const paused = advance(s, toBoundary + 1);
    expect(paused.stage).toBe('stopAndCopy');
    expect(jobStats(paused).phase).toBe('running');
    expect(jobStats(paused).expectedDowntimeMs).toBeCloseTo(stopAndCopy, 6);

    const done = advance(s, toBoundary + stopAndCopy);
    expect(jobStats(done).phase).toBe('completed');
    expect(jobStats(done).downtimeMs).toBeCloseTo(stopAndCopy, 6);
  });

  test('auto-converge throttles 20, 30, 40 … % until a guest slightly faster than the link converges', () => {
    const g = guest({ memoryBytes: GiB, dirtyRate: 1.1e8, workingSet: GiB });
    const c = controls({ bandwidth: 1e8, maxDowntimeMs: 300 });
    expect(predictMigration(g, c).converges).toBe(false);

    const ac = controls({ bandwidth: 1e8, maxDowntimeMs: 300, autoConverge: true });
    const p = predictMigration(g, ac);
    expect(p.converges).toBe(true);
    // At 60 % the guest dirties 0.44 of each round: under half, so the throttle stops rising.
    expect(throttleByIteration(startPrecopy(g, ac), 10, 50)).toEqual([0, 20, 30, 40, 50, 60, 60, 60]);
    expect(p.rounds).toBe(8);

    const s = advance(startPrecopy(g, ac), GiB / 1e5 + 1);
    expect(jobStats(s).dirtyRate).toBeCloseTo(1.1e8 * 0.8, 3);
  });

  test('auto-converge stops at 99 % and cannot save a guest dirtying 500× the link', () => {
    const g = guest({ memoryBytes: GiB, dirtyRate: 5e10, workingSet: 512 * MiB });
    const c = controls({ bandwidth: 1e8, maxDowntimeMs: 300, autoConverge: true });
    expect(throttleByIteration(startPrecopy(g, c), 100, 14)).toEqual(
      [0, 20, 30, 40, 50, 60, 70, 80, 90, 99, 99, 99, 99, 99],
    );
    expect(predictMigration(g, c).converges).toBe(false);
  });

  test('post-copy pulls the rest at the bandwidth with only the switchover as downtime', () => {
    const g = guest({ dirtyRate: 2e8, workingSet: GiB });
    const c = controls({ bandwidth: 1e8, postCopy: true });
    const before = advance(startPrecopy(g, c), 5_000);
    const remainingBefore = jobStats(before).dataRemaining;

    const s = startPostCopy(before);
    const st = jobStats(s);
    expect(st.mode).toBe('PostCopy');
    expect(st.dataRemaining).toBeCloseTo(remainingBefore + POSTCOPY_SWITCHOVER_BYTES, 0);
    expect(st.dirtyRate).toBe(0);
    expect(timeToFinishMs(s)).toBeCloseTo(st.dataRemaining / 1e5, 6);
    expect(startPostCopy(s)).toBe(s);

    const almost = advance(s, st.dataRemaining / 1e5 - 1);
    expect(jobStats(almost).phase).toBe('running');
    expect(jobStats(almost).dataTotal).toBeCloseTo(st.dataTotal, 0);
    const done = advance(almost, 1);
    expect(jobStats(done)).toMatchObject({ phase: 'completed', mode: 'PostCopy', dataRemaining: 0 });
    expect(jobStats(done).downtimeMs).toBeCloseTo(POSTCOPY_SWITCHOVER_BYTES / 1e5, 6);
    expect(done.elapsedMs).toBeCloseTo(5_000 + st.dataRemaining / 1e5, 6);
  });

  test('post-copy is refused without the capability, and a post-copy migration cannot be aborted', () => {
    const g = guest({ dirtyRate: 2e8, workingSet: GiB });
    const s = advance(startPrecopy(g, controls({ bandwidth: 1e8 })), 1_000);
    expect(() => startPostCopy(s)).toThrow(/postCopy capability/);

    const pc = startPostCopy(advance(startPrecopy(g, controls({ bandwidth: 1e8, postCopy: true })), 1_000));
    expect(() => abortPrecopy(pc, 'user')).toThrow(/post-copy/);
  });

  test('abort stops the migration where it is', () => {
    const g = guest({ dirtyRate: 2e8, workingSet: GiB });
    const s = abortPrecopy(advance(startPrecopy(g, controls({ bandwidth: 1e8 })), 1_000), 'deleted by user');
    const st = jobStats(s);
    expect(st.phase).toBe('aborted');
    expect(s.abortReason).toBe('deleted by user');
    expect(st.dataProcessed).toBeCloseTo(1e8, 0);
    expect(advance(s, 1e9)).toBe(s);
    expect(timeToFinishMs(s)).toBe(Infinity);
    expect(abortPrecopy(s, 'again')).toBe(s);
    expect(() => startPostCopy(s)).toThrow(/aborted/);
  });

  test('a completed migration cannot be aborted', () => {
    const s = advance(startPrecopy(guest(), controls()), 10_000);
    expect(jobStats(s).phase).toBe('completed');
    expect(() => abortPrecopy(s, 'late')).toThrow(/already completed/);
    expect(timeToFinishMs(s)).toBe(0);
  });

  test('statistics follow libvirt: 1-based iteration, total = processed + remaining, limit echoed', () => {
    const g = guest({ dirtyRate: 2e8, workingSet: GiB });
    const s = advance(startPrecopy(g, controls({ bandwidth: 1e8 })), 2_000);
    const st = jobStats(s);
    expect(st).toMatchObject({ phase: 'running', mode: 'PreCopy', iteration: 1, memoryBandwidth: 1e8, bandwidthLimit: 1e8 });
    expect(st.elapsedMs).toBe(2_000);
    expect(st.dataProcessed).toBeCloseTo(2e8, 0);
    // Unsent part of round 0 plus 2 s of dirtying at 200 MB/s.
    expect(st.dataRemaining).toBeCloseTo(4 * GiB - 2e8 + 4e8, 0);
    expect(st.dataTotal).toBeCloseTo(st.dataProcessed + st.dataRemaining, 0);
    expect(st.expectedDowntimeMs).toBeCloseTo(st.dataRemaining / 1e5, 6);
    expect(st.downtimeMs).toBeUndefined();
  });

  test('invalid inputs are refused with the offending value', () => {
    expect(() => startPrecopy(guest({ zeroFraction: 1.5 }), controls())).toThrow(/zeroFraction.*1\.5/);
    expect(() => startPrecopy(guest(), controls({ bandwidth: 0 }))).toThrow(/bandwidth/);
    const s = startPrecopy(guest(), controls());
    expect(() => setMaxDowntime(s, 0)).toThrow(/maxDowntimeMs/);
    expect(() => setBandwidth(s, -1)).toThrow(/bandwidth/);
    expect(() => advance(s, -5)).toThrow(/dtMs/);
  });
});

describe('convergenceBandwidth', () => {
  test('is tight when the first dirty round must fit the downtime (link slower than the dirty rate)', () => {
    const g = guest({ dirtyRate: 2e9, workingSet: 512 * MiB });
    const b = convergenceBandwidth(g, 500);
    expect(b).toBeCloseTo((512 * MiB) / 0.5, -3);
    expect(predictMigration(g, controls({ bandwidth: b, maxDowntimeMs: 500 })).converges).toBe(true);
    expect(predictMigration(g, controls({ bandwidth: b * (1 - 1e-6), maxDowntimeMs: 500 })).converges).toBe(false);
  });

  test('is the dirty rate itself when only a faster link helps', () => {
    const g = guest({ dirtyRate: 5e8, workingSet: 4 * GiB });
    const b = convergenceBandwidth(g, 300);
    expect(b).toBeCloseTo(5e8, -1);
    expect(predictMigration(g, controls({ bandwidth: b, maxDowntimeMs: 300 })).converges).toBe(true);
    expect(predictMigration(g, controls({ bandwidth: b * (1 - 1e-6), maxDowntimeMs: 300 })).converges).toBe(false);
  });

  test('is zero for an idle guest', () => {
    expect(convergenceBandwidth(guest(), 300)).toBe(0);
  });
});

describe('pre-copy model: advancing is exact for any split', () => {
  // fc.double picks uniformly among representable doubles, i.e. mostly tiny ones:
  // draw uniform and log-uniform values instead, plus the edges that matter.
  const uniform = (min: number, max: number): fc.Arbitrary<number> =>
    fc.integer({ min: 0, max: 2 ** 30 }).map((i) => min + ((max - min) * i) / 2 ** 30);
  const logUniform = (min: number, max: number): fc.Arbitrary<number> =>
    uniform(Math.log(min), Math.log(max)).map(Math.exp);
  const scenario = fc.record({
    memoryBytes: logUniform(64 * MiB, 64 * GiB),
    dirtyShare: fc.oneof(uniform(0, 2.5), fc.constant(0), uniform(0.95, 1.05)),
    workingSetShare: fc.oneof(uniform(0, 1.2), logUniform(1e-6, 1)),
    zeroFraction: uniform(0, 0.95),
    bandwidth: logUniform(1e7, 1e10),
    maxDowntimeMs: logUniform(5, 3000),
    autoConverge: fc.boolean(),
    postCopyAt: fc.option(uniform(0, 3), { freq: 4 }),
    t0: fc.oneof(uniform(0, 5), fc.constant(0)),
    a: uniform(0, 5),
    b: uniform(0, 5),
  });


  type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

  /** A state somewhere in a migration; times are in units of round 0's duration. */
  function setUp(sc: Scenario): { s: PrecopyState; unit: number } {
    const g: GuestModel = {
      memoryBytes: sc.memoryBytes,
      dirtyRate: sc.dirtyShare * sc.bandwidth,
      workingSet: sc.workingSetShare * sc.memoryBytes,
      zeroFraction: sc.zeroFraction,
    };
    const c = controls({ bandwidth: sc.bandwidth, maxDowntimeMs: sc.maxDowntimeMs, autoConverge: sc.autoConverge, postCopy: true });
    const unit = (sc.memoryBytes / sc.bandwidth) * 1000;
    let s = startPrecopy(g, c);
    if (sc.postCopyAt !== null) {
      s = advance(s, sc.postCopyAt * unit);
      if (s.stage === 'precopy') s = startPostCopy(s);
    }
    return { s: advance(s, sc.t0 * unit), unit };
  }

  function expectSameState(x: PrecopyState, y: PrecopyState, memoryBytes: number): void {
    const near = (p: number, q: number, scale: number): boolean =>
      Math.abs(p - q) <= 1e-7 * Math.max(Math.abs(p), Math.abs(q)) + 1e-9 * scale;
    expect(x.stage).toBe(y.stage);
    expect(x.round).toBe(y.round);
    expect(x.throttle).toBe(y.throttle);
    for (const k of ['dataProcessed', 'roundLeft', 'dirtied', 'roundBytes', 'pausedLeft'] as const) {
      if (!near(x[k], y[k], memoryBytes)) throw new Error(`${k}: ${x[k]} vs ${y[k]}`);
    }
    for (const k of ['elapsedMs', 'downtimeMs'] as const) {
      if (!near(x[k], y[k], x.elapsedMs + 1)) throw new Error(`${k}: ${x[k]} vs ${y[k]}`);
    }
  }

  test('advance(s, a + b) equals advance(advance(s, a), b)', () => {
    fc.assert(
      fc.property(scenario, (sc) => {
        const { s, unit } = setUp(sc);
        const whole = advance(s, (sc.a + sc.b) * unit);
        const split = advance(advance(s, sc.a * unit), sc.b * unit);
        expectSameState(whole, split, sc.memoryBytes);
      }),
      { numRuns: 2000 },
    );
  });

  test('timeToFinishMs is when advancing completes, and predictMigration agrees with it', () => {
    fc.assert(
      fc.property(scenario, (sc) => {
        const { s } = setUp(sc);
        const left = timeToFinishMs(s);
        if (!Number.isFinite(left)) {
          expect(jobStats(advance(s, 1e7)).phase).not.toBe('completed');
          return;
        }
        expect(jobStats(advance(s, left)).phase).toBe('completed');
        if (left > 1e-3) expect(jobStats(advance(s, left * (1 - 1e-6))).phase).not.toBe('completed');
        if (sc.postCopyAt === null && sc.t0 === 0) {
          const p = predictMigration(s.guest, s.controls);
          expect(p.durationMs).toBeCloseTo(left, 3);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
