/**
 * A restarted handler's recovery, without a daemon: what it concludes from a
 * domain's state and libvirt's job record, and how it treats its records.
 * The libvirt lane (test/libvirt/ferry.test.ts) runs the same on real daemons.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResultMessage } from '../../../src/bus/protocol.js';
import type { DomainState, HypervisorDriver, JobStats, MigrationJob, MigrationOutcome } from '../../../src/hypervisor/driver.js';
import type { MigrationInspection } from '../../../src/hypervisor/libvirt/driver.js';
import { JobRecordStore, type SourceJobRecord } from '../../../src/handler/jobRecords.js';
import { isRecoverable, recoverSourceJobs, recoveryStep, type RecoveringSource } from '../../../src/handler/recovery.js';
import { silentLogger } from '../../../src/util/log.js';

const record: SourceJobRecord = {
  migrationUid: 'uid-1', attempt: 1, vmi: 'default/vm-1', domain: 'default_vm-1', targetNode: 'node-2', startedAt: '2025-01-01T00:00:00.000Z',
};

function stats(phase: JobStats['phase'], over: Partial<JobStats> = {}): JobStats {
  return {
    phase, mode: 'PreCopy', elapsedMs: 4000, dataTotal: 67_502_080, dataProcessed: 3_000_000, dataRemaining: 0,
    memoryBandwidth: 1e6, dirtyRate: 0, iteration: 2, autoConvergeThrottle: 0, bandwidthLimit: 0, ...over,
  };
}

function resultOf(outcome: Exclude<ResultMessage['outcome'], 'unknown'>): ResultMessage {
  return { migrationUid: 'uid-1', attempt: 1, vmi: 'default/vm-1', node: 'node-1', outcome, mode: 'PreCopy', stats: stats(outcome), at: '2025-01-01T00:00:05.000Z' };
}

function seen(state: DomainState | 'missing', over: Partial<MigrationInspection> = {}): MigrationInspection {
  return { domain: record.domain, state, migrating: false, ...over };
}

const opts = { node: 'node-1', lastLook: false };

describe('recoveryStep', () => {
  test('a job still running in the hypervisor is taken over', () => {
    expect(recoveryStep(record, seen('running', { migrating: true, stats: stats('running') }), opts)).toEqual({ kind: 'attach' });
  });

  test('a source domain shut off after the job means the guest left: completed, with libvirt\'s downtime', () => {
    const step = recoveryStep(record, seen('shutoff', { stats: stats('completed', { downtimeMs: 42 }) }), opts);
    expect(step).toMatchObject({ kind: 'settle', outcome: { status: 'completed', downtimeMs: 42, stats: { phase: 'completed', dataRemaining: 0, iteration: 2 } } });
  });

  test('a guest still running here whose job failed: failed, with libvirt\'s message', () => {
    const step = recoveryStep(record, seen('running', { stats: stats('failed', { dataRemaining: 5 }), lastError: 'operation failed: migration out job: unexpectedly failed' }), opts);
    expect(step).toMatchObject({ kind: 'settle', outcome: { status: 'failed', reason: 'operation failed: migration out job: unexpectedly failed', stats: { phase: 'failed', dataRemaining: 5 } } });
  });

  test('a cancelled job: aborted', () => {
    const step = recoveryStep(record, seen('running', { stats: stats('aborted') }), opts);
    expect(step).toMatchObject({ kind: 'settle', outcome: { status: 'aborted', reason: expect.stringMatching(/cancelled while no handler was watching/) } });
  });

  test('a "completed" record beside a guest that still runs here is another job\'s: the migration failed, and its stats are not borrowed', () => {
    const step = recoveryStep(record, seen('running', { stats: stats('completed', { iteration: 9, downtimeMs: 30 }) }), opts);
    expect(step.kind).toBe('settle');
    if (step.kind !== 'settle') return;
    expect(step.outcome.status).toBe('failed');
    expect(step.outcome.stats).toMatchObject({ phase: 'failed', iteration: 0 });
    expect(step.outcome.status === 'failed' && step.outcome.reason).toMatch(/still running there/);
  });

  test('a domain that vanished without a recorded outcome is reported unknown, never failed: the guest may be on the target', () => {
    const step = recoveryStep(record, seen('missing'), opts);
    expect(step).toMatchObject({ kind: 'settle', outcome: { status: 'unknown', reason: expect.stringMatching(/cannot tell whether it completed/) } });
  });

  test('paused with no job is looked at again; on the last look it is unknown, or failed when libvirt recorded a failure', () => {
    expect(recoveryStep(record, seen('paused'), opts)).toEqual({ kind: 'look-again' });
    expect(recoveryStep(record, seen('paused'), { ...opts, lastLook: true })).toMatchObject({ kind: 'settle', outcome: { status: 'unknown' } });
    expect(recoveryStep(record, seen('paused', { stats: stats('failed'), lastError: 'boom' }), { ...opts, lastLook: true }))
      .toMatchObject({ kind: 'settle', outcome: { status: 'failed', reason: 'boom' } });
  });
});

describe('JobRecordStore', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ferry-records-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('saves, lists and removes records; a later save replaces the earlier one', async () => {
    const store = await JobRecordStore.open(join(dir, 'node-1'));
    await store.save(record);
    await store.save({ ...record, migrationUid: 'uid-2', domain: 'default_vm-2' });
    expect((await store.list()).records.map((r) => r.migrationUid)).toEqual(['uid-1', 'uid-2']);
    await store.save({ ...record, result: resultOf('completed') });
    expect((await store.list()).records.find((r) => r.migrationUid === 'uid-1')?.result?.outcome).toBe('completed');
    await store.remove(record);
    await store.remove(record); // idempotent
    expect((await store.list()).records.map((r) => r.migrationUid)).toEqual(['uid-2']);
  });

  test('an unreadable file is reported and left alone, not fatal', async () => {
    const store = await JobRecordStore.open(dir);
    await store.save(record);
    writeFileSync(join(dir, 'garbage-1.json'), '{"migrationUid": 7');
    const listing = await store.list();
    expect(listing.records).toHaveLength(1);
    expect(listing.unreadable).toEqual([{ file: 'garbage-1.json', reason: expect.any(String) }]);
  });
});

/** A hypervisor whose answers are scripted per look. */
class FakeDriver {
  readonly kind = 'libvirt' as const;
  looks: Array<MigrationInspection | Error> = [];
  attachable = true;
  attached: string[] = [];
  async inspectMigration(): Promise<MigrationInspection> {
    const next = this.looks.length > 1 ? this.looks.shift()! : this.looks[0]!;
    if (next instanceof Error) throw next;
    return next;
  }
  async attachMigration(name: string): Promise<MigrationJob | null> {
    if (!this.attachable) return null;
    this.attached.push(name);
    return { migrationId: record.migrationUid } as MigrationJob;
  }
}

function recordingSource(): RecoveringSource & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    adopt: (r) => { calls.push(`adopt ${r.domain}`); },
    settleUnwatched: (r, o: MigrationOutcome) => { calls.push(`settle ${r.domain} ${o.status}`); },
    republish: (r) => { calls.push(`republish ${r.domain} ${r.result.outcome}`); },
    restoreTombstone: (r) => { calls.push(`tombstone ${r.domain} ${r.result.outcome}`); },
  };
}

describe('recoverSourceJobs', () => {
  let dir: string;
  let store: JobRecordStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-recovery-'));
    store = await JobRecordStore.open(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const run = (driver: FakeDriver | HypervisorDriver, source: RecoveringSource) =>
    recoverSourceJobs({ records: store, driver: driver as HypervisorDriver, source, node: 'node-1', log: silentLogger, sleep: async () => undefined });

  test('takes over a running job', async () => {
    await store.save(record);
    const driver = new FakeDriver();
    driver.looks = [seen('running', { migrating: true })];
    const source = recordingSource();
    expect(await run(driver, source)).toEqual({ attached: ['default_vm-1'], settled: [], republished: [], tombstones: [], left: [] });
    expect(source.calls).toEqual(['adopt default_vm-1']);
  });

  test('a job that ends between the look and the take-over is looked at again and reported', async () => {
    await store.save(record);
    const driver = new FakeDriver();
    driver.attachable = false;
    driver.looks = [seen('running', { migrating: true }), seen('shutoff', { stats: stats('completed', { downtimeMs: 10 }) })];
    const source = recordingSource();
    expect(await run(driver, source)).toMatchObject({ attached: [], settled: [{ domain: 'default_vm-1', outcome: 'completed' }] });
    expect(source.calls).toEqual(['settle default_vm-1 completed']);
  });

  test('an outcome recorded before the restart is published again, without asking the hypervisor', async () => {
    await store.save({ ...record, result: { ...resultOf('aborted'), reason: 'VMIM was deleted' } });
    const driver = new FakeDriver();
    driver.looks = [new Error('must not be asked')];
    const source = recordingSource();
    expect(await run(driver, source)).toMatchObject({ republished: ['default_vm-1'], left: [] });
    expect(source.calls).toEqual(['republish default_vm-1 aborted']);
  });

  test('an outcome published before the restart becomes a tombstone again, without asking the hypervisor or publishing', async () => {
    await store.save({ ...record, result: resultOf('completed'), published: true });
    const driver = new FakeDriver();
    driver.looks = [new Error('must not be asked')];
    const source = recordingSource();
    expect(await run(driver, source)).toMatchObject({ tombstones: ['default_vm-1'], republished: [], left: [] });
    expect(source.calls).toEqual(['tombstone default_vm-1 completed']);
  });

  test('when the hypervisor cannot be asked, the record stays for the next start', async () => {
    await store.save(record);
    const driver = new FakeDriver();
    driver.looks = [new Error('cannot reach libvirtd of node-1')];
    const source = recordingSource();
    expect(await run(driver, source)).toMatchObject({ left: ['default_vm-1'] });
    expect(source.calls).toEqual([]);
    expect((await store.list()).records).toHaveLength(1);
  });

  test('a driver whose jobs die with the process (sim) recovers nothing and leaves the records', async () => {
    await store.save(record);
    const sim = { kind: 'sim', listDomains: async () => [] } as unknown as HypervisorDriver;
    expect(isRecoverable(sim)).toBe(false);
    const source = recordingSource();
    expect(await run(sim, source)).toMatchObject({ left: ['default_vm-1'] });
    expect(source.calls).toEqual([]);
  });
});
