import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from 'nats';
import { CommandError, isDefinite, requestCommand } from '../../../src/bus/rpc.js';
import { startHandler, EPOCH_FILE } from '../../../src/handler/handler.js';
import { JobRecordStore } from '../../../src/handler/jobRecords.js';
import type { TombstoneLimits } from '../../../src/handler/tombstones.js';
import { ManualClock } from '../../../src/util/clock.js';
import { recordingLogger, unique, waitFor } from '../bus/helpers.js';
import { ScriptedDriver } from './scriptedDriver.js';
import { prepareReq, refFor, resultOf, startReq, useHandlerBus } from './support.js';

const bus = useHandlerBus();
const running = bus.running;
let nc: NatsConnection;
const dirs: string[] = [];

beforeAll(() => {
  nc = bus.nc;
});
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'ferry-handler-state-'));
  dirs.push(d);
  return d;
}

async function handlerOn(node: string, opts: { dir?: string; driver?: ScriptedDriver; clock?: ManualClock; limits?: TombstoneLimits } = {}) {
  const driver = opts.driver ?? new ScriptedDriver(node);
  const log = recordingLogger();
  const records = opts.dir ? await JobRecordStore.open(opts.dir) : undefined;
  const h = startHandler({
    nc, node, driver, log, progressIntervalMs: 50,
    ...(records ? { records } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.limits ? { tombstoneLimits: opts.limits } : {}),
  });
  running.push(h);
  await h.recovered;
  return { node, driver, log, h };
}

async function refusal(p: Promise<unknown>): Promise<CommandError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof CommandError)) throw new Error(`expected a CommandError, got ${String(err)}`);
  return err;
}

/** Starts a migration on `node`'s scripted driver and completes it; returns its uid once the result is stored. */
async function completedMigration(src: { node: string; driver: ScriptedDriver }, vm = unique('vm'), epoch?: number) {
  const uid = unique('uid');
  await requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152'), epoch === undefined ? {} : { epoch });
  src.driver.jobs.at(-1)!.complete(20);
  await resultOf(nc, uid);
  return { uid, vm };
}

describe('fencing by leader epoch', () => {
  test('after obeying a newer leader, a handler refuses the old one with stale-epoch and does nothing', async () => {
    const src = await handlerOn(unique('node'));
    const uid = unique('uid');
    const vm = unique('vm');
    await requestCommand(nc, src.node, 'prepare-target', prepareReq(unique('uid'), unique('vm'), 'node-x'), { epoch: 3 });

    const stale = await refusal(requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:1'), { epoch: 2 }));
    expect(stale.code).toBe('stale-epoch');
    expect(stale.message).toMatch(/epoch 2.*already obeys epoch 3/);
    expect(isDefinite(stale)).toBe(true);
    // No header at all is epoch 0: refused as well.
    expect((await refusal(requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:1')))).code).toBe('stale-epoch');
    expect(src.driver.calls.filter((c) => c.includes(vm))).toEqual([]);

    // Reading is not fenced: a stale replica may still look.
    expect((await requestCommand(nc, src.node, 'list-jobs', {}, { epoch: 1 })).node).toBe(src.node);
    // The current leader and any newer one are obeyed.
    expect(await requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:1'), { epoch: 3 })).toEqual({ ok: true, state: 'started' });
    expect(await requestCommand(nc, src.node, 'set-bandwidth', { ...refFor(uid, vm), bytesPerSecond: 1000 }, { epoch: 4 })).toEqual({ ok: true });
    expect((await refusal(requestCommand(nc, src.node, 'abort', { ...refFor(uid, vm), reason: 'stale' }, { epoch: 3 }))).code).toBe('stale-epoch');
    expect(src.driver.jobs.at(-1)!.applied).toEqual(['bandwidth 1000']);
  });

  test('a restarted handler remembers the highest epoch it obeyed', async () => {
    const dir = stateDir();
    const node = unique('node');
    const first = await handlerOn(node, { dir });
    await requestCommand(nc, node, 'prepare-target', prepareReq(unique('uid'), unique('vm'), 'node-x'), { epoch: 7 });
    await first.h.stop();
    expect(readFileSync(path.join(dir, EPOCH_FILE), 'utf8').trim()).toBe('7');

    const again = await handlerOn(node, { dir });
    const err = await refusal(requestCommand(nc, node, 'prepare-target', prepareReq(unique('uid'), unique('vm'), 'node-x'), { epoch: 6 }));
    expect(err.code).toBe('stale-epoch');
    expect(again.driver.calls).toEqual([]);
  });

  test('an epoch header that is not a number is refused as a bad request', async () => {
    const node = unique('node');
    await handlerOn(node);
    const { headers, JSONCodec } = await import('nats');
    const h = headers();
    h.set('Ferry-Epoch', 'seven');
    const reply = await nc.request(`ferry.v1.node.${node}.forget-job`, JSONCodec().encode(refFor('u', 'vm')), { timeout: 2000, headers: h });
    expect(JSONCodec().decode(reply.data)).toMatchObject({ ok: false, code: 'bad-request', error: expect.stringMatching(/Ferry-Epoch/) });
  });
});

describe('isDefinite', () => {
  test('only refusals after which nothing was done are definite', () => {
    const e = (code: ConstructorParameters<typeof CommandError>[0]) => new CommandError(code, 'n', 'abort', 'x');
    expect(['bad-request', 'conflict', 'stale-epoch', 'driver-error'].map((c) => isDefinite(e(c as never)))).toEqual([true, true, true, true]);
    expect(['timeout', 'unreachable', 'malformed-reply', 'internal', 'not-found'].map((c) => isDefinite(e(c as never)))).toEqual([false, false, false, false, false]);
    expect(isDefinite(new Error('timeout'))).toBe(false);
  });
});

describe('tombstones of finished migrations', () => {
  test('a finished migration answers abort and start-source with its outcome until the controller forgets it', async () => {
    const src = await handlerOn(unique('node'));
    const { uid, vm } = await completedMigration(src);

    expect(await requestCommand(nc, src.node, 'abort', { ...refFor(uid, vm), reason: 'late' })).toEqual({ ok: true, state: 'already-finished' });
    expect(await requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152'))).toEqual({ ok: true, state: 'completed' });
    expect((await requestCommand(nc, src.node, 'list-jobs', {})).jobs).toEqual([expect.objectContaining({ migrationUid: uid, role: 'source', state: 'completed', finishedAt: expect.any(String) })]);
    // Asking about other migrations only leaves it out; the domains are listed either way.
    const other = await requestCommand(nc, src.node, 'list-jobs', { migrationUids: ['someone-else'] });
    expect(other.jobs).toEqual([]);
    expect((await requestCommand(nc, src.node, 'list-jobs', { migrationUids: [uid] })).jobs).toHaveLength(1);

    expect(await requestCommand(nc, src.node, 'forget-job', refFor(uid, vm))).toEqual({ ok: true, forgotten: true });
    expect((await requestCommand(nc, src.node, 'list-jobs', {})).jobs).toEqual([]);
    expect(await requestCommand(nc, src.node, 'abort', { ...refFor(uid, vm), reason: 'late' })).toEqual({ ok: true, state: 'not-found' });
    expect(await requestCommand(nc, src.node, 'forget-job', refFor(uid, vm))).toEqual({ ok: true, forgotten: false });
  });

  test('a running migration is not forgotten', async () => {
    const src = await handlerOn(unique('node'));
    const uid = unique('uid');
    const vm = unique('vm');
    await requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152'));
    expect(await requestCommand(nc, src.node, 'forget-job', refFor(uid, vm))).toEqual({ ok: true, forgotten: false });
    expect((await requestCommand(nc, src.node, 'list-jobs', {})).jobs).toEqual([expect.objectContaining({ migrationUid: uid, state: 'running' })]);
  });

  test('the target keeps a finished arrival until forgotten', async () => {
    const dst = await handlerOn(unique('node'));
    const uid = unique('uid');
    const vm = unique('vm');
    await requestCommand(nc, dst.node, 'prepare-target', prepareReq(uid, vm, 'node-src'));
    await requestCommand(nc, dst.node, 'finish-target', { ...refFor(uid, vm), domain: `default_${vm}` });
    expect(await requestCommand(nc, dst.node, 'abort', { ...refFor(uid, vm), reason: 'late' })).toEqual({ ok: true, state: 'already-finished' });
    expect(await requestCommand(nc, dst.node, 'forget-job', refFor(uid, vm))).toEqual({ ok: true, forgotten: true });
    expect((await requestCommand(nc, dst.node, 'list-jobs', {})).jobs).toEqual([]);
  });

  test('after a restart the source still knows the migration finished: no second copy is booted, and forget removes the record', async () => {
    const dir = stateDir();
    const node = unique('node');
    const first = await handlerOn(node, { dir });
    const { uid, vm } = await completedMigration(first);
    await waitFor(() => readdirSync(dir).some((f) => f.endsWith('.json') && JSON.parse(readFileSync(path.join(dir, f), 'utf8')).published === true), 'the record marked published');
    await first.h.stop();

    // A new process: the guest is gone from this node.
    const again = await handlerOn(node, { dir });
    expect(await again.h.recovered).toMatchObject({ tombstones: [`default_${vm}`], republished: [] });
    expect(await requestCommand(nc, node, 'abort', { ...refFor(uid, vm), reason: 'after restart' })).toEqual({ ok: true, state: 'already-finished' });
    // A replayed start-source answers the outcome; another attempt of the same migration is refused.
    expect(await requestCommand(nc, node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152'))).toEqual({ ok: true, state: 'completed' });
    const second = await refusal(requestCommand(nc, node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152', 2)));
    expect(second.code).toBe('conflict');
    expect(second.message).toMatch(/already migrated/);
    expect(again.driver.calls).toEqual([]);
    expect(again.driver.domains.size).toBe(0);
    expect((await requestCommand(nc, node, 'list-jobs', {})).jobs).toEqual([expect.objectContaining({ migrationUid: uid, state: 'completed' })]);

    expect(await requestCommand(nc, node, 'forget-job', refFor(uid, vm))).toEqual({ ok: true, forgotten: true });
    expect(readdirSync(dir).filter((f) => f.endsWith('.json'))).toEqual([]);
  });

  test('tombstones the controller never acknowledges are dropped after a day or beyond the count, oldest first', async () => {
    const clock = new ManualClock(Date.parse('2026-12-03T00:00:00Z'));
    const dir = stateDir();
    const src = await handlerOn(unique('node'), { dir, clock, limits: { maxAgeMs: 24 * 3600_000, maxCount: 2 } });
    const a = await completedMigration(src);
    clock.advance(1000);
    const b = await completedMigration(src);
    clock.advance(1000);
    const c = await completedMigration(src);
    const uids = async () => (await requestCommand(nc, src.node, 'list-jobs', {})).jobs.map((j) => j.migrationUid).sort();
    await waitFor(async () => (await uids()).length === 2, 'the oldest tombstone to go');
    expect(await uids()).toEqual([b.uid, c.uid].sort());
    expect(await requestCommand(nc, src.node, 'abort', { ...refFor(a.uid, a.vm), reason: 'x' })).toEqual({ ok: true, state: 'not-found' });

    clock.advance(24 * 3600_000 + 1);
    const d = await completedMigration(src);
    await waitFor(async () => (await uids()).length === 1, 'day-old tombstones to go');
    expect(await uids()).toEqual([d.uid]);
    await waitFor(() => readdirSync(dir).filter((f) => f.endsWith('.json')).length === 1, 'their records to go');

    // A node that finishes nothing more still lets go of a day-old tombstone when asked.
    clock.advance(24 * 3600_000 + 1);
    expect(await uids()).toEqual([]);
  });

  test('a job whose end the driver could not see is published as unknown, the guest is not forgotten, and abort says it is over', async () => {
    const src = await handlerOn(unique('node'));
    const uid = unique('uid');
    const vm = unique('vm');
    await requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152'));
    src.driver.jobs.at(-1)!.lose('lost libvirtd and could not find the domain again');
    expect(await resultOf(nc, uid)).toMatchObject({ outcome: 'unknown', reason: 'lost libvirtd and could not find the domain again', node: src.node });
    expect(src.driver.calls).not.toContain(`forget default_${vm}`);
    expect(await requestCommand(nc, src.node, 'abort', { ...refFor(uid, vm), reason: 'x' })).toEqual({ ok: true, state: 'already-finished' });
    expect(await requestCommand(nc, src.node, 'start-source', startReq(uid, vm, 'node-dst', 'tcp://node-dst:49152'))).toEqual({ ok: true, state: 'unknown' });
  });

  test('another migration of a guest that left is refused while it does not run here, and allowed once it is back', async () => {
    const src = await handlerOn(unique('node'));
    const { vm } = await completedMigration(src);
    const next = unique('uid');
    const err = await refusal(requestCommand(nc, src.node, 'start-source', startReq(next, vm, 'node-dst', 'tcp://node-dst:49152')));
    expect(err.code).toBe('conflict');
    expect(err.message).toMatch(/does not run here now; not booting a second copy/);
    expect(src.driver.calls.filter((c) => c.startsWith('ensureRunning'))).toHaveLength(1);

    // The guest came back (a later migration to this node).
    src.driver.domains.set(`default_${vm}`, { name: `default_${vm}`, state: 'running', memoryBytes: 2 ** 30 });
    expect(await requestCommand(nc, src.node, 'start-source', startReq(next, vm, 'node-dst', 'tcp://node-dst:49152'))).toEqual({ ok: true, state: 'started' });
  });
});
