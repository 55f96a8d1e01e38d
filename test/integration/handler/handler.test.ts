import type { NatsConnection, Subscription } from 'nats';
import { SimDriver, simAddress } from '../../../src/hypervisor/sim.js';
import type { HypervisorDriver } from '../../../src/hypervisor/driver.js';
import { requestCommand, CommandError } from '../../../src/bus/rpc.js';
import { subscribeProgress } from '../../../src/bus/progress.js';
import { watchHeartbeats } from '../../../src/bus/heartbeat.js';
import type { Heartbeat, ProgressMessage } from '../../../src/bus/protocol.js';
import { startHandler } from '../../../src/handler/handler.js';
import { recordingLogger, sleep, unique, waitFor } from '../bus/helpers.js';
import { ScriptedDriver } from './scriptedDriver.js';
import { CRAWL, prepareReq, refFor, resultOf, startReq, useHandlerBus } from './support.js';

const bus = useHandlerBus();
const running = bus.running;
let nc: NatsConnection;
const drivers: HypervisorDriver[] = [];
const subs: Subscription[] = [];

beforeAll(() => {
  nc = bus.nc;
});
// After the bus's own afterEach has stopped the handlers that drive them.
afterEach(async () => {
  for (const d of drivers.splice(0)) await d.close();
  for (const s of subs.splice(0)) s.unsubscribe();
});

function handlerWith<D extends HypervisorDriver>(node: string, driver: D) {
  const log = recordingLogger();
  const h = startHandler({ nc, node, driver, log, progressIntervalMs: 50, heartbeatIntervalMs: 100 });
  running.push(h);
  drivers.push(driver);
  return { node, driver, log, h };
}

/** A handler over the sim hypervisor, running ten times faster than the wall clock. */
function simHandler(node = unique('node')) {
  return handlerWith(node, new SimDriver({ node, tickMs: 20, timeScale: 10 }));
}

/** A handler over a driver whose migrations end when the test says so. */
function scriptedHandler(node = unique('node')) {
  return handlerWith(node, new ScriptedDriver(node));
}

/** A sim source handler with a (slow) migration of a fresh guest under way. */
async function simMigration(bandwidth = CRAWL, postCopy = false) {
  const src = simHandler();
  const uid = unique('uid');
  const vm = unique('vm');
  const req = startReq(uid, vm, 'node-dst', simAddress('node-dst', uid), 1, bandwidth, postCopy);
  expect(await requestCommand(nc, src.node, 'start-source', req)).toEqual({ ok: true, state: 'started' });
  return { ...src, uid, vm, req };
}

/** A scripted source handler with a migration started, and the job to end it with. */
async function scriptedMigration() {
  const src = scriptedHandler();
  const uid = unique('uid');
  const vm = unique('vm');
  expect(await requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152'))).toEqual({ ok: true, state: 'started' });
  const job = src.driver.jobs.at(-1);
  if (!job) throw new Error('no job was started');
  return { ...src, uid, vm, job };
}

describe('a migration between two sim nodes', () => {
  test('the target prepares, the source reports progress and then completion, the guest ends up running on the target only', async () => {
    const src = simHandler();
    const dst = simHandler();
    const uid = unique('uid');
    const vm = unique('vm');
    const progress: ProgressMessage[] = [];
    subs.push(subscribeProgress(nc, (p) => { if (p.migrationUid === uid) progress.push(p); }, recordingLogger()));

    const { address } = await requestCommand(nc, dst.node, 'prepare-target', prepareReq(uid, vm, src.node));
    // 100 MiB/s at ten times speed: about a second of wall time for this 1 GiB guest.
    await requestCommand(nc, src.node, 'start-source', startReq(uid, vm, dst.node, address, 1, 100 * 2 ** 20));

    const result = await resultOf(nc, uid, 15_000);
    expect(result).toMatchObject({ migrationUid: uid, node: src.node, vmi: `default/${vm}`, outcome: 'completed', mode: 'PreCopy', stats: { phase: 'completed', dataRemaining: 0 } });
    expect(result.downtimeMs).toBeGreaterThan(0);
    expect(result.downtimeMs).toBeLessThanOrEqual(300);

    expect(progress.length).toBeGreaterThanOrEqual(3);
    const remaining = progress.map((p) => p.stats.dataProcessed);
    expect(remaining).toEqual([...remaining].sort((a, b) => a - b)); // data only ever goes forward
    expect(progress.every((p) => p.node === src.node && p.stats.phase === 'running')).toBe(true);

    expect(await requestCommand(nc, dst.node, 'finish-target', { ...refFor(uid, vm), domain: `default_${vm}` })).toEqual({ ok: true, domainState: 'running' });
    await waitFor(async () => (await src.driver.listDomains()).length === 0, 'the source to forget the guest');
    expect(await dst.driver.listDomains()).toEqual([{ name: `default_${vm}`, state: 'running', memoryBytes: 2 ** 30 }]);
    expect(src.log.find('migration completed')[0]?.fields).toMatchObject({ node: src.node, migrationUid: uid, vmi: `default/${vm}` });
  });
});

describe('source role', () => {
  test('progress is published while a job runs, without estimates the driver cannot give; it stops when the job ends', async () => {
    const progress: ProgressMessage[] = [];
    const { node, driver, uid, vm, job, log } = await scriptedMigration();
    subs.push(subscribeProgress(nc, (p) => { if (p.migrationUid === uid) progress.push(p); }, recordingLogger()));

    job.advance(2 ** 29);
    await waitFor(() => progress.some((p) => p.stats.dataRemaining === 2 ** 29), 'progress showing the transfer');
    expect(progress[0]).toMatchObject({ node, attempt: 1, vmi: `default/${vm}`, stats: { phase: 'running', dataTotal: 2 ** 30 } });
    // The driver's "don't know yet" estimate (Infinity) is left out rather than breaking the message.
    expect(progress[0]?.stats.expectedDowntimeMs).toBeUndefined();

    job.complete(37);
    expect(await resultOf(nc, uid)).toMatchObject({ outcome: 'completed', downtimeMs: 37, stats: { phase: 'completed', dataRemaining: 0 } });
    await waitFor(() => driver.calls.includes(`forget default_${vm}`), 'the source to forget the guest');
    const seen = progress.length;
    await sleep(200);
    expect(progress.length).toBe(seen);
    expect(log.find('command served: start-source')[0]?.fields).toMatchObject({ node, migrationUid: uid, vmi: `default/${vm}` });
  });

  test('repeating start-source for the same attempt reports the job instead of starting another', async () => {
    // Fast enough to finish within the test; the sim itself refuses a second migration of a domain.
    const { node, uid, req } = await simMigration(0);
    const again = await requestCommand(nc, node, 'start-source', req);
    expect(['running', 'completed']).toContain(again.state);
    await resultOf(nc, uid);
    expect(await requestCommand(nc, node, 'start-source', req)).toEqual({ ok: true, state: 'completed' });
  });

  test('a repeat after a failure reports the failure, and the driver was asked to migrate once', async () => {
    const { node, driver, uid, vm, job } = await scriptedMigration();
    job.fail('target closed the connection');
    expect(await resultOf(nc, uid)).toMatchObject({ outcome: 'failed', reason: 'target closed the connection' });
    expect(await requestCommand(nc, node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152'))).toEqual({ ok: true, state: 'failed' });
    expect(driver.calls.filter((c) => c.startsWith('migrate'))).toHaveLength(1);
  });

  test('concurrent repeats of one start-source start one migration', async () => {
    const src = simHandler();
    const uid = unique('uid');
    const req = startReq(uid, unique('vm'), 'node-dst', simAddress('node-dst', uid), 1, CRAWL);
    const replies = await Promise.all([1, 2, 3].map(() => requestCommand(nc, src.node, 'start-source', req)));
    expect(replies.map((r) => r.state).sort()).toEqual(['running', 'running', 'started']);
    const list = await requestCommand(nc, src.node, 'list-jobs', {});
    expect(list.jobs.filter((j) => j.role === 'source')).toHaveLength(1);
  });

  test('starting a second migration of a guest that is already migrating is refused as a conflict', async () => {
    const { node, vm, uid } = await simMigration();
    const other = unique('uid');
    const err = await requestCommand(nc, node, 'start-source', startReq(other, vm, 'node-other', simAddress('node-other', other))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err).toMatchObject({ code: 'conflict', node, message: expect.stringContaining(uid) });
  });

  test('abort cancels the migration: the guest keeps running on the source, the result says aborted, and a new attempt may start', async () => {
    const { node, driver, uid, vm } = await simMigration();
    const abort = { ...refFor(uid, vm), reason: 'VMIM deleted' };
    expect(await requestCommand(nc, node, 'abort', abort)).toEqual({ ok: true, state: 'aborting' });
    expect(await resultOf(nc, uid)).toMatchObject({ outcome: 'aborted', reason: 'VMIM deleted', node, mode: 'PreCopy' });
    expect(await driver.listDomains()).toEqual([expect.objectContaining({ name: `default_${vm}`, state: 'running' })]);
    // Aborting again, or something this node never ran, is not an error.
    expect(await requestCommand(nc, node, 'abort', abort)).toEqual({ ok: true, state: 'already-finished' });
    expect(await requestCommand(nc, node, 'abort', { ...abort, migrationUid: unique('never') })).toEqual({ ok: true, state: 'not-found' });

    const retry = await requestCommand(nc, node, 'start-source', startReq(uid, vm, 'node-dst', simAddress('node-dst', uid), 2, CRAWL));
    expect(retry.state).toBe('started');
  });

  test('post-copy is refused with the driver reason when the migration was not started with the capability', async () => {
    const { node, uid, vm } = await simMigration();
    await expect(requestCommand(nc, node, 'post-copy', refFor(uid, vm))).rejects.toMatchObject({ code: 'driver-error', message: expect.stringContaining('postCopy capability') });
  });

  test('bandwidth and post-copy changes take effect on the running sim job', async () => {
    const { node, uid, vm } = await simMigration(CRAWL, true);
    const ref = refFor(uid, vm);
    const statsOf = async () => (await requestCommand(nc, node, 'list-jobs', {})).jobs.find((j) => j.migrationUid === uid)?.stats;
    expect((await statsOf())?.bandwidthLimit).toBe(CRAWL);
    await requestCommand(nc, node, 'set-bandwidth', { ...ref, bytesPerSecond: 4 * CRAWL });
    expect((await statsOf())?.bandwidthLimit).toBe(4 * CRAWL);
    await requestCommand(nc, node, 'post-copy', ref);
    expect((await statsOf())?.mode).toBe('PostCopy');
  });

  test('steering commands reach exactly the running job, and are refused once it has ended', async () => {
    const { node, uid, vm, job } = await scriptedMigration();
    const ref = refFor(uid, vm);
    await requestCommand(nc, node, 'set-bandwidth', { ...ref, bytesPerSecond: 100e6 });
    await requestCommand(nc, node, 'set-downtime', { ...ref, maxDowntimeMs: 800 });
    await requestCommand(nc, node, 'post-copy', ref);
    expect(job.applied).toEqual(['bandwidth 100000000', 'downtime 800', 'post-copy']);

    job.complete(5);
    expect(await resultOf(nc, uid)).toMatchObject({ outcome: 'completed', mode: 'PostCopy' });
    await expect(requestCommand(nc, node, 'set-downtime', { ...ref, maxDowntimeMs: 1 })).rejects.toMatchObject({ code: 'not-found', message: expect.stringContaining('completed') });
    await expect(requestCommand(nc, node, 'post-copy', { ...ref, migrationUid: unique('never') })).rejects.toMatchObject({ code: 'not-found' });
  });

  test('a driver failure to start is reported as driver-error, and the same attempt can be retried', async () => {
    const src = scriptedHandler();
    const req = startReq(unique('uid'), unique('vm'), 'node-dst', 'tcp://node-dst:49152');
    src.driver.failNext.add('migrate');
    await expect(requestCommand(nc, src.node, 'start-source', req)).rejects.toMatchObject({ code: 'driver-error', message: expect.stringContaining('migrate failed') });
    expect(await requestCommand(nc, src.node, 'start-source', req)).toEqual({ ok: true, state: 'started' });
    expect(src.driver.jobs).toHaveLength(1);
  });

  test('the sim refusing a bad target address comes back as driver-error with its reason', async () => {
    const src = simHandler();
    const req = startReq(unique('uid'), unique('vm'), 'node-dst', 'tcp://somewhere-else:1');
    await expect(requestCommand(nc, src.node, 'start-source', req)).rejects.toMatchObject({ code: 'driver-error', message: expect.stringContaining('not a sim address') });
  });
});

describe('target role', () => {
  test('prepare-target is idempotent per attempt: the driver prepares once and every repeat gets the same address', async () => {
    const dst = scriptedHandler();
    const uid = unique('uid');
    const vm = unique('vm');
    const first = await requestCommand(nc, dst.node, 'prepare-target', prepareReq(uid, vm, 'node-src'));
    const [again, concurrent] = await Promise.all([
      requestCommand(nc, dst.node, 'prepare-target', prepareReq(uid, vm, 'node-src')),
      requestCommand(nc, dst.node, 'prepare-target', prepareReq(uid, vm, 'node-src')),
    ]);
    expect(again.address).toBe(first.address);
    expect(concurrent.address).toBe(first.address);
    expect(dst.driver.calls.filter((c) => c.startsWith('prepareIncoming'))).toHaveLength(1);

    await requestCommand(nc, dst.node, 'prepare-target', prepareReq(uid, vm, 'node-src', 2));
    expect(dst.driver.calls.filter((c) => c.startsWith('prepareIncoming'))).toHaveLength(2);
  });

  test('finish-target brings the guest up, and the job shows as finished', async () => {
    const dst = simHandler();
    const uid = unique('uid');
    const vm = unique('vm');
    const { address } = await requestCommand(nc, dst.node, 'prepare-target', prepareReq(uid, vm, 'node-src'));
    expect(address).toBe(simAddress(dst.node, uid));
    expect(await requestCommand(nc, dst.node, 'finish-target', { ...refFor(uid, vm), domain: `default_${vm}` })).toEqual({ ok: true, domainState: 'running' });
    const list = await requestCommand(nc, dst.node, 'list-jobs', {});
    expect(list.jobs).toEqual([{ migrationUid: uid, attempt: 1, vmi: `default/${vm}`, role: 'target', domain: `default_${vm}`, state: 'finished', finishedAt: expect.any(String) }]);
    expect(list.domains).toEqual([{ name: `default_${vm}`, state: 'running', memoryBytes: 2 ** 30 }]);
  });

  test('abort of a prepared target drops the incoming guest, idempotently', async () => {
    const dst = simHandler();
    const uid = unique('uid');
    const vm = unique('vm');
    await requestCommand(nc, dst.node, 'prepare-target', prepareReq(uid, vm, 'node-src'));
    expect(await dst.driver.listDomains()).toEqual([expect.objectContaining({ state: 'incoming' })]);
    const abort = { ...refFor(uid, vm), reason: 'source failed' };
    expect(await requestCommand(nc, dst.node, 'abort', abort)).toEqual({ ok: true, state: 'cancelled' });
    expect(await requestCommand(nc, dst.node, 'abort', abort)).toEqual({ ok: true, state: 'cancelled' });
    expect(await dst.driver.listDomains()).toEqual([]);
    expect((await requestCommand(nc, dst.node, 'list-jobs', {})).jobs).toEqual([expect.objectContaining({ migrationUid: uid, state: 'cancelled' })]);
  });

  test('a failed prepare is reported as driver-error and may be retried', async () => {
    const dst = scriptedHandler();
    const req = prepareReq(unique('uid'), unique('vm'), 'node-src');
    dst.driver.failNext.add('prepareIncoming');
    await expect(requestCommand(nc, dst.node, 'prepare-target', req)).rejects.toMatchObject({ code: 'driver-error', node: dst.node });
    expect((await requestCommand(nc, dst.node, 'prepare-target', req)).address).toMatch(/^tcp:\/\//);
  });
});

describe('handler as a whole', () => {
  test('list-jobs shows both roles with their state and latest statistics, and the domains', async () => {
    const { node, uid, vm } = await simMigration();
    const inbound = unique('uid');
    await requestCommand(nc, node, 'prepare-target', prepareReq(inbound, unique('vm'), 'node-x'));
    await sleep(100);
    const list = await requestCommand(nc, node, 'list-jobs', {});
    expect(list.node).toBe(node);
    const out = list.jobs.find((j) => j.migrationUid === uid);
    expect(out).toMatchObject({ role: 'source', state: 'running', domain: `default_${vm}`, stats: { phase: 'running', dataTotal: expect.any(Number) } });
    expect(out?.stats?.dataProcessed).toBeGreaterThan(0);
    expect(list.jobs.find((j) => j.migrationUid === inbound)).toMatchObject({ role: 'target', state: 'prepared' });
    expect(list.domains.map((d) => d.state).sort()).toEqual(['incoming', 'running']);
  });

  test('an invalid command is refused and the driver is never touched', async () => {
    const { node, driver } = simHandler();
    const reply = await nc.request(`ferry.v1.node.${node}.start-source`, new TextEncoder().encode(JSON.stringify({ migrationUid: 'x', attempt: 1 })), { timeout: 2000 });
    expect(reply.json()).toMatchObject({ ok: false, code: 'bad-request', error: expect.stringContaining('vmi') });
    expect(await driver.listDomains()).toEqual([]);
  });

  test('heartbeats name the node and driver and count its active jobs', async () => {
    const { node } = await simMigration();
    const beats: Heartbeat[] = [];
    subs.push(watchHeartbeats(nc, (b) => { if (b.node === node) beats.push(b); }));
    await requestCommand(nc, node, 'prepare-target', prepareReq(unique('uid'), unique('vm'), 'node-x'));
    await waitFor(() => beats.some((b) => b.activeJobs === 2), 'a heartbeat counting both jobs');
    expect(beats.at(-1)).toMatchObject({ node, driver: 'sim' });
  });

  test('after stop the node no longer answers, beats or reports progress, and its running job is left alone', async () => {
    const { node, uid, h, driver } = await simMigration();
    const progress: ProgressMessage[] = [];
    const beats: Heartbeat[] = [];
    subs.push(subscribeProgress(nc, (p) => { if (p.migrationUid === uid) progress.push(p); }, recordingLogger()));
    subs.push(watchHeartbeats(nc, (b) => { if (b.node === node) beats.push(b); }));
    await waitFor(() => progress.length > 0 && beats.length > 0, 'progress and heartbeats');
    await h.stop();
    await sleep(50);
    const [p, b] = [progress.length, beats.length];
    await sleep(300);
    expect([progress.length, beats.length]).toEqual([p, b]);
    await expect(requestCommand(nc, node, 'list-jobs', {})).rejects.toMatchObject({ code: 'unreachable' });
    expect(await driver.listDomains()).toEqual([expect.objectContaining({ state: 'running' })]);
  });
});
