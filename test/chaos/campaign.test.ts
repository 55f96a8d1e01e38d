import { runCampaign } from '../../src/chaos/campaign.js';

/**
 * The short fixed-seed chaos campaign (the long one is `npm run chaos`): Ferry
 * as separate processes, about 100 migrations under seeded faults of every
 * kind, and no invariant may break. On failure the message carries the seed,
 * the violations and the timeline before the first; the campaign directory
 * (journals, process logs, violation.json) is kept.
 */
const SEED = 13;
const MIGRATIONS = Number(process.env['FERRY_CHAOS_MIGRATIONS'] ?? 100);
/** The run stops creating work after this long whatever it reached, so a loaded machine cannot make the test hang. */
const MAX_MS = 150_000;
/** Fewer than this many migrations in MAX_MS means Ferry (or the machine) is far too slow to call the run a test of anything. */
const FLOOR = Math.min(MIGRATIONS, 40);

describe('chaos campaign (short, fixed seed)', () => {
  it(`keeps every invariant over ${MIGRATIONS} migrations under faults (seed ${SEED})`, async () => {
    const r = await runCampaign({ migrations: MIGRATIONS, seed: SEED, baseline: 10, timeScale: 4, concurrency: 4, faultGapMs: [500, 1500], maxMs: MAX_MS });
    const faults = Object.values(r.faults).reduce((a, b) => a + b, 0);
    process.stdout.write(`chaos (seed ${SEED}): ${r.migrations.finished} migrations, ${faults} faults (${Object.entries(r.faults).map(([k, n]) => `${k} ${n}`).join(', ')}), ${r.violations.length} violations in ${(r.durationMs / 1000).toFixed(0)} s\n`);
    const evidence = r.violations.length === 0 ? '' : [
      `seed ${r.seed}: ${r.violations.length} violation(s); evidence in ${r.dir}`,
      ...r.violations.map((v) => `${v.invariant} (${v.subject}): ${v.message}`),
      '--- timeline ---',
      ...r.timeline,
    ].join('\n');
    expect(evidence).toBe('');
    expect(r.migrations.finished).toBeGreaterThanOrEqual(FLOOR);
    expect(faults).toBeGreaterThanOrEqual(5);
  }, 300_000);
});
