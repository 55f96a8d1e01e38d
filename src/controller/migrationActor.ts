import { createActor, fromPromise, type Actor } from 'xstate';
import type { MigrationPhase } from '../api/vmim.js';
import { migrationMachine, phaseOf, type MigrationActorInput, type MigrationEvent, type MigrationInput } from '../../statecharts/migration.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { MigrationSession } from './session.js';
import type { PhaseInfo } from './statusWriter.js';

export interface MigrationActorHandle {
  send(event: MigrationEvent): void;
  stop(): void;
  phase(): MigrationPhase;
}

/**
 * Binds the migration chart's named actions and actors to one session's I/O
 * and starts the actor on the injected clock. The chart decides; this only
 * carries out.
 */
export function createMigrationActor(opts: {
  session: MigrationSession;
  input: MigrationInput;
  clock: Clock;
  log: Logger;
  /** Called on every top-level phase change, in order. */
  onPhase: (phase: MigrationPhase, info: PhaseInfo) => void;
  /** Runs I/O in the migration's write order (before the next phase is written). */
  ordered: (task: () => Promise<void>) => Promise<void>;
}): MigrationActorHandle {
  const { session } = opts;
  // Read through the session: its logger is re-bound with the phase as the migration moves.
  const log = { warn: (o: object, m: string) => session.log.warn(o, m), error: (o: object, m: string) => session.log.error(o, m) };
  let actor: Actor<typeof migrationMachine> | undefined;
  const sendLater = (ev: MigrationEvent) => queueMicrotask(() => actor?.send(ev));

  const timers = new Set<unknown>();
  /** Keeps retrying an idempotent step while the chart is still in `phase`. */
  const retrying = (what: string, phase: MigrationPhase, step: () => Promise<void>) => {
    const attempt = async (n: number): Promise<void> => {
      try {
        await step();
      } catch (err) {
        if (!actor || phaseOf(actor.getSnapshot()) !== phase) return;
        log.warn({ err: String((err as Error).message ?? err), attempt: n }, `${what} failed; retrying`);
        const h: unknown = opts.clock.setTimeout(() => {
          timers.delete(h);
          void attempt(n + 1);
        }, Math.min(5000, 500 * 2 ** Math.min(n, 4)));
        timers.add(h);
      }
    };
    void attempt(1);
  };

  const machine = migrationMachine.provide({
    actions: {
      createTargetPod: () => retrying('creating the target pod', 'Scheduling', () => session.createTargetPod()),
      requestAbort: ({ context }) => {
        const reason = context.abortReason ?? 'aborted';
        session.requestAbort(reason).then(
          (nothingToWaitFor) => {
            if (nothingToWaitFor) sendLater({ type: 'MIGRATION_ABORTED', reason });
          },
          (err: unknown) => log.warn({ err: String((err as Error).message ?? err) }, 'abort request not delivered; will retry'),
        );
      },
      startPostCopy: () => {
        session.startPostCopy().catch((err: unknown) => log.error({ err: String(err) }, 'could not switch to post-copy'));
      },
      recordSuccess: () => session.recordSuccess(),
      recordFailure: ({ context }) => {
        void opts.ordered(() =>
          session.recordFailure(context.failureReason ?? 'unknown failure', context.abortRequested).catch((err: unknown) => {
            log.error({ err: String((err as Error).message ?? err) }, 'cleanup after failure incomplete');
          }),
        );
      },
    },
    actors: {
      handOff: fromPromise<void, MigrationActorInput>(async () => session.handOff()),
      prepareTarget: fromPromise<{ address: string }, MigrationActorInput>(async () => session.prepareTarget()),
      startSource: fromPromise<void, MigrationActorInput>(async () => session.startSource()),
      finalizeSuccess: fromPromise<void, MigrationActorInput>(async ({ input }) => session.finalizeSuccess(input.mode)),
    },
  });

  actor = createActor(machine, { input: opts.input, clock: opts.clock });
  let last: MigrationPhase | undefined;
  actor.subscribe({
    next: (snap) => {
      const ctx = snap.context;
      // The session mirrors what the chart learned, for the I/O it performs.
      if (ctx.targetNode) session.targetNode = ctx.targetNode;
      if (ctx.targetPod) session.targetPod = ctx.targetPod;
      if (ctx.targetAddress) session.targetAddress = ctx.targetAddress;
      const phase = phaseOf(snap);
      if (phase !== last) {
        last = phase;
        opts.onPhase(phase, { failureReason: ctx.failureReason, abortRequested: ctx.abortRequested });
      }
    },
    error: (err) => log.error({ err: String(err) }, 'migration actor crashed'),
  });
  actor.start();
  return {
    send: (ev) => actor?.send(ev),
    stop: () => {
      for (const h of timers) opts.clock.clearTimeout(h);
      timers.clear();
      actor?.stop();
    },
    phase: () => phaseOf(actor!.getSnapshot()),
  };
}
