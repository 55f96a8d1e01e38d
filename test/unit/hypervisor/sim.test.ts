import { ManualClock } from '../../../src/util/clock.js';
import type { GuestSpec, MigrationControls, MigrationJob, MigrationOutcome } from '../../../src/hypervisor/driver.js';
import { SimDriver } from '../../../src/hypervisor/sim.js';
import { advance, predictMigration, setBandwidth, startPrecopy, timeToFinishMs } from '../../../src/hypervisor/precopy.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const TICK = 100;

const vm: GuestSpec = { name: 'default_vm1', memoryBytes: GiB, dirtyRate: 5e7, workingSet: 256 * MiB, zeroFraction: 0 };
const model = { memoryBytes: GiB, dirtyRate: 5e7, workingSet: 256 * MiB, zeroFraction: 0 };

function controls(over: Partial<MigrationControls> = {}): MigrationControls {
  return { bandwidth: 1e8, maxDowntimeMs: 300, autoConverge: false, postCopy: false, ...over };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** A source node with the VM running and a target node ready to receive it. */
async function pair(clock: ManualClock, timeScale = 1) {
  const source = new SimDriver({ node: 'node-a', clock, tickMs: TICK, timeScale });
  const target = new SimDriver({ node: 'node-b', clock, tickMs: TICK, timeScale });
  await source.ensureRunning(vm);
  const { address } = await target.prepareIncoming(vm, 'mig-1');
  return { source, target, address };
}

/** Advances the clock tick by tick until the job settles; returns the outcome and when it was seen. */
async function runToEnd(clock: ManualClock, job: MigrationJob, limitMs = 3600_000): Promise<{ outcome: MigrationOutcome; at: number }> {
  let outcome: MigrationOutcome | undefined;
  void job.done.then((o) => { outcome = o; });
  const start = clock.now();
  while (!outcome && clock.now() - start < limitMs) {
    clock.advance(TICK);
    await flush();
  }
  if (!outcome) throw new Error('job did not settle');
  return { outcome, at: clock.now() };
}

async function stateOf(driver: SimDriver, name: string): Promise<string | undefined> {
  return (await driver.listDomains()).find((d) => d.name === name)?.state;
}

describe('sim driver: migrations on the clock', () => {
  test('a migration completes at the time the model predicts, within one tick', async () => {
    const clock = new ManualClock(1_000);
    const { source, target, address } = await pair(clock);
    const predicted = predictMigration(model, { ...controls() });
    expect(predicted.converges).toBe(true);

    const job = await source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-1');
    const { outcome, at } = await runToEnd(clock, job);

    expect(outcome.status).toBe('completed');
    expect(at - 1_000).toBeGreaterThanOrEqual(predicted.durationMs);
    expect(at - 1_000).toBeLessThanOrEqual(predicted.durationMs + TICK);
    if (outcome.status !== 'completed') return;
    expect(outcome.mode).toBe('PreCopy');
    expect(outcome.downtimeMs).toBeCloseTo(predicted.downtimeMs, 6);
    expect(outcome.stats.elapsedMs).toBeCloseTo(predicted.durationMs, 6);
    expect(outcome.stats.iteration).toBe(predicted.rounds);

    expect(await stateOf(source, vm.name)).toBe('shutoff');
    expect(await target.finishIncoming(vm.name, 'mig-1')).toBe('running');
    expect(clock.pendingTimers()).toBe(0);
  });

  test('timeScale runs the model faster than the clock', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock, 10);
    const predicted = predictMigration(model, controls());
    const job = await source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-1');
    const { outcome, at } = await runToEnd(clock, job);
    expect(outcome.status).toBe('completed');
    expect(at).toBeGreaterThanOrEqual(predicted.durationMs / 10);
    expect(at).toBeLessThanOrEqual(predicted.durationMs / 10 + TICK);
  });

  test('statistics mid-flight reflect the model at the current clock time', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock);
    const job = await source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-1');
    clock.advance(2_050);
    const st = await job.stats();
    expect(st).toMatchObject({ phase: 'running', mode: 'PreCopy', iteration: 1, bandwidthLimit: 1e8, memoryBandwidth: 1e8 });
    expect(st.elapsedMs).toBeCloseTo(2_050, 6);
    expect(st.dataProcessed).toBeCloseTo(2.05e8, 0);
    expect(await stateOf(source, vm.name)).toBe('running');
    await source.close();
  });

  test('raising the bandwidth mid-flight speeds the migration up, from that moment', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock);
    const slow = predictMigration(model, controls()).durationMs;
    const job = await source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-1');

    clock.advance(2_050);
    await job.setBandwidth(1e9);
    expect((await job.stats()).bandwidthLimit).toBe(1e9);
    const expected = 2_050 + timeToFinishMs(setBandwidth(advance(startPrecopy(model, controls()), 2_050), 1e9));

    const { outcome, at } = await runToEnd(clock, job);
    expect(outcome.status).toBe('completed');
    expect(expected).toBeLessThan(slow / 2);
    expect(at).toBeGreaterThanOrEqual(expected);
    expect(at).toBeLessThanOrEqual(expected + TICK);
  });

  test('bandwidth 0 means the NIC speed, reported as an unlimited (0) limit', async () => {
    const clock = new ManualClock();
    const source = new SimDriver({ node: 'node-a', clock, tickMs: TICK, nicBandwidth: 5e8 });
    await source.ensureRunning(vm);
    const job = await source.migrate(vm.name, { node: 'node-b', address: 'sim://node-b/mig-1' }, controls({ bandwidth: 0 }), 'mig-1');
    clock.advance(1_000);
    const st = await job.stats();
    expect(st.bandwidthLimit).toBe(0);
    expect(st.memoryBandwidth).toBe(5e8);
    expect(st.dataProcessed).toBeCloseTo(5e8, 0);
    await source.close();
  });

  test('abort keeps the guest running on the source, and it can be migrated again', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock);
    const job = await source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-1');
    clock.advance(500);
    await job.abort('VMIM deleted');
    const outcome = await job.done;
    expect(outcome).toMatchObject({ status: 'aborted', reason: 'VMIM deleted', stats: { phase: 'aborted' } });
    expect(await stateOf(source, vm.name)).toBe('running');
    expect(clock.pendingTimers()).toBe(0);
    await expect(job.abort('again')).resolves.toBeUndefined();

    const retry = await source.migrate(vm.name, { node: 'node-b', address: 'sim://node-b/mig-2' }, controls(), 'mig-2');
    expect((await retry.stats()).phase).toBe('running');
    await source.close();
  });

  test('post-copy: the source is paused while pages are pulled, then shut off', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock);
    const busy: GuestSpec = { ...vm, name: 'default_busy', dirtyRate: 3e8 };
    await source.ensureRunning(busy);
    const job = await source.migrate(busy.name, { node: 'node-b', address }, controls({ postCopy: true }), 'mig-1');
    clock.advance(3_000);
    await job.startPostCopy();
    expect(await stateOf(source, busy.name)).toBe('paused');
    await expect(job.abort('too late')).rejects.toThrow(/mig-1.*post-copy/);

    const { outcome } = await runToEnd(clock, job);
    expect(outcome).toMatchObject({ status: 'completed', mode: 'PostCopy' });
    expect(await stateOf(source, busy.name)).toBe('shutoff');
  });
});

describe('sim driver: domains and errors', () => {
  test('incoming lifecycle: prepare, finish, cancel', async () => {
    const target = new SimDriver({ node: 'node-b', clock: new ManualClock() });
    expect(await target.prepareIncoming(vm, 'mig-1')).toEqual({ address: 'sim://node-b/mig-1' });
    expect(await target.prepareIncoming(vm, 'mig-1')).toEqual({ address: 'sim://node-b/mig-1' });
    expect(await target.listDomains()).toEqual([{ name: vm.name, state: 'incoming', memoryBytes: GiB }]);

    expect(await target.finishIncoming('default_other', 'mig-1')).toBe('missing');
    expect(await target.finishIncoming(vm.name, 'mig-9')).toBe('missing');
    expect(await target.finishIncoming(vm.name, 'mig-1')).toBe('running');
    expect(await target.finishIncoming(vm.name, 'mig-1')).toBe('running');

    // A late cancel never touches the guest that now runs here.
    await target.cancelIncoming(vm.name, 'mig-1');
    expect(await stateOf(target, vm.name)).toBe('running');
    await expect(target.prepareIncoming(vm, 'mig-2')).rejects.toThrow(/already running/);

    const other: GuestSpec = { ...vm, name: 'default_vm2' };
    await target.prepareIncoming(other, 'mig-3');
    await target.cancelIncoming(other.name, 'mig-4');
    expect(await stateOf(target, other.name)).toBe('incoming');
    await target.cancelIncoming(other.name, 'mig-3');
    await target.cancelIncoming(other.name, 'mig-3');
    expect(await stateOf(target, other.name)).toBeUndefined();
    expect(await target.finishIncoming(other.name, 'mig-3')).toBe('missing');
  });

  test('migrating a missing guest, a guest already migrating, or one that left is refused', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock);
    const to = { node: 'node-b', address };
    await expect(source.migrate('default_nope', to, controls(), 'mig-0')).rejects.toThrow(/default_nope.*no such domain/);

    const job = await source.migrate(vm.name, to, controls(), 'mig-1');
    await expect(source.migrate(vm.name, to, controls(), 'mig-2')).rejects.toThrow(/mig-1 of this domain is already in progress/);
    await runToEnd(clock, job);

    await expect(source.migrate(vm.name, to, controls(), 'mig-3')).rejects.toThrow(/shutoff, not running/);
    await expect(job.abort('late')).rejects.toThrow(/already completed/);
  });

  test('bad targets and switching to post-copy without the capability are refused', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock);
    await expect(source.migrate(vm.name, { node: 'node-a', address: 'sim://node-a/mig-1' }, controls(), 'mig-1')).rejects.toThrow(/target is this node/);
    await expect(source.migrate(vm.name, { node: 'node-c', address }, controls(), 'mig-1')).rejects.toThrow(/not a sim address on node node-c/);
    await expect(source.migrate(vm.name, { node: 'node-b', address }, controls({ maxDowntimeMs: 0 }), 'mig-1')).rejects.toThrow(/maxDowntimeMs/);

    const job = await source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-1');
    await expect(job.startPostCopy()).rejects.toThrow(/mig-1.*postCopy capability/);
    expect((await job.stats()).mode).toBe('PreCopy');
    await source.close();
  });

  test('ensureRunning boots once; forget drops only a guest that migrated away', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock);
    await source.ensureRunning({ ...vm, memoryBytes: 2 * GiB });
    expect(await source.listDomains()).toEqual([{ name: vm.name, state: 'running', memoryBytes: GiB }]);
    await expect(source.forget(vm.name)).rejects.toThrow(/refusing to forget default_vm1: it is running/);

    const { outcome } = await runToEnd(clock, await source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-1'));
    expect(outcome.status).toBe('completed');
    // Still shut off after a repeated ensureRunning: the guest now runs on node-b.
    await source.ensureRunning(vm);
    expect(await stateOf(source, vm.name)).toBe('shutoff');
    await source.forget(vm.name);
    await source.forget(vm.name);
    expect(await source.listDomains()).toEqual([]);
  });

  test('close aborts running jobs with "driver closed" and leaves no timer behind', async () => {
    const clock = new ManualClock();
    const { source, address } = await pair(clock);
    const second: GuestSpec = { ...vm, name: 'default_vm2' };
    await source.ensureRunning(second);
    const jobs = [
      await source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-1'),
      await source.migrate(second.name, { node: 'node-b', address: 'sim://node-b/mig-2' }, controls(), 'mig-2'),
    ];
    clock.advance(250);
    expect(clock.pendingTimers()).toBe(2);

    await source.close();
    expect(clock.pendingTimers()).toBe(0);
    for (const job of jobs) expect(await job.done).toMatchObject({ status: 'aborted', reason: 'driver closed' });
    expect(await stateOf(source, vm.name)).toBe('running');
    await expect(source.migrate(vm.name, { node: 'node-b', address }, controls(), 'mig-3')).rejects.toThrow(/closed/);
  });
});
