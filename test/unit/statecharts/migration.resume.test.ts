import { describe, expect, it } from '@jest/globals';
import { migrationInput, settle, startMigration, stats, GiB } from './migrationHarness.js';

/** What a restarted controller knows from the VMIM status. */
const recorded = { sourceNode: 'node-a', targetNode: 'node-b', targetPod: 'virt-launcher-vm-a-target', attempt: 2 };

describe('resuming after a controller restart', () => {
  it('starts at Pending when the VMIM has no phase yet', () => {
    const m = startMigration(migrationInput());
    expect(m.value()).toBe('Pending');
    expect(m.actions.createTargetPod).not.toHaveBeenCalled();
  });

  it('resumes Pending and waits for admission again', () => {
    const m = startMigration(migrationInput({ resumePhase: 'Pending' }));
    expect(m.value()).toBe('Pending');
    m.send({ type: 'ADMITTED' });
    expect(m.phase()).toBe('Scheduling');
  });

  it('resumes Scheduling by ensuring the target pod exists again', () => {
    const m = startMigration(migrationInput({ resumePhase: 'Scheduling', ...recorded }));
    expect(m.value()).toEqual({ Scheduling: 'waiting' });
    expect(m.actions.createTargetPod).toHaveBeenCalledTimes(1);
    // The controller's implementation looks the pod up by these before creating one.
    expect(m.actions.createTargetPod.mock.calls[0]?.[0].context).toMatchObject({ migrationUid: 'uid-1', attempt: 2, targetPod: recorded.targetPod });
  });

  it('resumes Scheduling with fresh timers counted from the restart', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'Scheduling' }));
    await m.advance(900_000 - 1);
    expect(m.phase()).toBe('Scheduling');
    await m.advance(1);
    expect(m.phase()).toBe('Failed');
  });

  it('resumes Scheduled by repeating the hand-off', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'Scheduled', ...recorded }));
    expect(m.actors.handOff).toHaveBeenCalledTimes(1);
    expect(m.actors.handOff.mock.calls[0]?.[0]).toMatchObject({ targetNode: 'node-b' });
    await settle();
    expect(m.actors.prepareTarget).toHaveBeenCalledTimes(1);
    expect(m.actions.createTargetPod).not.toHaveBeenCalled();
  });

  it('resumes PreparingTarget by asking the target to prepare again', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'PreparingTarget', ...recorded }));
    expect(m.value()).toBe('PreparingTarget');
    expect(m.actors.prepareTarget).toHaveBeenCalledTimes(1);
    expect(m.actors.handOff).not.toHaveBeenCalled();
    await settle();
    expect(m.context().targetAddress).toBe('10.0.0.9:49152');
  });

  it('resumes TargetReady by asking both handlers first, and starts the source only when it never heard of the migration', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'TargetReady', ...recorded, targetAddress: '10.0.0.9:49152' }), {
      inspect: { kind: 'failed', why: 'the guest runs on the source and no migration of it runs there' },
    });
    expect(m.value()).toEqual({ TargetReady: 'checking' });
    expect(m.actors.startSource).not.toHaveBeenCalled();
    await settle();
    expect(m.actors.startSource).toHaveBeenCalledTimes(1);
    expect(m.actors.startSource.mock.calls[0]?.[0]).toMatchObject({ targetAddress: '10.0.0.9:49152' });
    expect(m.actors.prepareTarget).not.toHaveBeenCalled();
    await settle();
    expect(m.phase()).toBe('Running');
  });

  it('resumes TargetReady into Failed, without starting the source, when the target was cancelled meanwhile (chaos seed 1000)', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'TargetReady', ...recorded, targetAddress: '10.0.0.9:49152' }), {
      inspect: { kind: 'failed', why: 'the guest runs on the source and no migration of it runs there', targetGone: true },
    });
    await settle();
    await settle();
    expect(m.actors.startSource).not.toHaveBeenCalled();
    expect(m.phase()).toBe('Failed');
  });

  it('resumes TargetReady without a second start when the source already runs the migration', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'TargetReady', ...recorded, targetAddress: '10.0.0.9:49152' }), { inspect: { kind: 'migrating', why: 'running', sourceJob: 'running' } });
    await settle();
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.actors.startSource).not.toHaveBeenCalled();
  });

  it('resumes TargetReady into finalisation when the guest already left the source', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'TargetReady', ...recorded, targetAddress: '10.0.0.9:49152' }), { inspect: { kind: 'completed', why: 'the guest left the source' } });
    await settle();
    await settle();
    expect(m.value()).toBe('Succeeded');
    expect(m.actors.startSource).not.toHaveBeenCalled();
  });

  it('resumes Running in pre-copy, watching progress and completion from the restart', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'Running', ...recorded, memoryBytes: 4 * GiB }), { inspect: { kind: 'migrating', why: 'running', sourceJob: 'running' } });
    expect(m.value()).toEqual({ Running: { resolving: 'asking' } });
    await settle();
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.actors.startSource).not.toHaveBeenCalled();
    m.send({ type: 'PROGRESS', stats: stats(GiB) });
    await m.advance(150_000 - 1);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    await m.advance(1);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
  });

  it('resumes Running in post-copy without timers and without re-issuing the switch', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'Running', mode: 'PostCopy', allowPostCopy: true, ...recorded }), { inspect: { kind: 'migrating', why: 'running', sourceJob: 'running' } });
    await settle();
    expect(m.value()).toEqual({ Running: { postCopy: 'switched' } });
    expect(m.actors.startPostCopy).not.toHaveBeenCalled();
    // Only the progress-silence watch, parked and guarded off without silenceMs.
    expect(m.clock.pendingTimers()).toBe(1);
    await m.advance(10 * 3600_000);
    expect(m.value()).toEqual({ Running: { postCopy: 'switched' } });
    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
  });

  it('resumes Succeeded by recording the success again', () => {
    const m = startMigration(migrationInput({ resumePhase: 'Succeeded', ...recorded }));
    expect(m.value()).toBe('Succeeded');
    expect(m.actor.getSnapshot().status).toBe('done');
    expect(m.actions.recordSuccess).toHaveBeenCalledTimes(1);
  });

  it('resumes Failed by recording the failure again, with the recorded reason', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'Failed', failureReason: 'target pod is down: evicted' }));
    expect(m.phase()).toBe('Failed');
    await settle();
    expect(m.value()).toEqual({ Failed: 'recorded' });
    expect(m.actors.recordFailure).toHaveBeenCalledTimes(1);
    expect(m.actors.recordFailure.mock.calls[0]?.[0]).toMatchObject({ failureReason: 'target pod is down: evicted' });
    expect(m.actions.reportFailure).toHaveBeenCalledTimes(1);
    expect(m.actions.reportFailure.mock.calls[0]?.[0].context.failureReason).toBe('target pod is down: evicted');
    expect(m.actions.createTargetPod).not.toHaveBeenCalled();
  });

  it('resumes into a phase that then handles events as usual', async () => {
    const m = startMigration(migrationInput({ resumePhase: 'PreparingTarget', ...recorded }));
    // The abort lands before the (repeated) preparation answers.
    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('aborted: VMIM deleted');
  });
});
