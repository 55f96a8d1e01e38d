import { describe, expect, it } from '@jest/globals';
import { migrationInput, never, settle, startMigration, stats, deferred, TIMEOUTS, type Harness } from './migrationHarness.js';

const POD = { node: 'node-b', pod: 'virt-launcher-vm-a-target' };

/** Drives a fresh migration into the named phase with the step that leaves it held in flight. */
async function inPhase(phase: 'Pending' | 'Scheduling' | 'Scheduled' | 'PreparingTarget' | 'TargetReady' | 'Running'): Promise<Harness> {
  const m = startMigration();
  if (phase === 'Scheduled') m.actors.handOff.mockImplementation(never);
  if (phase === 'PreparingTarget') m.actors.prepareTarget.mockImplementation(never);
  if (phase === 'TargetReady') m.actors.startSource.mockImplementation(never);
  if (phase !== 'Pending') m.send({ type: 'ADMITTED' });
  if (phase !== 'Pending' && phase !== 'Scheduling') {
    m.send({ type: 'TARGET_POD_READY', ...POD });
    await settle();
  }
  expect(m.phase()).toBe(phase);
  return m;
}

describe('a migration that goes well', () => {
  it('walks every phase in order and finishes Succeeded', async () => {
    const m = startMigration();
    expect(m.value()).toBe('Pending');

    m.send({ type: 'ADMITTED' });
    expect(m.actions.createTargetPod).toHaveBeenCalledTimes(1);
    m.send({ type: 'TARGET_POD_SCHEDULED', ...POD });
    m.send({ type: 'TARGET_POD_READY', ...POD });
    await settle();

    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.actors.handOff).toHaveBeenCalledTimes(1);
    expect(m.actors.handOff.mock.calls[0]?.[0]).toMatchObject({ targetNode: 'node-b', targetPod: POD.pod });
    expect(m.actors.prepareTarget).toHaveBeenCalledTimes(1);
    // The source is told where to stream only after the target published its address.
    expect(m.actors.startSource.mock.calls[0]?.[0]).toMatchObject({ targetAddress: '10.0.0.9:49152', sourceNode: 'node-a' });

    m.send({ type: 'PROGRESS', stats: stats(gib(1)) });
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 42 });
    await settle();

    expect(m.value()).toBe('Succeeded');
    expect(m.actor.getSnapshot().status).toBe('done');
    expect(m.phases).toEqual(['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running', 'Succeeded']);
    expect(m.actors.finalizeSuccess).toHaveBeenCalledTimes(1);
    expect(m.actions.recordSuccess).toHaveBeenCalledTimes(1);
    expect(m.actions.reportFailure).not.toHaveBeenCalled();
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
    expect(m.context()).toMatchObject({ mode: 'PreCopy', downtimeMs: 42, targetAddress: '10.0.0.9:49152', abortRequested: false });
    expect(m.context().failureReason).toBeUndefined();
    expect(m.context().lastStats?.dataRemaining).toBe(gib(1));
  });

  it('hands the actors the migration as it stands when they start', async () => {
    const m = startMigration(migrationInput({ migrationUid: 'uid-7', attempt: 3 }));
    await m.toRunning();
    expect(m.actors.finalizeSuccess).not.toHaveBeenCalled();
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PostCopy', downtimeMs: 7 });
    await settle();
    expect(m.actors.finalizeSuccess.mock.calls[0]?.[0]).toMatchObject({
      migrationUid: 'uid-7', attempt: 3, vmiKey: 'default/vm-a', mode: 'PostCopy', downtimeMs: 7, targetNode: 'node-b',
    });
  });
});

function gib(n: number): number {
  return n * 1024 ** 3;
}

describe('rejection', () => {
  it('fails a migration the limits cannot admit, without creating a target pod', () => {
    const m = startMigration();
    m.send({ type: 'REJECTED', reason: 'another migration job is in progress' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('another migration job is in progress');
    expect(m.actions.createTargetPod).not.toHaveBeenCalled();
    expect(m.actions.reportFailure).toHaveBeenCalledTimes(1);
    expect(m.actions.reportFailure.mock.calls[0]?.[0].context.failureReason).toBe('another migration job is in progress');
  });

  it('ignores a late rejection once the migration is under way', () => {
    const m = startMigration();
    m.send({ type: 'ADMITTED' });
    m.send({ type: 'REJECTED', reason: 'too late' });
    expect(m.phase()).toBe('Scheduling');
  });
});

describe('abort (VMIM deleted or ferry cancel)', () => {
  it.each(['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget'] as const)(
    'in %s fails at once: nothing runs on the source yet',
    async (phase) => {
      const m = await inPhase(phase);
      m.send({ type: 'ABORT', reason: 'VMIM deleted' });
      expect(m.phase()).toBe('Failed');
      expect(m.context()).toMatchObject({ abortRequested: true, failureReason: 'aborted: VMIM deleted' });
      expect(m.actors.requestAbort).not.toHaveBeenCalled();
      expect(m.actions.reportFailure).toHaveBeenCalledTimes(1);
    },
  );

  it('in TargetReady asks the source to abort and waits for its answer', async () => {
    const m = await inPhase('TargetReady');
    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
    expect(m.actors.requestAbort.mock.calls[0]?.[0]).toMatchObject({ abortRequested: true, abortReason: 'aborted: VMIM deleted' });
    expect(m.actions.reportFailure).not.toHaveBeenCalled();

    m.send({ type: 'MIGRATION_ABORTED', reason: 'job cancelled' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('aborted: VMIM deleted');
  });

  it('while migrating asks the source to abort, then fails with the user reason once it confirms', async () => {
    const m = await inPhase('Running');
    m.send({ type: 'ABORT', reason: 'ferry cancel' });
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
    expect(m.context().abortRequested).toBe(true);

    m.send({ type: 'MIGRATION_ABORTED', reason: 'job cancelled' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('aborted: ferry cancel');
    expect(m.actions.reportFailure).toHaveBeenCalledTimes(1);
  });

  it('during post-copy is recorded but not honoured: the guest already runs on the target', async () => {
    const m = startMigration(migrationInput({ allowPostCopy: true, memoryBytes: gib(1) }, { progressMs: 0 }));
    await m.toRunning();
    await m.advance(150_000);
    expect(m.matches({ Running: 'postCopy' })).toBe(true);

    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    expect(m.matches({ Running: 'postCopy' })).toBe(true);
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
    expect(m.context().abortRequested).toBe(true);
    expect(m.context().abortRefused).toMatch(/VMIM deleted.*post-copy/);

    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PostCopy', downtimeMs: 3 });
    await settle();
    expect(m.value()).toBe('Succeeded');
  });

  it('after completion is refused: the migration still succeeds', async () => {
    const m = await inPhase('Running');
    const finalize = deferred<void>();
    m.actors.finalizeSuccess.mockImplementation(() => finalize.promise);
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 5 });
    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    expect(m.value()).toEqual({ Running: { completing: 'finalizing' } });
    expect(m.context().abortRefused).toMatch(/completed/);
    finalize.resolve();
    await settle();
    expect(m.value()).toBe('Succeeded');
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
  });

  it('is re-sent to the source until it answers, never given up', async () => {
    const m = await inPhase('Running');
    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    await settle();
    await m.advance(5_000 - 1);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
    await m.advance(1);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(2);
    for (let i = 0; i < 600_000 / 5_000; i++) await m.advance(5_000);
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(2 + 600_000 / 5_000);
    // A second request adds nothing: the first reason stays the one reported.
    m.send({ type: 'ABORT', reason: 'again' });
    expect(m.context().abortReason).toBe('aborted: VMIM deleted');
  });

  it('loses to a completion that races it: the guest is already on the target', async () => {
    const m = await inPhase('Running');
    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 12 });
    await settle();
    expect(m.value()).toBe('Succeeded');
    expect(m.context()).toMatchObject({ abortRequested: true, downtimeMs: 12 });
    expect(m.actions.recordSuccess).toHaveBeenCalledTimes(1);
    expect(m.actions.reportFailure).not.toHaveBeenCalled();
    // No abort retries keep firing after the race is decided.
    await m.advance(60_000);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
  });
});

describe('target pod gone', () => {
  it.each(['Scheduling', 'Scheduled', 'PreparingTarget'] as const)('in %s fails the migration', async (phase) => {
    const m = await inPhase(phase);
    m.send({ type: 'TARGET_POD_GONE', reason: 'evicted' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('target pod is down: evicted');
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
  });

  it.each(['TargetReady', 'Running'] as const)('in %s aborts on the source first', async (phase) => {
    const m = await inPhase(phase);
    m.send({ type: 'TARGET_POD_GONE', reason: 'node-b lost' });
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
    expect(m.context().abortRequested).toBe(false);
    m.send({ type: 'MIGRATION_ABORTED', reason: 'job cancelled' });
    expect(m.context().failureReason).toBe('target pod is down: node-b lost');
  });

  it('during post-copy is left to the source to report: the guest cannot be pulled back', async () => {
    const m = startMigration(migrationInput({ allowPostCopy: true, memoryBytes: gib(1) }, { progressMs: 0 }));
    await m.toRunning();
    await m.advance(150_000);
    expect(m.matches({ Running: 'postCopy' })).toBe(true);
    m.send({ type: 'TARGET_POD_GONE', reason: 'node-b lost' });
    expect(m.matches({ Running: 'postCopy' })).toBe(true);
    m.send({ type: 'MIGRATION_FAILED', reason: 'post-copy failed: target lost' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('post-copy failed: target lost');
  });
});

describe('VMI gone', () => {
  it.each(['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget'] as const)('in %s fails the migration', async (phase) => {
    const m = await inPhase(phase);
    m.send({ type: 'VMI_GONE', reason: 'VMI default/vm-a deleted' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('VMI is gone: VMI default/vm-a deleted');
  });

  it.each(['TargetReady', 'Running'] as const)('in %s aborts on the source first', async (phase) => {
    const m = await inPhase(phase);
    m.send({ type: 'VMI_GONE', reason: 'VMI stopped' });
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
    m.send({ type: 'MIGRATION_FAILED', reason: 'domain shut down' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('domain shut down');
  });

  it('during post-copy aborts on the source', async () => {
    const m = startMigration(migrationInput({ allowPostCopy: true, memoryBytes: gib(1) }, { progressMs: 0 }));
    await m.toRunning();
    await m.advance(150_000);
    m.send({ type: 'VMI_GONE', reason: 'VMI stopped' });
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
  });

  it('while completing fails instead of retrying forever against a missing VMI', async () => {
    const m = await inPhase('Running');
    m.actors.finalizeSuccess.mockRejectedValue(new Error('virtualmachineinstances "vm-a" not found'));
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 5 });
    await settle();
    expect(m.value()).toEqual({ Running: { completing: 'backoff' } });
    m.send({ type: 'VMI_GONE', reason: 'VMI default/vm-a deleted' });
    expect(m.phase()).toBe('Failed');
  });
});

describe('failures reported by the handlers', () => {
  it('fails with the source reason when the live migration fails', async () => {
    const m = await inPhase('Running');
    m.send({ type: 'MIGRATION_FAILED', reason: 'libvirt: connection reset' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('libvirt: connection reset');
    expect(m.actions.reportFailure).toHaveBeenCalledTimes(1);
  });

  it('fails with the source reason when the source aborted on its own', async () => {
    const m = await inPhase('Running');
    m.send({ type: 'MIGRATION_ABORTED', reason: 'cancelled by operator on node-a' });
    expect(m.context().failureReason).toBe('cancelled by operator on node-a');
    expect(m.context().abortRequested).toBe(false);
  });

  it('accepts a result that arrives before the source acknowledged the start', async () => {
    const m = await inPhase('TargetReady');
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 9 });
    await settle();
    expect(m.value()).toBe('Succeeded');

    const f = await inPhase('TargetReady');
    f.send({ type: 'MIGRATION_FAILED', reason: 'target refused connection' });
    expect(f.context().failureReason).toBe('target refused connection');
  });

  it('fails when the target cannot be prepared', async () => {
    const m = startMigration();
    m.actors.prepareTarget.mockRejectedValue(new Error('disk not attachable on node-b'));
    await m.toRunning();
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('target preparation failed: disk not attachable on node-b');
    expect(m.actors.startSource).not.toHaveBeenCalled();
  });

  it('fails when the source refuses to start (a definite error: nothing started)', async () => {
    const m = startMigration();
    m.actors.startSource.mockRejectedValue(Object.assign(new Error('handler node-a refused start-source: no such domain'), { definite: true }));
    await m.toRunning();
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('source failed to start: handler node-a refused start-source: no such domain');
    expect(m.actors.inspect).not.toHaveBeenCalled();
  });
});

describe('uncertainty is a state, not a failure', () => {
  const ambiguous = () => new Error('handler node-a did not answer start-source within 5000 ms');

  it('a start-source timeout asks both handlers instead of failing, and follows a source that is streaming', async () => {
    const m = startMigration();
    m.actors.startSource.mockRejectedValue(ambiguous());
    m.actors.inspect.mockResolvedValueOnce({ kind: 'migrating', why: 'the source handler reports the migration as running', sourceJob: 'running' });
    await m.toRunning();
    await settle();
    expect(m.actors.inspect).toHaveBeenCalledTimes(1);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.actions.reportFailure).not.toHaveBeenCalled();
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 7 });
    await settle();
    expect(m.value()).toBe('Succeeded');
  });

  it('finalizes on the target when the guest runs there, whatever the source said', async () => {
    const m = startMigration();
    m.actors.startSource.mockRejectedValue(ambiguous());
    m.actors.inspect.mockResolvedValueOnce({ kind: 'completed', why: "the guest's domain is running on the target" });
    await m.toRunning();
    await settle();
    await settle();
    expect(m.value()).toBe('Succeeded');
    expect(m.actors.finalizeSuccess).toHaveBeenCalledTimes(1);
  });

  it('fails with the original reason only when the guest is known to be on the source', async () => {
    const m = startMigration();
    m.actors.startSource.mockRejectedValue(ambiguous());
    m.actors.inspect.mockResolvedValue({ kind: 'failed', why: 'the guest runs on the source and no migration of it runs there' });
    await m.toRunning();
    await settle();
    // "No job at the source" might be a start still on its way: it must hold a full abort interval later.
    expect(m.value()).toEqual({ Running: { resolving: 'confirming' } });
    await m.advance(5_000);
    expect(m.actors.inspect).toHaveBeenCalledTimes(2);
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('source failed to start: handler node-a did not answer start-source within 5000 ms');
  });

  it('does not fail when a start that was still on its way shows up on the second look', async () => {
    const m = startMigration();
    m.actors.startSource.mockRejectedValue(ambiguous());
    m.actors.inspect.mockResolvedValueOnce({ kind: 'failed', why: 'the guest runs on the source and no migration of it runs there' });
    m.actors.inspect.mockResolvedValueOnce({ kind: 'migrating', why: 'the source handler reports the migration as running', sourceJob: 'running' });
    await m.toRunning();
    await settle();
    await m.advance(5_000);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.actions.reportFailure).not.toHaveBeenCalled();
  });

  it('keeps asking with back-off while nobody answers, reports once at the bound, and never fails on a silence', async () => {
    const m = startMigration();
    m.actors.startSource.mockRejectedValue(ambiguous());
    await m.toRunning();
    await settle();
    expect(m.actors.inspect).toHaveBeenCalledTimes(1);
    // Back-off: 1 s, 2 s, 4 s, then capped at the abort interval (5 s).
    await m.advance(1_000);
    expect(m.actors.inspect).toHaveBeenCalledTimes(2);
    await m.advance(2_000);
    expect(m.actors.inspect).toHaveBeenCalledTimes(3);
    await m.advance(4_000);
    expect(m.actors.inspect).toHaveBeenCalledTimes(4);
    await m.advance(5_000);
    expect(m.actors.inspect).toHaveBeenCalledTimes(5);
    expect(m.actions.reportUnresolved).not.toHaveBeenCalled();
    for (let i = 0; i < 22; i++) await m.advance(5_000); // 12 s + 110 s: past the 120 s bound
    expect(m.actions.reportUnresolved).toHaveBeenCalledTimes(1);
    expect(m.context().unresolved).toBe(true);
    for (let i = 0; i < 120; i++) await m.advance(5_000); // ten more minutes: reported once, still asking
    expect(m.actions.reportUnresolved).toHaveBeenCalledTimes(1);
    expect(m.phase()).toBe('Running');
    expect(m.actions.reportFailure).not.toHaveBeenCalled();
    // A late answer still settles it.
    m.actors.inspect.mockResolvedValue({ kind: 'failed', why: 'the guest runs on the source' });
    await m.advance(5_000);
    await m.advance(5_000);
    expect(m.phase()).toBe('Failed');
  });

  it('an abort answered "not-found" is not read as "nothing ran": it asks, and a guest on the target wins', async () => {
    const m = await inPhase('Running');
    m.actors.requestAbort.mockResolvedValueOnce({ state: 'not-found' });
    m.actors.inspect.mockResolvedValueOnce({ kind: 'completed', why: 'the guest left the source and its domain is incoming on the target' });
    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    await settle();
    await settle();
    expect(m.value()).toBe('Succeeded');
    expect(m.actions.reportFailure).not.toHaveBeenCalled();
  });

  it('an abort that finds the source still migrating goes back to aborting', async () => {
    const m = await inPhase('Running');
    m.actors.requestAbort.mockResolvedValueOnce({ state: 'already-finished' });
    m.actors.inspect.mockResolvedValueOnce({ kind: 'migrating', why: 'running', sourceJob: 'running' });
    m.send({ type: 'ABORT', reason: 'VMIM deleted' });
    await settle();
    await settle();
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(2);
  });

  it('a failure the source cannot vouch for goes to the arbiter', async () => {
    const m = await inPhase('Running');
    m.send({ type: 'MIGRATION_FAILED', reason: 'cannot tell whether it completed', uncertain: true });
    expect(m.matches({ Running: 'resolving' })).toBe(true);
    expect(m.actions.reportFailure).not.toHaveBeenCalled();
  });

  it.each([['migrating'], ['aborting'], ['postCopy']] as const)('a lost source node in %s goes to the arbiter, which may decide from the target alone', async (sub) => {
    const m = startMigration(migrationInput({ allowPostCopy: sub === 'postCopy', memoryBytes: gib(1) }, { progressMs: 0 }));
    await m.toRunning();
    if (sub === 'aborting') m.send({ type: 'ABORT', reason: 'ferry cancel' });
    if (sub === 'postCopy') await m.advance(150_000);
    await settle();
    expect(m.matches({ Running: sub })).toBe(true);
    m.actors.inspect.mockResolvedValue({ kind: 'failed', why: "the source node is lost and the target's domain is only incoming" });
    m.send({ type: 'NODE_LOST', node: 'node-a', reason: 'source node node-a is lost' });
    expect(m.context().sourceLost).toBe(true);
    expect(m.actors.inspect.mock.calls.at(-1)?.[0]).toMatchObject({ sourceLost: true });
    await settle();
    await m.advance(5_000);
    expect(m.phase()).toBe('Failed');
  });
});

describe('a result from the source', () => {
  it.each([['migrating'], ['aborting'], ['resolving']] as const)('settles the migration from %s', async (sub) => {
    const m = await inPhase('Running');
    if (sub === 'aborting') m.send({ type: 'ABORT', reason: 'ferry cancel' });
    if (sub === 'resolving') m.send({ type: 'MIGRATION_FAILED', reason: 'cannot tell whether it completed', uncertain: true });
    expect(m.matches({ Running: sub })).toBe(true);
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 7 });
    expect(m.matches({ Running: 'completing' })).toBe(true);
    expect(m.context().downtimeMs).toBe(7);
  });

  it('changes nothing once the migration is completing', async () => {
    const m = await inPhase('Running');
    m.actors.finalizeSuccess.mockImplementation(never);
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 7 });
    for (const ev of [{ type: 'MIGRATION_FAILED', reason: 'late' }, { type: 'MIGRATION_ABORTED', reason: 'late' }, { type: 'MIGRATION_FAILED', reason: 'cannot tell', uncertain: true }] as const) m.send(ev);
    expect(m.matches({ Running: 'completing' })).toBe(true);
    expect(m.context().failureReason).toBeUndefined();
  });

  it('an uncertain failure while resolving keeps it resolving', async () => {
    const m = await inPhase('Running');
    m.send({ type: 'MIGRATION_FAILED', reason: 'cannot tell whether it completed', uncertain: true });
    m.send({ type: 'MIGRATION_FAILED', reason: 'cannot tell, again', uncertain: true });
    expect(m.matches({ Running: 'resolving' })).toBe(true);
    m.send({ type: 'MIGRATION_FAILED', reason: 'connection reset' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('connection reset');
  });
});

describe('recording a failure', () => {
  it('is an invoked actor: its failure is retried with growing back-off on the clock, and the chart rests only once it succeeds', async () => {
    const m = await inPhase('Scheduling');
    m.actors.recordFailure.mockRejectedValueOnce(new Error('etcdserver: request timed out')).mockRejectedValueOnce(new Error('etcdserver: request timed out'));
    m.send({ type: 'TARGET_POD_GONE', reason: 'evicted' });
    await settle();
    expect(m.value()).toEqual({ Failed: 'backoff' });
    expect(m.context()).toMatchObject({ failureRecords: 1, failureRecordError: 'etcdserver: request timed out' });
    expect(m.actions.reportFailure).toHaveBeenCalledTimes(1);
    await m.advance(TIMEOUTS.retryMs);
    expect(m.actors.recordFailure).toHaveBeenCalledTimes(2);
    expect(m.value()).toEqual({ Failed: 'backoff' });
    // The second wait is twice the first.
    await m.advance(TIMEOUTS.retryMs);
    expect(m.actors.recordFailure).toHaveBeenCalledTimes(2);
    await m.advance(TIMEOUTS.retryMs);
    expect(m.actors.recordFailure).toHaveBeenCalledTimes(3);
    expect(m.value()).toEqual({ Failed: 'recorded' });
    // Reported once, however often it was retried.
    expect(m.actions.reportFailure).toHaveBeenCalledTimes(1);
  });
});

describe('a lost target node', () => {
  it.each([['Scheduling'], ['Scheduled'], ['PreparingTarget']] as const)('in %s fails at once: nothing started on the source', async (phase) => {
    const m = await inPhase(phase);
    m.send({ type: 'TARGET_NODE_LOST', node: 'node-b', reason: 'target node node-b is lost' });
    expect(m.phase()).toBe('Failed');
    expect(m.context()).toMatchObject({ targetLost: true, failureReason: 'target node node-b is lost' });
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
  });

  it.each([['TargetReady'], ['Running']] as const)('in %s has the source cancel, and fails once it confirms', async (phase) => {
    const m = await inPhase(phase);
    m.send({ type: 'TARGET_NODE_LOST', node: 'node-b', reason: 'target node node-b is lost' });
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
    m.send({ type: 'MIGRATION_ABORTED', reason: 'cancelled' });
    expect(m.phase()).toBe('Failed');
    expect(m.context().failureReason).toBe('target node node-b is lost');
  });

  it('in post-copy is only noted: the guest ran on the target and nothing is removed on a guess', async () => {
    const m = startMigration(migrationInput({ allowPostCopy: true, memoryBytes: gib(1) }, { progressMs: 0 }));
    await m.toRunning();
    await m.advance(150_000);
    await settle();
    expect(m.matches({ Running: 'postCopy' })).toBe(true);
    m.send({ type: 'TARGET_NODE_LOST', node: 'node-b', reason: 'target node node-b is lost' });
    expect(m.matches({ Running: 'postCopy' })).toBe(true);
    expect(m.context().targetLost).toBe(true);
    expect(m.actors.requestAbort).not.toHaveBeenCalled();
  });

  it('while resolving, a source found still streaming is told to stop', async () => {
    const m = await inPhase('Running');
    m.actors.inspect.mockResolvedValueOnce({ kind: 'migrating', why: 'running', sourceJob: 'running' });
    m.send({ type: 'MIGRATION_FAILED', reason: 'cannot tell whether it completed', uncertain: true });
    m.send({ type: 'TARGET_NODE_LOST', node: 'node-b', reason: 'target node node-b is lost' });
    await settle();
    await settle();
    expect(m.matches({ Running: 'aborting' })).toBe(true);
  });
});

describe('post-copy switch', () => {
  it('that fails leaves the chart in pre-copy, and abort still works', async () => {
    const m = startMigration(migrationInput({ allowPostCopy: true, memoryBytes: gib(1) }, { progressMs: 0 }));
    m.actors.startPostCopy.mockRejectedValueOnce(new Error('handler node-a refused post-copy: the job is not running'));
    await m.toRunning();
    await m.advance(150_000);
    expect(m.actors.startPostCopy).toHaveBeenCalledTimes(1);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
    expect(m.context().mode).toBe('PreCopy');
    expect(m.context().retryError).toMatch(/post-copy switch failed/);
    m.send({ type: 'ABORT', reason: 'ferry cancel' });
    expect(m.matches({ Running: 'aborting' })).toBe(true);
    expect(m.actors.requestAbort).toHaveBeenCalledTimes(1);
  });

  it('an abort during the switch waits for it: honoured if the switch fails, refused if it lands', async () => {
    const failing = startMigration(migrationInput({ allowPostCopy: true, memoryBytes: gib(1) }, { progressMs: 0 }));
    failing.actors.startPostCopy.mockRejectedValueOnce(new Error('timeout'));
    await failing.toRunning();
    failing.clock.advance(150_000);
    failing.send({ type: 'ABORT', reason: 'ferry cancel' });
    await settle();
    expect(failing.matches({ Running: 'aborting' })).toBe(true);

    const landing = startMigration(migrationInput({ allowPostCopy: true, memoryBytes: gib(1) }, { progressMs: 0 }));
    await landing.toRunning();
    landing.clock.advance(150_000);
    landing.send({ type: 'ABORT', reason: 'ferry cancel' });
    await settle();
    expect(landing.value()).toEqual({ Running: { postCopy: 'switched' } });
    expect(landing.context().abortRefused).toMatch(/post-copy had started/);
    expect(landing.actors.requestAbort).not.toHaveBeenCalled();
  });
});

describe('retries of idempotent steps', () => {
  it('retries a failed hand-off after the retry delay instead of failing', async () => {
    const m = startMigration();
    m.actors.handOff.mockRejectedValueOnce(new Error('409 conflict on VMI'));
    m.send({ type: 'ADMITTED' });
    m.send({ type: 'TARGET_POD_READY', ...POD });
    await settle();
    expect(m.value()).toEqual({ Scheduled: 'backoff' });
    expect(m.context().retryError).toBe('409 conflict on VMI');

    await m.advance(999);
    expect(m.actors.handOff).toHaveBeenCalledTimes(1);
    await m.advance(1);
    expect(m.actors.handOff).toHaveBeenCalledTimes(2);
    expect(m.value()).toEqual({ Running: { migrating: { stall: 'progressWindow', heartbeat: 'listening' } } });
  });

  it('fails at once, with nothing started, when the hand-off finds the VM no longer where it was admitted from', async () => {
    const m = startMigration();
    m.actors.handOff.mockRejectedValueOnce(Object.assign(new Error('VMI default/vm-1 runs on node-c, not on node-a, where this migration was admitted from (it moved since)'), { definite: true }));
    m.send({ type: 'ADMITTED' });
    m.send({ type: 'TARGET_POD_READY', ...POD });
    await settle();
    expect(m.value()).toEqual({ Failed: 'recorded' });
    expect(m.context().failureReason).toMatch(/runs on node-c, not on node-a/);
    expect(m.actors.prepareTarget).not.toHaveBeenCalled();
    expect(m.actors.startSource).not.toHaveBeenCalled();
  });

  it('retries a failed finalisation until it succeeds', async () => {
    const m = await inPhase('Running');
    m.actors.finalizeSuccess.mockRejectedValueOnce(new Error('etcd timeout')).mockRejectedValueOnce(new Error('etcd timeout'));
    m.send({ type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 5 });
    await settle();
    expect(m.value()).toEqual({ Running: { completing: 'backoff' } });
    await m.advance(1_000);
    expect(m.value()).toEqual({ Running: { completing: 'backoff' } });
    await m.advance(1_000);
    expect(m.value()).toBe('Succeeded');
    expect(m.actors.finalizeSuccess).toHaveBeenCalledTimes(3);
    expect(m.actions.recordSuccess).toHaveBeenCalledTimes(1);
  });
});

describe('progress', () => {
  it('keeps the latest statistics and the lowest remaining amount seen', async () => {
    const m = await inPhase('Running');
    m.send({ type: 'PROGRESS', stats: stats(gib(1), 1) });
    m.send({ type: 'PROGRESS', stats: stats(gib(1.5), 2) });
    expect(m.context().lastStats).toMatchObject({ dataRemaining: gib(1.5), iteration: 2 });
    expect(m.context().lowestRemaining).toBe(gib(1));
  });
});
