import { migrationGone } from '../../../src/controller/orphanState.js';

/**
 * Chaos campaign seed 1000: a new leader's VMI reconcile found a migrationState
 * whose VMIM was not in its cache yet, took the migration for deleted, and
 * cancelled its target; the migration then "completed" into nothing and the
 * guest was lost. A VMIM is gone only when the API server says so too.
 */
describe('is the migration behind an open migrationState gone?', () => {
  const vmim = (uid: string) => ({ metadata: { uid, name: `m-${uid}` } });

  it('is not gone while the cache has it (the API server is not asked)', async () => {
    let asked = 0;
    await expect(migrationGone('u1', [vmim('u1')], async () => { asked++; return []; })).resolves.toBe(false);
    expect(asked).toBe(0);
  });

  it('is not gone when only the cache lacks it: the API server still has it', async () => {
    await expect(migrationGone('u1', [vmim('u2')], async () => [vmim('u2'), vmim('u1')])).resolves.toBe(false);
  });

  it('is gone when neither the cache nor the API server has it', async () => {
    await expect(migrationGone('u1', [], async () => [vmim('u2')])).resolves.toBe(true);
  });

  it('does not guess when the API server cannot be asked: the error propagates and nothing is closed', async () => {
    await expect(migrationGone('u1', [], async () => { throw new Error('500 Internal Server Error'); })).rejects.toThrow('500');
  });
});
