/**
 * Runs the migration chart the way the controller will: one actor, a manual
 * clock, and jest mocks in place of every named action and actor, so tests can
 * assert which effects the chart asked for and when.
 */
import { jest } from '@jest/globals';
import { createActor, fromPromise, type Actor } from 'xstate';
import {
  migrationMachine,
  phaseOf,
  type AbortAnswer,
  type Inspection,
  type MigrationActorInput,
  type MigrationContext,
  type MigrationInput,
  type MigrationStats,
  type MigrationTimeouts,
  type PreparedTarget,
} from '../../../statecharts/migration.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { MigrationPhase } from '../../../src/api/vmim.js';

export const GiB = 1024 ** 3;

export const TIMEOUTS: MigrationTimeouts = {
  unschedulableMs: 300_000,
  pendingPodMs: 900_000,
  targetReadyMs: 60_000,
  progressMs: 150_000,
  completionPerGiBMs: 150_000,
  abortRetryMs: 5_000,
  retryMs: 1_000,
  resolveMs: 120_000,
};

export function migrationInput(over: Partial<MigrationInput> = {}, timeouts: Partial<MigrationTimeouts> = {}): MigrationInput {
  return {
    migrationUid: 'uid-1',
    vmiKey: 'default/vm-a',
    attempt: 1,
    memoryBytes: 2 * GiB,
    allowPostCopy: false,
    sourceNode: 'node-a',
    ...over,
    timeouts: { ...TIMEOUTS, ...timeouts },
  };
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** A promise that never settles: an I/O step still in flight. */
export const never = <T>(): Promise<T> => new Promise<T>(() => {});

/** Lets every settled promise deliver its result to the actor. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

type ActionMock = jest.Mock<(args: { context: MigrationContext }) => void>;

/** `first` sets what the first call of an actor answers, for actors invoked the moment the chart starts. */
export function startMigration(input: MigrationInput = migrationInput(), first: { inspect?: Inspection } = {}) {
  const clock = new ManualClock();
  const delays: number[] = [];
  const schedule = clock.setTimeout.bind(clock);
  clock.setTimeout = (fn, ms) => { delays.push(ms); return schedule(fn, ms); };

  // Each action mock records the context it saw, which is what the controller's implementation would read.
  const actionMock = (): ActionMock => jest.fn((_args: { context: MigrationContext }) => {});
  const actions = {
    createTargetPod: actionMock(),
    recordSuccess: actionMock(),
    reportFailure: actionMock(),
    reportUnresolved: actionMock(),
  };
  const actors = {
    handOff: jest.fn(async (_input: MigrationActorInput): Promise<void> => {}),
    prepareTarget: jest.fn(async (_input: MigrationActorInput): Promise<PreparedTarget> => ({ address: '10.0.0.9:49152' })),
    startSource: jest.fn(async (_input: MigrationActorInput): Promise<void> => {}),
    finalizeSuccess: jest.fn(async (_input: MigrationActorInput): Promise<void> => {}),
    requestAbort: jest.fn(async (_input: MigrationActorInput): Promise<AbortAnswer> => ({ state: 'aborting' })),
    startPostCopy: jest.fn(async (_input: MigrationActorInput): Promise<void> => {}),
    // By default nobody answers: the chart must keep asking.
    inspect: jest.fn(async (_input: MigrationActorInput): Promise<Inspection> => ({ kind: 'unknown', why: 'no handler answered' })),
    recordFailure: jest.fn(async (_input: MigrationActorInput): Promise<void> => {}),
  };

  if (first.inspect) actors.inspect.mockResolvedValueOnce(first.inspect);
  const machine = migrationMachine.provide({
    actions,
    actors: {
      handOff: fromPromise<void, MigrationActorInput>(({ input }) => actors.handOff(input)),
      prepareTarget: fromPromise<PreparedTarget, MigrationActorInput>(({ input }) => actors.prepareTarget(input)),
      startSource: fromPromise<void, MigrationActorInput>(({ input }) => actors.startSource(input)),
      finalizeSuccess: fromPromise<void, MigrationActorInput>(({ input }) => actors.finalizeSuccess(input)),
      requestAbort: fromPromise<AbortAnswer, MigrationActorInput>(({ input }) => actors.requestAbort(input)),
      startPostCopy: fromPromise<void, MigrationActorInput>(({ input }) => actors.startPostCopy(input)),
      inspect: fromPromise<Inspection, MigrationActorInput>(({ input }) => actors.inspect(input)),
      recordFailure: fromPromise<void, MigrationActorInput>(({ input }) => actors.recordFailure(input)),
    },
  });

  const actor: Actor<typeof machine> = createActor(machine, { clock, input });
  const phases: MigrationPhase[] = [];
  actor.subscribe((s) => {
    const p = phaseOf(s);
    if (phases[phases.length - 1] !== p) phases.push(p);
  });
  actor.start();

  return {
    actor,
    clock,
    actions,
    actors,
    /** Every delay the chart scheduled, in ms. */
    delays,
    /** Phases in the order they were entered. */
    phases,
    send: (event: Parameters<typeof actor.send>[0]) => actor.send(event),
    value: () => actor.getSnapshot().value,
    context: () => actor.getSnapshot().context,
    phase: () => phaseOf(actor.getSnapshot()),
    matches: (v: Parameters<ReturnType<typeof actor.getSnapshot>['matches']>[0]) => actor.getSnapshot().matches(v),
    /** Advances the clock, then lets promise results land. */
    async advance(ms: number) {
      clock.advance(ms);
      await settle();
    },
    /** Pending → Running with every I/O step succeeding at once. */
    async toRunning() {
      actor.send({ type: 'ADMITTED' });
      actor.send({ type: 'TARGET_POD_SCHEDULED', node: 'node-b', pod: 'virt-launcher-vm-a-target' });
      actor.send({ type: 'TARGET_POD_READY', node: 'node-b', pod: 'virt-launcher-vm-a-target' });
      await settle();
    },
  };
}

export type Harness = ReturnType<typeof startMigration>;

export function stats(dataRemaining: number, iteration = 1): MigrationStats {
  return {
    dataTotal: 2 * GiB,
    dataProcessed: 2 * GiB - dataRemaining,
    dataRemaining,
    memoryBandwidth: 100 * 1024 ** 2,
    dirtyRate: 10 * 1024 ** 2,
    iteration,
  };
}
