import { describe, expect, it } from '@jest/globals';
import { createActor } from 'xstate';
import { MAX_TIMER_MS, migrationMachine } from '../../../statecharts/migration.js';
import { GiB, migrationInput, never, settle, startMigration, stats } from './migrationHarness.js';

const POD = { node: 'node-b', pod: 'virt-launcher-vm-a-target' };

describe('target pod unschedulable', () => {
  it('fails exactly when the pod has been unschedulable for the whole window', async () => {
    const m = startMigration();
    m.send({ type: 'ADMITTED' });
    await m.advance(10_000);
    m.send({ type: 'TARGET_POD_UNSCHEDULABLE', message: '0/3 nodes are available: insufficient memory' });
    expect(m.value()).toEqual({ Scheduling: 'unschedulable' });

    await m.advance(300_000 - 1);
    expect(m.phase()).toBe('Scheduling');
    await m.advance(1);
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('target pod unschedulable for 300s: 0/3 nodes are available: insufficient memory');
    expect(m.actions.reportFailure).toHaveBeenCalledTimes(1);
  });

  it('does not restart the window on repeated complaints, but reports the latest one', async () => {
    const m = startMigration();
    m.send({ type: 'ADMITTED' });
    m.send({ type: 'TARGET_POD_UNSCHEDULABLE', message: 'insufficient memory' });
    await m.advance(200_000);
    m.send({ type: 'TARGET_POD_UNSCHEDULABLE', message: 'node(s) had untolerated taint' });
    await m.advance(100_000);
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('target pod unschedulable for 300s: node(s) had untolerated taint');
  });

  it('is called off once the pod gets a node', async () => {
    const m = startMigration();
    m.send({ type: 'ADMITTED' });
    m.send({ type: 'TARGET_POD_UNSCHEDULABLE', message: 'insufficient memory' });
    await m.advance(200_000);
    m.send({ type: 'TARGET_POD_SCHEDULED', ...POD });
    expect(m.value()).toEqual({ Scheduling: 'waiting' });
    expect(m.context()).toMatchObject({ targetNode: 'node-b', targetPod: POD.pod });
    await m.advance(200_000);
    expect(m.value()).toEqual({ Scheduling: 'waiting' });
  });
});

describe('target pod pending', () => {
  it('fails when the pod is not ready within the pending window, whatever happened meanwhile', async () => {
    const m = startMigration();
    m.send({ type: 'ADMITTED' });
    await m.advance(250_000);
    m.send({ type: 'TARGET_POD_UNSCHEDULABLE', message: 'insufficient memory' });
    await m.advance(200_000);
    m.send({ type: 'TARGET_POD_SCHEDULED', ...POD });
    await m.advance(900_000 - 450_000 - 1);
    expect(m.phase()).toBe('Scheduling');
    await m.advance(1);
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('target pod did not become ready within 900s');
  });

  it('stops counting once the pod is ready', async () => {
    const m = startMigration();
    m.actors.handOff.mockImplementation(never);
    m.send({ type: 'ADMITTED' });
    await m.advance(899_000);
    m.send({ type: 'TARGET_POD_READY', ...POD });
    await m.advance(2_000);
    expect(m.phase()).toBe('Scheduled');
  });
});

describe('target ready', () => {
  it('fails a hand-off that keeps failing, with the last error, after the target-ready window', async () => {
    const m = startMigration();
    m.actors.handOff.mockRejectedValue(new Error('admission webhook denied the VMI update'));
    m.send({ type: 'ADMITTED' });
    m.send({ type: 'TARGET_POD_READY', ...POD });
    await settle();
    for (let t = 0; t < 59; t++) await m.advance(1_000);
    await m.advance(999);
    expect(m.phase()).toBe('Scheduled');
    expect(m.actors.handOff.mock.calls.length).toBeGreaterThan(20);
    await m.advance(1);
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('target was not handed off within 60s (last error: admission webhook denied the VMI update)');
  });

  it('fails a hand-off that never answers after the target-ready window', async () => {
    const m = startMigration();
    m.actors.handOff.mockImplementation(never);
    m.send({ type: 'ADMITTED' });
    m.send({ type: 'TARGET_POD_READY', ...POD });
    await m.advance(60_000);
    expect(m.context().failureReason).toBe('target was not handed off within 60s');
  });

  it('gives target preparation its own full window', async () => {
    const m = startMigration();
    let handOffDone!: () => void;
    m.actors.handOff.mockImplementation(() => new Promise<void>((r) => { handOffDone = r; }));
    m.actors.prepareTarget.mockImplementation(never);
    m.send({ type: 'ADMITTED' });
    m.send({ type: 'TARGET_POD_READY', ...POD });
    await m.advance(50_000);
    handOffDone();
    await settle();
    expect(m.phase()).toBe('PreparingTarget');

    await m.advance(60_000 - 1);
    expect(m.phase()).toBe('PreparingTarget');
    await m.advance(1);
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('target was not ready within 60s');
    expect(m.actors.startSource).not.toHaveBeenCalled();
  });
});

describe('progress timeout', () => {
  it('switches a stalled migration to post-copy when the policy allows it', async () => {
    const m = startMigration(migrationInput({ allowPostCopy: true }, { completionPerGiBMs: 0 }));
    await m.toRunning();
    await m.advance(150_000 - 1);
    expect(m.actors.startPostCopy).not.toHaveBeenCalled();
    await m.advance(1);
    expect(m.matches({ Running: 'postCopy' })).toBe(true);
    expect(m.actors.startPostCopy).toHaveBeenCalledTimes(1);
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
    expect(m.context().mode).toBe('PostCopy');
  });

  it('aborts a migration with no progress at all, in KubeVirt words', async () => {
    const m = startMigration(migrationInput({}, { completionPerGiBMs: 0 }));
    await m.toRunning();
    await m.advance(150_000 - 1);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
    await m.advance(1);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
    expect(m.context()).toMatchObject({ abortRequested: false, abortReason: 'live migration stuck for 150s and has been aborted' });

    m.send({ type: 'MIGRATION_ABORTED', reason: 'job cancelled' });
    expect(m.context().failureReason).toBe('live migration stuck for 150s and has been aborted');
  });

  it('restarts on a new low of remaining data', async () => {
    const m = startMigration(migrationInput({}, { completionPerGiBMs: 0 }));
    await m.toRunning();
    await m.advance(100_000);
    m.send({ type: 'PROGRESS', stats: stats(1.5 * GiB) });
    await m.advance(100_000);
    m.send({ type: 'PROGRESS', stats: stats(1.0 * GiB) });
    await m.advance(150_000 - 1);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    await m.advance(1);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
  });

  it('does not restart on a report without a new low (dirty pages re-sent)', async () => {
    const m = startMigration(migrationInput({}, { completionPerGiBMs: 0 }));
    await m.toRunning();
    m.send({ type: 'PROGRESS', stats: stats(1.0 * GiB, 1) });
    await m.advance(100_000);
    m.send({ type: 'PROGRESS', stats: stats(1.2 * GiB, 2) });
    m.send({ type: 'PROGRESS', stats: stats(1.0 * GiB, 3) });
    await m.advance(50_000);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.context().lastStats?.iteration).toBe(3);
    expect(m.context().lowestRemaining).toBe(1.0 * GiB);
  });

  it('does not count crumbs as progress: a new low must beat the old one by 4 %', async () => {
    const m = startMigration(migrationInput({}, { completionPerGiBMs: 0 }));
    await m.toRunning();
    m.send({ type: 'PROGRESS', stats: stats(1.0 * GiB, 1) });
    await m.advance(100_000);
    m.send({ type: 'PROGRESS', stats: stats(0.99 * GiB, 2) });
    m.send({ type: 'PROGRESS', stats: stats(0.97 * GiB, 3) });
    await m.advance(50_000);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
  });

  it('counts creeping progress once it adds up to the margin', async () => {
    const m = startMigration(migrationInput({}, { completionPerGiBMs: 0 }));
    await m.toRunning();
    m.send({ type: 'PROGRESS', stats: stats(1.0 * GiB, 1) });
    await m.advance(100_000);
    m.send({ type: 'PROGRESS', stats: stats(0.98 * GiB, 2) });
    m.send({ type: 'PROGRESS', stats: stats(0.95 * GiB, 3) });
    await m.advance(149_999);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.context().lowestRemaining).toBe(0.95 * GiB);
  });

  it('never fires when switched off', async () => {
    const m = startMigration(migrationInput({}, { progressMs: 0, completionPerGiBMs: 0 }));
    await m.toRunning();
    await m.advance(MAX_TIMER_MS + 1);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
  });
});

describe('progress silence', () => {
  const SILENT = { completionPerGiBMs: 0, silenceMs: 15_000 };

  it('puts a source that stopped reporting to the arbiter, and fails only once it holds that nothing runs', async () => {
    const m = startMigration(migrationInput({}, SILENT));
    await m.toRunning();
    m.send({ type: 'PROGRESS', stats: stats(1.5 * GiB) });
    await m.advance(15_000 - 1);
    expect(m.actors.inspect).not.toHaveBeenCalled();
    m.actors.inspect.mockResolvedValue({ kind: 'failed', why: 'the guest runs on the source and no migration of it runs there' });
    await m.advance(1);
    expect(m.actors.inspect).toHaveBeenCalledTimes(1);
    expect(m.value()).toEqual({ Running: { resolving: 'confirming' } });
    await m.advance(5_000);
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('the source stopped reporting progress for 15s');
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
  });

  it('is reset by any report, even one without a new low', async () => {
    const m = startMigration(migrationInput({}, SILENT));
    await m.toRunning();
    for (let i = 0; i < 10; i++) {
      await m.advance(10_000);
      m.send({ type: 'PROGRESS', stats: stats(1.0 * GiB, i + 1) });
    }
    expect(m.actors.inspect).not.toHaveBeenCalled();
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
  });

  it('goes back to migrating when the source says its job still runs', async () => {
    const m = startMigration(migrationInput({}, SILENT));
    await m.toRunning();
    m.actors.inspect.mockResolvedValueOnce({ kind: 'migrating', why: 'the source handler reports the migration as running', sourceJob: 'running' });
    await m.advance(15_000);
    expect(m.actors.inspect).toHaveBeenCalledTimes(1);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 40 });
    await settle();
    expect(m.phase()).toBe('Succeeded');
  });

  it('watches post-copy too, where no other timer runs: the arbiter finds the guest on the target', async () => {
    const m = startMigration(migrationInput({ allowPostCopy: true }, { ...SILENT, progressMs: 20_000 }));
    await m.toRunning();
    for (let i = 0; i < 3; i++) {
      await m.advance(10_000);
      m.send({ type: 'PROGRESS', stats: stats(1.0 * GiB, i + 1) });
    }
    await settle();
    expect(m.value()).toEqual({ Running: { postCopy: 'switched' } });
    m.send({ type: 'PROGRESS', stats: stats(0.5 * GiB, 9) });
    await m.advance(14_000);
    m.send({ type: 'PROGRESS', stats: stats(0.2 * GiB, 10) });
    await m.advance(14_000);
    expect(m.actors.inspect).not.toHaveBeenCalled();
    m.actors.inspect.mockResolvedValueOnce({ kind: 'completed', why: "the guest's domain is running on the target" });
    await m.advance(1_000);
    expect(m.actors.inspect).toHaveBeenCalledTimes(1);
    await settle();
    expect(m.phase()).toBe('Succeeded');
    expect(m.context().mode).toBe('PostCopy');
  });

  it('asks at once, without waiting for the silence, when the source refuses to steer a job it no longer runs', async () => {
    const m = startMigration(migrationInput({}, SILENT));
    await m.toRunning();
    m.actors.inspect.mockResolvedValueOnce({ kind: 'completed', why: 'the source handler reports the migration as completed', sourceJob: 'completed' });
    m.send({ type: 'SOURCE_JOB_MISSING', reason: 'the source has no such job running: migration uid-1 attempt 1 on node-a is completed, not running' });
    await settle();
    expect(m.actors.inspect).toHaveBeenCalledTimes(1);
    expect(m.phase()).toBe('Succeeded');
  });

  it('is off without silenceMs', async () => {
    const m = startMigration(migrationInput({}, { completionPerGiBMs: 0 }));
    await m.toRunning();
    await m.advance(149_000);
    expect(m.actors.inspect).not.toHaveBeenCalled();
  });
});

describe('completion timeout', () => {
  it('aborts after the per-GiB budget when post-copy is not allowed', async () => {
    // 2 GiB × 150 s/GiB = 300 s; steady progress keeps the progress timer from firing first.
    const m = startMigration(migrationInput({ memoryBytes: 2 * GiB }));
    await m.toRunning();
    for (let i = 1; i < 30; i++) {
      await m.advance(10_000);
      m.send({ type: 'PROGRESS', stats: stats(2 * GiB - i * 10_000_000, i) });
    }
    await m.advance(9_999);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    await m.advance(1);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.context().abortReason).toBe('migration not completed after 300s');
    expect(m.actors.startPostCopy).not.toHaveBeenCalled();
  });

  it('switches to post-copy instead when allowed, and then stops all timers', async () => {
    const m = startMigration(migrationInput({ memoryBytes: 4 * GiB, allowPostCopy: true }, { progressMs: 0 }));
    await m.toRunning();
    await m.advance(600_000 - 1);
    expect(m.actors.startPostCopy).not.toHaveBeenCalled();
    await m.advance(1);
    expect(m.matches({ Running: 'postCopy' })).toBe(true);
    expect(m.context().mode).toBe('PostCopy');
    expect(m.actors.startPostCopy).toHaveBeenCalledTimes(1);
    // Asked in pre-copy; believed once the source confirmed the switch.
    expect(m.actors.startPostCopy.mock.calls[0]?.[0].mode).toBe('PreCopy');
    // No timeout runs in post-copy: the one timer is the progress-silence watch, parked and guarded off here.
    expect(m.clock.pendingTimers()).toBe(1);

    m.send({ type: 'PROGRESS', stats: stats(GiB) });
    await m.advance(10 * 3600_000);
    expect(m.matches({ Running: 'postCopy' })).toBe(true);
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
  });

  it('is not restarted by progress', async () => {
    const m = startMigration(migrationInput({ memoryBytes: GiB }, { progressMs: 0 }));
    await m.toRunning();
    await m.advance(100_000);
    m.send({ type: 'PROGRESS', stats: stats(0.5 * GiB) });
    await m.advance(50_000);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.context().abortReason).toBe('migration not completed after 150s');
  });

  it.each([
    ['completing', (m: ReturnType<typeof startMigration>) => m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 5 })],
    ['aborting', (m: ReturnType<typeof startMigration>) => m.send({ type: 'ABORT', reason: 'ferry cancel' })],
    ['resolving', (m: ReturnType<typeof startMigration>) => m.send({ type: 'MIGRATION_FAILED', reason: 'cannot tell whether it completed', uncertain: true })],
  ] as const)('is cancelled once the migration leaves pre-copy for %s: no post-copy switch or abort behind its back', async (state, leave) => {
    const m = startMigration(migrationInput({ memoryBytes: 2 * GiB, allowPostCopy: true }, { progressMs: 0 }));
    m.actors.finalizeSuccess.mockImplementation(never);
    await m.toRunning();
    await m.advance(100_000);
    leave(m);
    await settle();
    expect(m.matches({ Running: state })).toBe(true);
    // Far past the 300 s budget: the timer armed in `migrating` must not fire.
    for (let i = 0; i < 80; i++) await m.advance(5_000);
    expect(m.matches({ Running: state })).toBe(true);
    expect(m.actors.startPostCopy).not.toHaveBeenCalled();
    expect(m.context().abortReason ?? '').not.toMatch(/not completed after/);
  });

  it('gives a guest under 1 GiB a full GiB of budget', async () => {
    const m = startMigration(migrationInput({ memoryBytes: 256 * 1024 ** 2 }, { progressMs: 0 }));
    await m.toRunning();
    await m.advance(150_000 - 1);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    await m.advance(1);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
  });

  it('never fires when switched off, and no timer gets an unsafe delay', async () => {
    const m = startMigration(migrationInput({ allowPostCopy: true }, { progressMs: 0, completionPerGiBMs: 0 }));
    await m.toRunning();
    await m.advance(3 * MAX_TIMER_MS);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.actors.startPostCopy).not.toHaveBeenCalled();
    for (const ms of m.delays) {
      expect(Number.isFinite(ms)).toBe(true);
      expect(ms).toBeLessThanOrEqual(MAX_TIMER_MS);
    }
  });

  it('caps a huge budget at the longest delay a timer can hold', async () => {
    const m = startMigration(migrationInput({ memoryBytes: 4096 * GiB }, { progressMs: 0, completionPerGiBMs: 3600_000 }));
    await m.toRunning();
    expect(Math.max(...m.delays)).toBe(MAX_TIMER_MS);
    await m.advance(1_000);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
  });
});

describe('input checks', () => {
  it('refuses a zero abort-retry interval, naming the migration', () => {
    const errors: unknown[] = [];
    const actor = createActor(migrationMachine, { input: migrationInput({}, { abortRetryMs: 0 }) });
    actor.subscribe({ error: (e) => errors.push(e) });
    actor.start();
    expect(actor.getSnapshot().status).toBe('error');
    expect(String(errors[0])).toMatch(/uid-1 of default\/vm-a.*abortRetryMs must be a positive/);
  });

  it('refuses a negative or infinite timeout', () => {
    for (const bad of [{ progressMs: -1 }, { pendingPodMs: Infinity }]) {
      const errors: unknown[] = [];
      const actor = createActor(migrationMachine, { input: migrationInput({}, bad) });
      actor.subscribe({ error: (e) => errors.push(e) });
      actor.start();
      expect(String(errors[0])).toMatch(new RegExp(Object.keys(bad)[0]!));
    }
  });

  it('complains loudly when the controller forgot to provide an actor', async () => {
    const actor = createActor(migrationMachine, { input: migrationInput() });
    actor.start();
    actor.send({ type: 'ADMITTED' });
    actor.send({ type: 'TARGET_POD_READY', node: 'node-b', pod: 'p' });
    await settle();
    // The default hand-off rejects; the chart treats it as a retryable error and keeps the message.
    expect(actor.getSnapshot().context.retryError).toBe('not provided: handOff');
    actor.stop();
  });
});
