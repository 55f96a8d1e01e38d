import { createActor, fromPromise, type Actor } from 'xstate';
import type { MigrationPhase } from '../api/vmim.js';
import { migrationMachine, phaseOf, type AbortAnswer, type Inspection, type MigrationActorInput, type MigrationContext, type MigrationEvent, type MigrationInput } from '../../statecharts/migration.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { Facts, MigrationSession } from './session.js';
import type { PhaseInfo } from './statusWriter.js';

export interface MigrationActorHandle {
  send(event: MigrationEvent): void;
  stop(): void;
  phase(): MigrationPhase;
  /** The chart's context: the one record of this migration's facts. */
  context(): Readonly<MigrationContext>;
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
  /** The arbiter found no answer within its bound: tell the operators. */
  onUnresolved: (why: string) => void;
  /** Undoes what the failed migration left; a rejection is retried by the chart with back-off. */
  recordFailure: (context: Readonly<MigrationContext>) => Promise<void>;
}): MigrationActorHandle {
  const { session } = opts;
  // Read through the session: its logger is re-bound with the phase as the migration moves.
  const log = { warn: (o: object, m: string) => session.log.warn(o, m), error: (o: object, m: string) => session.log.error(o, m) };
  let actor: Actor<typeof migrationMachine> | undefined;

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

  const facts = (c: MigrationActorInput): Facts => c;
  const machine = migrationMachine.provide({
    actions: {
      createTargetPod: () => retrying('creating the target pod', 'Scheduling', () => session.createTargetPod()),
      recordSuccess: ({ context }) => session.recordSuccess(facts(context)),
      reportFailure: ({ context }) => {
        session.event('Warning', context.abortRequested ? 'MigrationAborted' : 'FailedMigration', `Migration of ${session.vmiKey} failed: ${context.failureReason ?? 'unknown failure'}`);
        session.log.warn({ reason: context.failureReason, aborted: context.abortRequested }, 'migration failed; the VM stays on the source');
      },
      reportUnresolved: ({ context }) => opts.onUnresolved(context.unknownWhy ?? 'no handler answered'),
    },
    actors: {
      handOff: fromPromise<void, MigrationActorInput>(async ({ input }) => session.handOff(facts(input))),
      prepareTarget: fromPromise<{ address: string }, MigrationActorInput>(async ({ input }) => session.prepareTarget(facts(input))),
      startSource: fromPromise<void, MigrationActorInput>(async ({ input }) => session.startSource(facts(input))),
      finalizeSuccess: fromPromise<void, MigrationActorInput>(async ({ input }) => session.finalizeSuccess(facts(input), input.mode)),
      requestAbort: fromPromise<AbortAnswer, MigrationActorInput>(async ({ input }) => session.requestAbort(facts(input))),
      startPostCopy: fromPromise<void, MigrationActorInput>(async ({ input }) => {
        try {
          await session.startPostCopy(facts(input));
        } catch (err) {
          log.error({ err: String((err as Error).message ?? err) }, 'could not switch to post-copy; staying in pre-copy');
          throw err;
        }
      }),
      inspect: fromPromise<Inspection, MigrationActorInput>(async ({ input }) => session.inspect(facts(input))),
      recordFailure: fromPromise<void, MigrationActorInput>(async ({ input }) => {
        try {
          await opts.recordFailure(input);
        } catch (err) {
          log.warn({ err: String((err as Error).message ?? err), attempt: input.failureRecords + 1 }, 'cleanup after failure incomplete; retrying');
          throw err;
        }
      }),
    },
  });

  actor = createActor(machine, { input: opts.input, clock: opts.clock });
  let last: MigrationPhase | undefined;
  actor.subscribe({
    next: (snap) => {
      const ctx = snap.context;
      // Admission counts inbound slots by target node: the one fact it needs from the chart.
      if (ctx.targetNode) session.targetNode = ctx.targetNode;
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
    context: () => actor!.getSnapshot().context,
  };
}
