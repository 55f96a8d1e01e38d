/**
 * The libvirt lane: LibvirtDriver against two real libvirtd + QEMU (TCG)
 * launchers on this machine. Needs root and Debian packages (setup.sh installs
 * them); when the machine cannot run it, every test here FAILS saying why.
 * To leave the lane out on purpose, the test script ignores this file when
 * FERRY_LIBVIRT=0 (jest --testPathIgnorePatterns test/libvirt/libvirtd.test.ts).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/util/log.js';
import type { GuestSpec, JobStats, MigrationControls, MigrationJob } from '../../src/hypervisor/driver.js';
import { LibvirtDriver } from '../../src/hypervisor/libvirt/driver.js';
import { formatAddress } from '../../src/hypervisor/libvirt/address.js';
import { guestXml } from '../../src/devcluster/libvirtNodes.js';
import {
  guestTemplate, launcherProcesses, MiB, prepareMachine, removeDomain, sleep, startLauncher, stillRunning, stopLauncher,
  type Launcher,
} from './lab.js';

const root = mkdtempSync(join(tmpdir(), 'ferry-libvirt-'));
const launchers: Launcher[] = [];
const drivers: LibvirtDriver[] = [];
let A: LibvirtDriver;
let B: LibvirtDriver;
let a: Launcher;
let b: Launcher;
let template: (g: GuestSpec) => string;
let dirtyImage: string;

/** Every "migration ended" line the drivers log, to count settlements. */
const endings: Array<{ migrationId: string; status: string; node: string }> = [];
const log = createLogger({
  name: 'libvirt-lane',
  level: 'info',
  destination: new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        const rec = JSON.parse(line) as { msg?: string; migrationId: string; status: string; node: string };
        if (rec.msg === 'migration ended') endings.push({ migrationId: rec.migrationId, status: rec.status, node: rec.node });
      }
      cb();
    },
  }),
});

function driver(l: Launcher): LibvirtDriver {
  const d = new LibvirtDriver({ socketPath: l.socketPath, node: l.name, domainTemplate: template, log, pollIntervalMs: 200 });
  drivers.push(d);
  return d;
}

const controls = (over: Partial<MigrationControls> = {}): MigrationControls =>
  ({ bandwidth: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false, ...over });

const idleGuest = (n: string): GuestSpec => ({ name: `lane_idle-${n}`, memoryBytes: 64 * MiB });
const dirtyGuest = (n: string): GuestSpec => ({ name: `lane_dirty-${n}`, memoryBytes: 64 * MiB });

/** Samples job.stats() until `until` holds for a sample or the job ends. */
async function sampleUntil(job: MigrationJob, until: (s: JobStats) => boolean, timeoutMs: number): Promise<JobStats[]> {
  const seen: JobStats[] = [];
  const deadline = Date.now() + timeoutMs;
  let ended = false;
  void job.done.then(() => { ended = true; });
  while (Date.now() < deadline && !ended) {
    const s = await job.stats();
    seen.push(s);
    if (until(s)) return seen;
    await sleep(150);
  }
  throw new Error(`condition not reached within ${timeoutMs} ms (job ended: ${ended}); last stats ${JSON.stringify(seen.at(-1))}`);
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms); });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function stateOn(d: LibvirtDriver, name: string): Promise<string> {
  return (await d.listDomains()).find((x) => x.name === name)?.state ?? 'missing';
}

beforeAll(async () => {
  const image = await prepareMachine(join(root, 'build'));
  dirtyImage = image;
  template = guestTemplate(image);
  a = await startLauncher('A', join(root, 'A'));
  launchers.push(a);
  b = await startLauncher('B', join(root, 'B'));
  launchers.push(b);
  A = driver(a);
  B = driver(b);
}, 300_000);

afterAll(async () => {
  for (const d of drivers) await d.close().catch(() => undefined);
  const pids: number[] = [];
  for (const l of launchers) pids.push(...(await launcherProcesses(l)));
  for (const l of launchers) await stopLauncher(l);
  rmSync(root, { recursive: true, force: true });
  // Nothing the lane started may outlive it.
  expect(await stillRunning(pids)).toEqual([]);
}, 120_000);

test('an idle guest migrates from A to B: it runs on B, A only keeps a shut-off definition until forgotten', async () => {
  const g = idleGuest('1');
  await A.ensureRunning(g);
  expect(await stateOn(A, g.name)).toBe('running');

  const { address } = await B.prepareIncoming(g, 'mig-idle');
  const started = Date.now();
  const job = await A.migrate(g.name, { node: 'B', address }, controls(), 'mig-idle');
  const seen: JobStats[] = [];
  while (!(await Promise.race([job.done.then(() => true), sleep(100).then(() => false)]))) seen.push(await job.stats());
  const outcome = await job.done;
  const tookMs = Date.now() - started;
  console.info(`[libvirt-lane] idle 64 MiB guest A->B via LibvirtDriver: ${tookMs} ms wall, libvirt elapsed ${outcome.stats.elapsedMs} ms, downtime ${outcome.status === 'completed' ? outcome.downtimeMs : '-'} ms`);

  expect(outcome.status).toBe('completed');
  if (outcome.status !== 'completed') return;
  expect(outcome.mode).toBe('PreCopy');
  expect(outcome.downtimeMs).toBeGreaterThan(0);
  expect(outcome.downtimeMs).toBeLessThan(2000);
  expect(outcome.stats.phase).toBe('completed');
  expect(outcome.stats.dataTotal).toBeGreaterThanOrEqual(64 * MiB);
  expect(outcome.stats.dataTotal).toBeLessThan(80 * MiB);
  expect(outcome.stats.dataRemaining).toBe(0);
  // Mostly zero pages: far less than the guest's memory goes over the wire.
  expect(outcome.stats.dataProcessed).toBeLessThan(16 * MiB);
  expect(seen.length).toBeGreaterThan(0);
  for (const s of seen) {
    expect(s.phase).toBe('running');
    expect(s.dataProcessed).toBeLessThanOrEqual(Math.max(s.dataTotal, 80 * MiB));
    expect(s.bandwidthLimit).toBe(0);
  }

  expect(await B.finishIncoming(g.name, 'mig-idle')).toBe('running');
  expect(await stateOn(A, g.name)).toBe('shutoff');
  // Cleanup after a *successful* migration must never kill the only copy.
  await B.cancelIncoming(g.name, 'mig-idle');
  expect(await stateOn(B, g.name)).toBe('running');
  // The definition left on A must not be booted again: the guest lives on B.
  await expect(A.ensureRunning(g)).rejects.toThrow(/migrated away/);
  await A.forget(g.name);
  expect(await stateOn(A, g.name)).toBe('missing');
  await A.forget(g.name); // idempotent
  await expect(B.forget(g.name)).rejects.toThrow(/not shut off/);
  await removeDomain(b.socketPath, g.name);
}, 60_000);

test('a dirtying guest does not converge at a bandwidth below its dirty rate, and completes once the bandwidth is raised live', async () => {
  const g = dirtyGuest('2');
  await A.ensureRunning(g);
  await sleep(500);
  const { address } = await B.prepareIncoming(g, 'mig-raise');
  const job = await A.migrate(g.name, { node: 'B', address }, controls({ bandwidth: 1 * MiB }), 'mig-raise');
  try {
    const seen = await sampleUntil(job, (s) => s.iteration >= 3, 30_000);
    const last = seen.at(-1)!;
    // Round after round the guest re-dirties more than 300 ms at 1 MiB/s can carry.
    expect(last.phase).toBe('running');
    expect(last.dataRemaining).toBeGreaterThan(0.3 * MiB);
    expect(last.dirtyRate).toBeGreaterThan(0);
    expect(last.bandwidthLimit).toBe(1 * MiB);
    expect(last.memoryBandwidth).toBeGreaterThan(0);
    expect(last.memoryBandwidth).toBeLessThan(2 * MiB);
    expect(last.expectedDowntimeMs).toBeGreaterThan(300);
    expect(await stateOn(B, g.name)).toBe('incoming');

    const raisedAt = Date.now();
    await job.setBandwidth(0);
    const outcome = await within(job.done, 20_000, 'completion after the bandwidth raise');
    console.info(`[libvirt-lane] dirtying guest: ${last.iteration} rounds at 1 MiB/s (dirty rate ${(last.dirtyRate / MiB).toFixed(2)} MiB/s), completed ${Date.now() - raisedAt} ms after the raise, downtime ${outcome.status === 'completed' ? outcome.downtimeMs : '-'} ms`);
    expect(outcome.status).toBe('completed');
    if (outcome.status !== 'completed') return;
    expect(outcome.stats.iteration).toBeGreaterThanOrEqual(3);
    expect(outcome.stats.bandwidthLimit).toBe(0);
    expect(await B.finishIncoming(g.name, 'mig-raise')).toBe('running');
    await A.forget(g.name);
  } finally {
    await job.abort('test cleanup').catch(() => undefined);
    await removeDomain(a.socketPath, g.name);
    await removeDomain(b.socketPath, g.name);
  }
}, 90_000);

test('a non-converging migration with post-copy enabled completes after the switch to post-copy', async () => {
  const g = dirtyGuest('2pc');
  await A.ensureRunning(g);
  await sleep(500);
  const { address } = await B.prepareIncoming(g, 'mig-postcopy');
  const job = await A.migrate(g.name, { node: 'B', address }, controls({ bandwidth: 1 * MiB, postCopy: true }), 'mig-postcopy');
  try {
    await sampleUntil(job, (s) => s.iteration >= 2, 30_000);
    const switchedAt = Date.now();
    await job.startPostCopy();
    expect((await job.stats()).mode).toBe('PostCopy');
    expect(['paused', 'shutoff']).toContain(await stateOn(A, g.name));
    // Once post-copy has begun the guest cannot go back: libvirt refuses the
    // abort (or the migration has already completed), and it completes anyway.
    await job.abort('too late').catch(() => undefined);
    const outcome = await within(job.done, 30_000, 'post-copy completion');
    console.info(`[libvirt-lane] post-copy: completed ${Date.now() - switchedAt} ms after the switch`);
    expect(outcome).toMatchObject({ status: 'completed', mode: 'PostCopy' });
    expect(await B.finishIncoming(g.name, 'mig-postcopy')).toBe('running');
    expect(await stateOn(A, g.name)).toBe('shutoff');
  } finally {
    await removeDomain(a.socketPath, g.name);
    await removeDomain(b.socketPath, g.name);
  }
}, 90_000);

test('aborting mid-migration leaves the guest running on A and nothing on B', async () => {
  const g = dirtyGuest('3');
  await A.ensureRunning(g);
  const { address } = await B.prepareIncoming(g, 'mig-abort');
  const job = await A.migrate(g.name, { node: 'B', address }, controls({ bandwidth: 1 * MiB }), 'mig-abort');
  try {
    await sampleUntil(job, (s) => s.iteration >= 2, 30_000);
    expect(await stateOn(B, g.name)).toBe('incoming');
    await job.abort('operator deleted the VMIM');
    const outcome = await within(job.done, 15_000, 'the aborted outcome');
    expect(outcome.status).toBe('aborted');
    if (outcome.status !== 'aborted') return;
    expect(outcome.reason).toBe('operator deleted the VMIM');
    expect(outcome.stats.phase).toBe('aborted');
    expect(await stateOn(A, g.name)).toBe('running');
    // libvirt tears the half-arrived domain down itself; cancelIncoming is then a no-op.
    await B.cancelIncoming(g.name, 'mig-abort');
    expect(await B.finishIncoming(g.name, 'mig-abort')).toBe('missing');
    await job.abort('again'); // after the end: nothing to do, no error
    await expect(job.setBandwidth(10 * MiB)).rejects.toThrow(/already ended/);
  } finally {
    await removeDomain(a.socketPath, g.name);
    await removeDomain(b.socketPath, g.name);
  }
}, 60_000);

test('a restarted handler finds the running migration through a new driver, takes it over, and each job settles exactly once', async () => {
  const g = dirtyGuest('4');
  await A.ensureRunning(g);
  const id = 'mig-restart';
  const { address } = await B.prepareIncoming(g, id);
  const first = driver(a);
  const job1 = await first.migrate(g.name, { node: 'B', address }, controls({ bandwidth: 1 * MiB }), id);
  try {
    await sampleUntil(job1, (s) => s.iteration >= 2, 30_000);

    // The handler process dies: its connection goes, the migration does not.
    await first.close();
    const gone = await within(job1.done, 5_000, 'the first job settling on close');
    // Not 'failed': this driver no longer sees how it ends, and the guest may well arrive.
    expect(gone.status).toBe('unknown');
    if (gone.status === 'unknown') expect(gone.reason).toMatch(/continues in libvirtd/);

    const restarted = driver(a);
    expect((await restarted.listDomains()).find((d) => d.name === g.name)?.state).toBe('running');
    expect(await stateOn(B, g.name)).toBe('incoming');
    const seen = await restarted.inspectMigration(g.name);
    expect(seen.migrating).toBe(true);
    expect(seen.mode).toBe('PreCopy');
    expect(seen.stats?.phase).toBe('running');
    expect(seen.stats?.dataTotal).toBeGreaterThanOrEqual(64 * MiB);
    expect(seen.stats?.bandwidthLimit).toBe(1 * MiB);

    const job2 = await restarted.attachMigration(g.name, id);
    expect(job2).not.toBeNull();
    expect(await restarted.attachMigration(g.name, id)).toBe(job2);
    await job2!.setBandwidth(0);
    const outcome = await within(job2!.done, 20_000, 'completion of the taken-over migration');
    if (outcome.status !== 'completed') throw new Error('taken-over migration did not complete: ' + JSON.stringify(outcome));
    if (outcome.status === 'completed') expect(outcome.downtimeMs).toBeGreaterThan(0);
    expect(await job2!.done).toBe(outcome);
    await sleep(1000); // a poll racing the end must not settle it again

    expect(endings.filter((e) => e.migrationId === id)).toEqual([
      { migrationId: id, status: 'unknown', node: 'A' },
      { migrationId: id, status: 'completed', node: 'A' },
    ]);
    expect(await restarted.attachMigration(g.name, id)).toBeNull();
    const after = await restarted.inspectMigration(g.name);
    expect(after).toMatchObject({ migrating: false, state: 'shutoff', stats: { phase: 'completed' } });
    expect(await B.finishIncoming(g.name, id)).toBe('running');
  } finally {
    await removeDomain(a.socketPath, g.name);
    await removeDomain(b.socketPath, g.name);
  }
}, 90_000);

test('six outbound migrations at once on one node: each runs on its own connection, and statistics and aborts still answer', async () => {
  const guests = Array.from({ length: 6 }, (_, i) => dirtyGuest(`six-${i}`));
  // QEMU locks a guest's disk for writing: each dirtying guest boots from a copy of its own.
  const images = new Map(guests.map((g) => {
    const copy = join(root, 'build', `${g.name}.img`);
    copyFileSync(dirtyImage, copy);
    return [g.name, copy];
  }));
  const ownDisk = (g: GuestSpec) => guestXml(g, images.get(g.name));
  const busy = new LibvirtDriver({ socketPath: a.socketPath, node: 'A', domainTemplate: ownDisk, log, pollIntervalMs: 200, maxOutboundMigrations: 6 });
  drivers.push(busy);
  const jobs: MigrationJob[] = [];
  try {
    for (const g of guests) await busy.ensureRunning(g);
    // As in the tests above, a guest must be in its dirtying loop before it migrates, or at 1 MiB/s its few
    // MiB of boot-time memory can finish before the abort (seen once in CI). Six guests boot on two cores.
    await sleep(1500);
    for (const [i, g] of guests.entries()) {
      const { address } = await B.prepareIncoming(g, `mig-six-${i}`);
      jobs.push(await busy.migrate(g.name, { node: 'B', address }, controls({ bandwidth: 1 * MiB }), `mig-six-${i}`));
    }
    expect(busy.outboundMigrations).toBe(6);
    // A seventh is refused before anything starts.
    await expect(busy.migrate('lane_dirty-seventh', { node: 'B', address: formatAddress({ destUri: B.uri, migrateUri: 'tcp://127.0.0.1:1' }) }, controls(), 'mig-seven'))
      .rejects.toThrow(/6 outgoing migrations already run on A.*maxOutboundMigrations 6/);

    // With every perform call blocked in the daemon, the shared connection still answers at once.
    const statsMs: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (const job of jobs) {
        const t = Date.now();
        const s = await within(job.stats(), 5_000, 'job statistics while six migrations run');
        statsMs.push(Date.now() - t);
        expect(s.phase).toBe('running');
      }
      await sleep(300);
    }
    const abortMs: number[] = [];
    for (const job of jobs) {
      const t = Date.now();
      await within(job.abort('six at once: test over'), 5_000, 'an abort request while six migrations run');
      abortMs.push(Date.now() - t);
    }
    const outcomes = await within(Promise.all(jobs.map((j) => j.done)), 30_000, 'all six aborted');
    expect(outcomes.map((o) => o.status)).toEqual(Array(6).fill('aborted'));
    console.info(`[libvirt-lane] six concurrent outbound migrations: stats max ${Math.max(...statsMs)} ms (median ${statsMs.sort((x, y) => x - y)[Math.floor(statsMs.length / 2)]} ms), abort request max ${Math.max(...abortMs)} ms`);
    for (const g of guests) expect(await stateOn(busy, g.name)).toBe('running');
    expect(busy.outboundMigrations).toBe(0);
    for (const [i, g] of guests.entries()) await B.cancelIncoming(g.name, `mig-six-${i}`);
  } finally {
    for (const job of jobs) await job.abort('cleanup').catch(() => undefined);
    for (const g of guests) {
      await removeDomain(a.socketPath, g.name);
      await removeDomain(b.socketPath, g.name);
    }
  }
}, 180_000);
