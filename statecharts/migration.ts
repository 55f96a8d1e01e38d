/**
 * The life of one VirtualMachineInstanceMigration, as a statechart.
 *
 * Structure only: every effect is a named action or actor whose real
 * implementation the controller supplies with `migrationMachine.provide(...)`.
 * Top-level states are exactly the VMIM phases (the controller writes the
 * top-level state name into `status.phase`), plus the transient `Resume` that a
 * restarted controller passes through to land in the phase recorded in status.
 * Time only enters through named delays, so an actor run with an injected clock
 * (`createActor(migrationMachine, { clock, input })`) runs in simulated time.
 */
import { and, assign, fromPromise, not, setup, type SnapshotFrom } from 'xstate';
import { describeNode, type ChartNode } from './outline.js';

export type { ChartNode, ChartTransition } from './outline.js';
import { MigrationPhase } from '../src/api/vmim.js';
import type { JobStats } from '../src/hypervisor/driver.js';

export type MigrationMode = 'PreCopy' | 'PostCopy';

export interface MigrationTimeouts {
  /** Target pod continuously unschedulable for this long → Failed. */
  unschedulableMs: number;
  /** Target pod not ready this long after Scheduling began → Failed. */
  pendingPodMs: number;
  /** Limit on each of Scheduled (hand-off) and PreparingTarget. */
  targetReadyMs: number;
  /** No new low of remaining data for this long → abort. 0 = off. */
  progressMs: number;
  /**
   * No progress report at all from the source for this long → ask the arbiter
   * who runs the guest (the source may have lost the job). 0 or absent = off.
   */
  silenceMs?: number;
  /** Completion budget per GiB of guest memory; then post-copy or abort. 0 = off. */
  completionPerGiBMs: number;
  /** Interval at which an abort is re-sent to the source until it answers. */
  abortRetryMs: number;
  /** Back-off before retrying a failed hand-off or finalisation; first delay of the arbiter's re-asking. */
  retryMs: number;
  /**
   * How long the arbiter may stay without an answer before the migration is
   * reported unresolved (an Event and a condition). It keeps asking after that
   * and never fails on its own: failing would remove a target that may hold the guest.
   */
  resolveMs: number;
}

export interface MigrationInput {
  migrationUid: string;
  /** `namespace/name` of the VMI. */
  vmiKey: string;
  attempt: number;
  memoryBytes: number;
  allowPostCopy: boolean;
  timeouts: MigrationTimeouts;
  /** Phase read from the VMIM status when a restarted controller rebuilds the actor. */
  resumePhase?: MigrationPhase;
  /** Mode read from the VMIM status: a Running migration already in post-copy resumes there. */
  mode?: MigrationMode;
  /** Reason read from the VMIM status, so a resumed Failed actor still knows why. */
  failureReason?: string;
  sourceNode?: string;
  targetNode?: string;
  targetPod?: string;
  targetAddress?: string;
}

/** The part of the hypervisor's job statistics the chart looks at. */
export type MigrationStats = Pick<JobStats, 'dataTotal' | 'dataProcessed' | 'dataRemaining' | 'memoryBandwidth' | 'dirtyRate' | 'iteration'>;

export interface MigrationContext {
  migrationUid: string;
  vmiKey: string;
  attempt: number;
  memoryBytes: number;
  allowPostCopy: boolean;
  timeouts: MigrationTimeouts;
  resumePhase?: MigrationPhase;
  mode: MigrationMode;
  sourceNode?: string;
  targetNode?: string;
  targetPod?: string;
  targetAddress?: string;
  /** Set on the way into Failed; what the VMIM condition and the VMI report. */
  failureReason?: string;
  /** A user asked to abort (VMIM deleted or `ferry cancel`), whether or not it could be honoured. */
  abortRequested: boolean;
  /** Why Ferry aborts (or aborted) the migration; becomes the failure reason once the source confirms. */
  abortReason?: string;
  /** Why a requested abort was not honoured (post-copy or completion already under way). */
  abortRefused?: string;
  /** Latest scheduler complaint about the target pod. */
  schedulingMessage?: string;
  /** Last error of a retried step (hand-off, finalisation), kept for the timeout message. */
  retryError?: string;
  /** Lowest dataRemaining seen so far: progress means beating it. */
  lowestRemaining?: number;
  lastStats?: MigrationStats;
  downtimeMs?: number;
  /** The failure the arbiter reports if it finds the guest on the source (what made Ferry unsure). */
  pendingFailure?: string;
  /** How often the arbiter asked in a row without a verdict (drives its back-off). */
  inspections: number;
  /** Why the arbiter could not decide the last time it asked. */
  unknownWhy?: string;
  /** Set once the arbiter has been without a verdict for `resolveMs`. */
  unresolved: boolean;
  /** The source node is confirmed lost (NotReady, no heartbeat). */
  sourceLost: boolean;
  /** The target node is confirmed lost (NotReady, no heartbeat): the migration cannot finish there. */
  targetLost: boolean;
  /** The arbiter said "failed, and the source has no job" once already (it must hold a second time). */
  failureSeen: boolean;
  /** Failed attempts of recordFailure so far (drives its back-off). */
  failureRecords: number;
  /** Last error of recordFailure, while it is retried. */
  failureRecordError?: string;
}

export type MigrationEvent =
  | { type: 'ADMITTED' }
  | { type: 'REJECTED'; reason: string }
  | { type: 'TARGET_POD_UNSCHEDULABLE'; message: string }
  | { type: 'TARGET_POD_SCHEDULED'; node: string; pod: string }
  | { type: 'TARGET_POD_READY'; node: string; pod: string }
  | { type: 'TARGET_POD_GONE'; reason: string }
  | { type: 'PROGRESS'; stats: MigrationStats }
  | { type: 'MIGRATION_COMPLETED'; mode: MigrationMode; downtimeMs: number }
  | { type: 'MIGRATION_FAILED'; reason: string; uncertain?: boolean }
  | { type: 'MIGRATION_ABORTED'; reason: string }
  | { type: 'ABORT'; reason: string }
  | { type: 'VMI_GONE'; reason: string }
  | { type: 'NODE_LOST'; node: string; reason: string }
  | { type: 'TARGET_NODE_LOST'; node: string; reason: string }
  /** The source refused to steer the job: it has none running (over, or lost by a restart). */
  | { type: 'SOURCE_JOB_MISSING'; reason: string };

/** What every I/O actor is given: the migration as it stands when the actor starts. */
export type MigrationActorInput = Readonly<MigrationContext>;

/** What the source answered to an abort request (the handler's `abort` reply state). */
export interface AbortAnswer {
  state: 'aborting' | 'not-found' | 'already-finished' | 'cancelled';
}

/** The arbiter's verdict on where the guest runs (see src/controller/arbiter.ts). */
export interface Inspection {
  kind: 'migrating' | 'completed' | 'failed' | 'unknown';
  why: string;
  /** The source handler's job state for this migration, if it has one. */
  sourceJob?: string | undefined;
  /** The target handler answered that its arrival for this migration was cancelled: nothing to stream to. */
  targetGone?: boolean;
}

export interface PreparedTarget {
  /** Address the source connects to for the memory stream. */
  address: string;
}

const GiB = 1024 ** 3;
/** Node's setTimeout fires at once beyond 2^31-1 ms; no timer of ours may go past it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A new low must beat the old one by this fraction to count (KubeVirt's stall detector uses 4 %). */
export const PROGRESS_MARGIN = 0.04;

const PHASES: readonly MigrationPhase[] = MigrationPhase.options;

function timerMs(ms: number): number {
  return Math.min(Math.max(0, Math.round(ms)), MAX_TIMER_MS);
}

/** "300s", "1.5s": how timeouts appear in failure reasons. */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Completion budget; a guest under 1 GiB still gets one GiB's worth. */
function completionBudgetMs(ctx: Pick<MigrationContext, 'timeouts' | 'memoryBytes'>): number {
  return ctx.timeouts.completionPerGiBMs * Math.max(1, ctx.memoryBytes / GiB);
}

/**
 * Rejects timeouts that would make the chart spin (a zero retry interval) or
 * never fire; the config layer should have caught them, this names the migration.
 */
function checkInput(input: MigrationInput): void {
  const t = input.timeouts;
  const problems: string[] = [];
  for (const key of ['unschedulableMs', 'pendingPodMs', 'targetReadyMs', 'abortRetryMs', 'retryMs', 'resolveMs'] as const) {
    if (!Number.isFinite(t[key]) || t[key] <= 0) problems.push(`${key} must be a positive number of milliseconds (got ${t[key]})`);
  }
  for (const key of ['progressMs', 'completionPerGiBMs', 'silenceMs'] as const) {
    const v = t[key] ?? 0;
    if (!Number.isFinite(v) || v < 0) problems.push(`${key} must be 0 (off) or a positive number of milliseconds (got ${t[key]})`);
  }
  if (!Number.isFinite(input.memoryBytes) || input.memoryBytes < 0) problems.push(`memoryBytes must be a non-negative number (got ${input.memoryBytes})`);
  if (problems.length) {
    throw new Error(`migration ${input.migrationUid} of ${input.vmiKey}: invalid input: ${problems.join('; ')}`);
  }
}

/**
 * A command error that guarantees nothing was started (the handler refused, or
 * the request never left): the same rule as src/bus/rpc.ts isDefinite, read
 * from the error's `definite` mark that the controller's node side sets.
 */
function definite(error: unknown): boolean {
  return (error as { definite?: unknown } | undefined)?.definite === true;
}

function notProvided(name: string): never {
  throw new Error(`not provided: ${name}`);
}

const abortedBy = (reason: string) => `aborted: ${reason}`;
const targetPodDown = (reason: string) => `target pod is down: ${reason}`;
const vmiGone = (reason: string) => `VMI is gone: ${reason}`;

/** A source silent for `silenceMs` is put to the arbiter (see the heartbeat region and post-copy). */
function silenceToArbiter(where: string) {
  return {
    guard: 'silenceWatchEnabled',
    target: '#migration.Running.resolving',
    actions: {
      type: 'beginResolving',
      params: ({ context }: { context: MigrationContext }) => ({ reason: `the source stopped reporting progress for ${seconds(context.timeouts.silenceMs ?? 0)}${where}` }),
    },
  } as const;
}

export const migrationMachine = setup({
  types: {
    context: {} as MigrationContext,
    events: {} as MigrationEvent,
    input: {} as MigrationInput,
  },
  actions: {
    // I/O, supplied by the controller; every one must be idempotent because a
    // resumed actor enters its phase (and runs its entry actions) again.
    createTargetPod: () => {},
    recordSuccess: () => {},
    /** Tells the operators it failed and why (Event + log); it cannot fail. */
    reportFailure: () => {},
    /** Tells the operators the arbiter could not decide within its bound (Event + condition). */
    reportUnresolved: () => {},

    // Bookkeeping.
    fail: assign((_, params: { reason: string }) => ({ failureReason: params.reason })),
    beginAbort: assign(({ context }, params: { reason: string; requested: boolean }) => ({
      // The first cause is the one worth reporting; later ones only pile on.
      abortReason: context.abortReason ?? params.reason,
      abortRequested: context.abortRequested || params.requested,
    })),
    refuseAbort: assign((_, params: { why: string }) => ({ abortRequested: true, abortRefused: params.why })),
    recordSchedulingProblem: assign((_, params: { message: string }) => ({ schedulingMessage: params.message })),
    recordTargetPod: assign((_, params: { node: string; pod: string }) => ({
      targetNode: params.node,
      targetPod: params.pod,
    })),
    recordTargetAddress: assign((_, params: { address: string }) => ({ targetAddress: params.address })),
    recordRetryError: assign((_, params: { message: string }) => ({ retryError: params.message })),
    recordStats: assign((_, params: { stats: MigrationStats }) => ({ lastStats: params.stats })),
    lowerWatermark: assign((_, params: { remaining: number }) => ({ lowestRemaining: params.remaining })),
    recordCompletion: assign((_, params: { mode: MigrationMode; downtimeMs: number }) => ({
      mode: params.mode,
      downtimeMs: params.downtimeMs,
    })),
    enterPostCopy: assign({ mode: 'PostCopy' as const }),
    beginResolving: assign(({ context }, params: { reason?: string }) => ({
      pendingFailure: context.pendingFailure ?? params.reason,
      inspections: 0,
      unresolved: false,
      failureSeen: false,
    })),
    recordUnknown: assign(({ context }, params: { why: string }) => ({ unknownWhy: params.why, inspections: context.inspections + 1 })),
    markUnresolved: assign({ unresolved: true }),
    markSourceLost: assign({ sourceLost: true }),
    markTargetLost: assign({ targetLost: true }),
    markFailureSeen: assign({ failureSeen: true }),
    countFailureRecord: assign(({ context }, params: { message: string }) => ({ failureRecords: context.failureRecords + 1, failureRecordError: params.message })),
    refusePendingAbort: assign(({ context }) =>
      context.abortReason !== undefined && context.abortRefused === undefined
        ? { abortRefused: `abort (${context.abortReason}) not honoured: post-copy had started and the guest already runs on the target node` }
        : {},
    ),
  },
  actors: {
    handOff: fromPromise<void, MigrationActorInput>(async () => notProvided('handOff')),
    prepareTarget: fromPromise<PreparedTarget, MigrationActorInput>(async () => notProvided('prepareTarget')),
    startSource: fromPromise<void, MigrationActorInput>(async () => notProvided('startSource')),
    finalizeSuccess: fromPromise<void, MigrationActorInput>(async () => notProvided('finalizeSuccess')),
    requestAbort: fromPromise<AbortAnswer, MigrationActorInput>(async () => notProvided('requestAbort')),
    startPostCopy: fromPromise<void, MigrationActorInput>(async () => notProvided('startPostCopy')),
    /**
     * Undoes what a failed migration left (target pods, only on the arbiter's word; the
     * VMI's open migrationState). Retried by the chart with back-off until it succeeds.
     */
    recordFailure: fromPromise<void, MigrationActorInput>(async () => notProvided('recordFailure')),
    /** Asks the source and the target handler what runs where and judges it (never throws for an unanswered side). */
    inspect: fromPromise<Inspection, MigrationActorInput>(async () => notProvided('inspect')),
  },
  guards: {
    resumeAt: ({ context }, params: { phase: MigrationPhase }) => context.resumePhase === params.phase,
    // Progress means beating the lowest remaining so far by a margin: a guest that
    // re-dirties its working set makes remaining creep down by crumbs forever.
    madeProgress: ({ context, event }) =>
      event.type === 'PROGRESS' &&
      (context.lowestRemaining === undefined || event.stats.dataRemaining < context.lowestRemaining * (1 - PROGRESS_MARGIN)),
    progressTimeoutEnabled: ({ context }) => context.timeouts.progressMs > 0,
    silenceWatchEnabled: ({ context }) => (context.timeouts.silenceMs ?? 0) > 0,
    completionTimeoutEnabled: ({ context }) => context.timeouts.completionPerGiBMs > 0,
    postCopyAllowed: ({ context }) => context.allowPostCopy,
    definiteError: ({ event }) => definite((event as { error?: unknown }).error),
    abortAnswered: ({ event }, params: { states: ReadonlyArray<AbortAnswer['state']> }) =>
      params.states.includes((event as { output?: AbortAnswer }).output?.state as AbortAnswer['state']),
    verdict: ({ event }, params: { kind: Inspection['kind'] }) => (event as { output?: Inspection }).output?.kind === params.kind,
    verdictWithoutSourceJob: ({ event }, params: { kind: Inspection['kind'] }) => {
      const out = (event as { output?: Inspection }).output;
      return out?.kind === params.kind && out.sourceJob === undefined;
    },
    targetGone: ({ event }) => (event as { output?: Inspection }).output?.targetGone === true,
    abortPending: ({ context }) => context.abortReason !== undefined && context.abortRefused === undefined,
    inPostCopyMode: ({ context }) => context.mode === 'PostCopy',
    failureSeen: ({ context }) => context.failureSeen,
    uncertainFailure: ({ event }) => event.type === 'MIGRATION_FAILED' && event.uncertain === true,
  },
  delays: {
    unschedulableTimeout: ({ context }) => timerMs(context.timeouts.unschedulableMs),
    pendingPodTimeout: ({ context }) => timerMs(context.timeouts.pendingPodMs),
    targetReadyTimeout: ({ context }) => timerMs(context.timeouts.targetReadyMs),
    // A disabled timer is parked at the longest safe delay and its transition is guarded off.
    progressTimeout: ({ context }) =>
      context.timeouts.progressMs > 0 ? timerMs(context.timeouts.progressMs) : MAX_TIMER_MS,
    progressSilence: ({ context }) => ((context.timeouts.silenceMs ?? 0) > 0 ? timerMs(context.timeouts.silenceMs ?? 0) : MAX_TIMER_MS),
    completionTimeout: ({ context }) =>
      context.timeouts.completionPerGiBMs > 0 ? timerMs(completionBudgetMs(context)) : MAX_TIMER_MS,
    abortRetry: ({ context }) => timerMs(context.timeouts.abortRetryMs),
    retryDelay: ({ context }) => timerMs(context.timeouts.retryMs),
    // Exponential from retryMs, capped at the abort interval: a silent node is not hammered.
    resolveRetry: ({ context }) =>
      timerMs(Math.min(Math.max(context.timeouts.abortRetryMs, context.timeouts.retryMs), context.timeouts.retryMs * 2 ** Math.min(Math.max(0, context.inspections - 1), 20))),
    resolveTimeout: ({ context }) => timerMs(context.timeouts.resolveMs),
    // Exponential from retryMs, capped at 30 s: a cleanup blocked by an unknown outcome is retried for good.
    failureRetry: ({ context }) => timerMs(Math.min(30_000, context.timeouts.retryMs * 2 ** Math.min(Math.max(0, context.failureRecords - 1), 20))),
  },
}).createMachine({
  id: 'migration',
  initial: 'Resume',
  context: ({ input }) => {
    checkInput(input);
    return {
      migrationUid: input.migrationUid,
      vmiKey: input.vmiKey,
      attempt: input.attempt,
      memoryBytes: input.memoryBytes,
      allowPostCopy: input.allowPostCopy,
      timeouts: { ...input.timeouts },
      resumePhase: input.resumePhase,
      mode: input.mode ?? 'PreCopy',
      failureReason: input.failureReason,
      sourceNode: input.sourceNode,
      targetNode: input.targetNode,
      targetPod: input.targetPod,
      targetAddress: input.targetAddress,
      abortRequested: false,
      inspections: 0,
      unresolved: false,
      sourceLost: false,
      targetLost: false,
      failureSeen: false,
      failureRecords: 0,
    };
  },
  states: {
    Resume: {
      description: 'Transient: a restored actor re-enters the phase recorded in the VMIM status.',
      always: [
        // From TargetReady on, the handlers may be ahead of the recorded phase: ask them first.
        { guard: { type: 'resumeAt', params: { phase: 'TargetReady' } }, target: 'TargetReady.checking' },
        {
          guard: { type: 'resumeAt', params: { phase: 'Running' } },
          target: 'Running.resolving',
          actions: { type: 'beginResolving', params: {} },
        },
        ...PHASES.map((phase) => ({ guard: { type: 'resumeAt' as const, params: { phase } }, target: phase })),
        { target: 'Pending' },
      ],
    },

    Pending: {
      description: 'Waiting for the limits to grant a slot.',
      on: {
        ADMITTED: 'Scheduling',
        REJECTED: { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: event.reason }) } },
        ABORT: {
          target: 'Failed',
          actions: [
            { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) },
            { type: 'fail', params: ({ event }) => ({ reason: abortedBy(event.reason) }) },
          ],
        },
        VMI_GONE: { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: vmiGone(event.reason) }) } },
      },
    },

    Scheduling: {
      description: 'The target pod exists and waits for a node.',
      entry: 'createTargetPod',
      initial: 'waiting',
      states: {
        waiting: {
          on: {
            TARGET_POD_UNSCHEDULABLE: {
              target: 'unschedulable',
              actions: { type: 'recordSchedulingProblem', params: ({ event }) => ({ message: event.message }) },
            },
          },
        },
        unschedulable: {
          on: {
            // Repeated complaints refresh the message but must not restart the clock.
            TARGET_POD_UNSCHEDULABLE: {
              actions: { type: 'recordSchedulingProblem', params: ({ event }) => ({ message: event.message }) },
            },
          },
          after: {
            unschedulableTimeout: {
              target: '#migration.Failed',
              actions: {
                type: 'fail',
                params: ({ context }) => ({
                  reason: `target pod unschedulable for ${seconds(context.timeouts.unschedulableMs)}: ${context.schedulingMessage ?? 'no reason given'}`,
                }),
              },
            },
          },
        },
      },
      on: {
        TARGET_POD_SCHEDULED: {
          target: '.waiting',
          actions: { type: 'recordTargetPod', params: ({ event }) => ({ node: event.node, pod: event.pod }) },
        },
        TARGET_POD_READY: {
          target: 'Scheduled',
          actions: { type: 'recordTargetPod', params: ({ event }) => ({ node: event.node, pod: event.pod }) },
        },
        TARGET_POD_GONE: { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: targetPodDown(event.reason) }) } },
        ABORT: {
          target: 'Failed',
          actions: [
            { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) },
            { type: 'fail', params: ({ event }) => ({ reason: abortedBy(event.reason) }) },
          ],
        },
        VMI_GONE: { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: vmiGone(event.reason) }) } },
        // Nothing has started on the source: the guest stays there, and the target goes with its node.
        TARGET_NODE_LOST: { target: 'Failed', actions: ['markTargetLost', { type: 'fail', params: ({ event }) => ({ reason: event.reason }) }] },
      },
      after: {
        pendingPodTimeout: {
          target: 'Failed',
          actions: {
            type: 'fail',
            params: ({ context }) => ({ reason: `target pod did not become ready within ${seconds(context.timeouts.pendingPodMs)}` }),
          },
        },
      },
    },

    Scheduled: {
      description: 'Target pod ready; the hand-off to the target node is recorded on the VMI.',
      initial: 'handingOff',
      states: {
        handingOff: {
          invoke: {
            id: 'handOff',
            src: 'handOff',
            input: ({ context }) => context,
            onDone: '#migration.PreparingTarget',
            onError: [
              // The VM is not where the migration was admitted from: nothing has started, so fail now.
              {
                guard: 'definiteError',
                target: '#migration.Failed',
                actions: { type: 'fail', params: ({ event }) => ({ reason: errorMessage(event.error) }) },
              },
              // A transient API error must not fail the migration; the phase timeout bounds the retries.
              {
                target: 'backoff',
                actions: { type: 'recordRetryError', params: ({ event }) => ({ message: errorMessage(event.error) }) },
              },
            ],
          },
        },
        backoff: { after: { retryDelay: 'handingOff' } },
      },
      on: {
        TARGET_POD_GONE: { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: targetPodDown(event.reason) }) } },
        ABORT: {
          target: 'Failed',
          actions: [
            { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) },
            { type: 'fail', params: ({ event }) => ({ reason: abortedBy(event.reason) }) },
          ],
        },
        VMI_GONE: { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: vmiGone(event.reason) }) } },
        // Nothing has started on the source: the guest stays there, and the target goes with its node.
        TARGET_NODE_LOST: { target: 'Failed', actions: ['markTargetLost', { type: 'fail', params: ({ event }) => ({ reason: event.reason }) }] },
      },
      after: {
        targetReadyTimeout: {
          target: 'Failed',
          actions: {
            type: 'fail',
            params: ({ context }) => ({
              reason:
                `target was not handed off within ${seconds(context.timeouts.targetReadyMs)}` +
                (context.retryError ? ` (last error: ${context.retryError})` : ''),
            }),
          },
        },
      },
    },

    PreparingTarget: {
      description: 'The target handler starts the receiving side; nothing has started on the source yet.',
      invoke: {
        id: 'prepareTarget',
        src: 'prepareTarget',
        input: ({ context }) => context,
        onDone: {
          target: 'TargetReady',
          actions: { type: 'recordTargetAddress', params: ({ event }) => ({ address: event.output.address }) },
        },
        onError: {
          target: 'Failed',
          actions: { type: 'fail', params: ({ event }) => ({ reason: `target preparation failed: ${errorMessage(event.error)}` }) },
        },
      },
      on: {
        TARGET_POD_GONE: { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: targetPodDown(event.reason) }) } },
        ABORT: {
          target: 'Failed',
          actions: [
            { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) },
            { type: 'fail', params: ({ event }) => ({ reason: abortedBy(event.reason) }) },
          ],
        },
        VMI_GONE: { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: vmiGone(event.reason) }) } },
        // Nothing has started on the source: the guest stays there, and the target goes with its node.
        TARGET_NODE_LOST: { target: 'Failed', actions: ['markTargetLost', { type: 'fail', params: ({ event }) => ({ reason: event.reason }) }] },
      },
      after: {
        targetReadyTimeout: {
          target: 'Failed',
          actions: {
            type: 'fail',
            params: ({ context }) => ({ reason: `target was not ready within ${seconds(context.timeouts.targetReadyMs)}` }),
          },
        },
      },
    },

    TargetReady: {
      description: 'The source handler is asked to start streaming to the target.',
      initial: 'starting',
      states: {
        // Only after a restart: the start request may have reached the source before
        // the phase after it was written, so ask before sending it again.
        checking: {
          invoke: {
            id: 'inspectOnResume',
            src: 'inspect',
            input: ({ context }) => context,
            onDone: [
              { guard: { type: 'verdict', params: { kind: 'migrating' } }, target: '#migration.Running.migrating' },
              {
                guard: { type: 'verdict', params: { kind: 'completed' } },
                target: '#migration.Running.completing',
                actions: { type: 'recordCompletion', params: ({ context }) => ({ mode: context.mode, downtimeMs: context.downtimeMs ?? 0 }) },
              },
              // Nothing started, but the target was torn down meanwhile (by another replica's cleanup): starting
              // now would stream into nothing. Fail; the guest stays on its source.
              {
                guard: and([{ type: 'verdictWithoutSourceJob' as const, params: { kind: 'failed' as const } }, 'targetGone']),
                target: '#migration.Failed',
                actions: { type: 'fail', params: { reason: 'the target was torn down while the controller restarted; the source was never started' } },
              },
              // The guest runs on the source and the source never heard of this migration: nothing started.
              { guard: { type: 'verdictWithoutSourceJob', params: { kind: 'failed' } }, target: 'starting' },
              {
                target: '#migration.Running.resolving',
                actions: { type: 'beginResolving', params: { reason: 'the controller restarted while the source was being started' } },
              },
            ],
            onError: {
              target: '#migration.Running.resolving',
              actions: { type: 'beginResolving', params: { reason: 'the controller restarted while the source was being started' } },
            },
          },
        },
        starting: {
          invoke: {
            id: 'startSource',
            src: 'startSource',
            input: ({ context }) => context,
            onDone: '#migration.Running',
            onError: [
              // Refused, or never sent: nothing runs on the source.
              {
                guard: 'definiteError',
                target: '#migration.Failed',
                actions: { type: 'fail', params: ({ event }) => ({ reason: `source failed to start: ${errorMessage(event.error)}` }) },
              },
              // Timed out or lost on the way: the source may be streaming. Find out, never assume.
              {
                target: '#migration.Running.resolving',
                actions: { type: 'beginResolving', params: ({ event }) => ({ reason: `source failed to start: ${errorMessage(event.error)}` }) },
              },
            ],
          },
        },
      },
      on: {
        // The start request may already have reached the source: from here on an
        // abort must be confirmed by the source, never assumed.
        ABORT: {
          target: 'Running.aborting',
          actions: { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) },
        },
        TARGET_POD_GONE: {
          target: 'Running.aborting',
          actions: { type: 'beginAbort', params: ({ event }) => ({ reason: targetPodDown(event.reason), requested: false }) },
        },
        VMI_GONE: {
          target: 'Running.aborting',
          actions: { type: 'beginAbort', params: ({ event }) => ({ reason: vmiGone(event.reason), requested: false }) },
        },
        NODE_LOST: {
          target: 'Running.resolving',
          actions: ['markSourceLost', { type: 'beginResolving', params: ({ event }) => ({ reason: event.reason }) }],
        },
        // The start may have reached the source: have it cancelled, never assume it did not.
        TARGET_NODE_LOST: {
          target: 'Running.aborting',
          actions: ['markTargetLost', { type: 'beginAbort', params: ({ event }) => ({ reason: event.reason, requested: false }) }],
        },
        // The source may report before its start acknowledgement arrives.
        MIGRATION_COMPLETED: {
          target: 'Running.completing',
          actions: { type: 'recordCompletion', params: ({ event }) => ({ mode: event.mode, downtimeMs: event.downtimeMs }) },
        },
        MIGRATION_FAILED: [
          {
            guard: 'uncertainFailure',
            target: 'Running.resolving',
            actions: { type: 'beginResolving', params: ({ event }) => ({ reason: event.reason }) },
          },
          { target: 'Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: event.reason }) } },
        ],
        MIGRATION_ABORTED: {
          target: 'Failed',
          actions: { type: 'fail', params: ({ context, event }) => ({ reason: context.abortReason ?? event.reason }) },
        },
      },
    },

    Running: {
      description: 'Memory is streaming from source to target.',
      initial: 'migrating',
      states: {
        migrating: {
          // Two clocks run side by side: one for the data (stalled pre-copy), one for the
          // source's reports (a source that went quiet may have lost the job).
          type: 'parallel',
          states: {
            stall: {
              initial: 'progressWindow',
              states: {
                // Re-entered on every new low of remaining data, which restarts the progress timer.
                progressWindow: {
                  on: {
                    PROGRESS: [
                      {
                        guard: 'madeProgress',
                        target: 'progressWindow',
                        reenter: true,
                        actions: [
                          { type: 'recordStats', params: ({ event }) => ({ stats: event.stats }) },
                          { type: 'lowerWatermark', params: ({ event }) => ({ remaining: event.stats.dataRemaining }) },
                        ],
                      },
                      { actions: { type: 'recordStats', params: ({ event }) => ({ stats: event.stats }) } },
                    ],
                  },
                  after: {
                    // A stalled pre-copy finishes in post-copy where the policy allows it, as on completion timeout.
                    progressTimeout: [
                      { guard: and(['progressTimeoutEnabled', 'postCopyAllowed']), target: '#migration.Running.postCopy' },
                      {
                        guard: 'progressTimeoutEnabled',
                        target: '#migration.Running.aborting',
                        actions: {
                          type: 'beginAbort',
                          params: ({ context }) => ({
                            reason: `live migration stuck for ${seconds(context.timeouts.progressMs)} and has been aborted`,
                            requested: false,
                          }),
                        },
                      },
                    ],
                  },
                },
              },
            },
            heartbeat: {
              initial: 'listening',
              states: {
                // Re-entered on every report, which restarts the silence timer. A restarted source
                // handler that lost the job (or a dead one) sends none and never will: ask who runs
                // the guest instead of waiting out the progress timeout.
                listening: {
                  on: { PROGRESS: { target: 'listening', reenter: true } },
                  after: {
                    progressSilence: silenceToArbiter(''),
                  },
                },
              },
            },
          },
          after: {
            completionTimeout: [
              { guard: and(['completionTimeoutEnabled', 'postCopyAllowed']), target: 'postCopy' },
              {
                guard: and(['completionTimeoutEnabled', not('postCopyAllowed')]),
                target: 'aborting',
                actions: {
                  type: 'beginAbort',
                  params: ({ context }) => ({
                    reason: `migration not completed after ${seconds(completionBudgetMs(context))}`,
                    requested: false,
                  }),
                },
              },
            ],
          },
          on: {
            ABORT: {
              target: 'aborting',
              actions: { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) },
            },
            TARGET_POD_GONE: {
              target: 'aborting',
              actions: { type: 'beginAbort', params: ({ event }) => ({ reason: targetPodDown(event.reason), requested: false }) },
            },
            VMI_GONE: {
              target: 'aborting',
              actions: { type: 'beginAbort', params: ({ event }) => ({ reason: vmiGone(event.reason), requested: false }) },
            },
            NODE_LOST: {
              target: 'resolving',
              actions: ['markSourceLost', { type: 'beginResolving', params: ({ event }) => ({ reason: event.reason }) }],
            },
            // Its result is on its way, or was lost with a restart: ask now rather than wait for the silence.
            SOURCE_JOB_MISSING: {
              target: 'resolving',
              actions: { type: 'beginResolving', params: ({ event }) => ({ reason: event.reason }) },
            },
            // Pre-copy to a dead target can never finish; the guest still runs on the source.
            TARGET_NODE_LOST: {
              target: 'aborting',
              actions: ['markTargetLost', { type: 'beginAbort', params: ({ event }) => ({ reason: event.reason, requested: false }) }],
            },
          },
        },

        aborting: {
          description: 'Asking the source to cancel, again and again, until it reports a result.',
          // Never give up from here: leaving before the source confirms could leave the VM on two nodes.
          initial: 'requesting',
          states: {
            requesting: {
              invoke: {
                id: 'requestAbort',
                src: 'requestAbort',
                input: ({ context }) => context,
                onDone: [
                  // No record, or already over: the result may be lost or queued. Ask both sides
                  // what runs where instead of reading "no record" as "nothing ran".
                  {
                    guard: { type: 'abortAnswered', params: { states: ['not-found', 'already-finished'] } },
                    target: '#migration.Running.resolving',
                    actions: { type: 'beginResolving', params: ({ context }) => ({ reason: context.abortReason ?? 'aborted' }) },
                  },
                  { target: 'waiting' },
                ],
                onError: 'waiting',
              },
            },
            waiting: { after: { abortRetry: 'requesting' } },
          },
          on: {
            PROGRESS: { actions: { type: 'recordStats', params: ({ event }) => ({ stats: event.stats }) } },
            ABORT: {
              actions: { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) },
            },
            NODE_LOST: {
              target: 'resolving',
              actions: ['markSourceLost', { type: 'beginResolving', params: ({ context }) => ({ reason: context.abortReason ?? 'aborted' }) }],
            },
            TARGET_NODE_LOST: { actions: 'markTargetLost' },
          },
        },

        postCopy: {
          description: 'The guest runs on the target and pulls its remaining pages; no timeouts, no abort.',
          initial: 'switching',
          states: {
            // The switch is believed only once the source confirms it; until then an abort waits for the answer.
            switching: {
              invoke: {
                id: 'startPostCopy',
                src: 'startPostCopy',
                input: ({ context }) => context,
                onDone: 'switched',
                onError: [
                  { guard: 'abortPending', target: '#migration.Running.aborting' },
                  {
                    target: '#migration.Running.migrating',
                    actions: { type: 'recordRetryError', params: ({ event }) => ({ message: `post-copy switch failed: ${errorMessage(event.error)}` }) },
                  },
                ],
              },
              on: {
                ABORT: { actions: { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) } },
              },
            },
            switched: {
              // Re-entered on every report (its entry actions are idempotent), which restarts the silence
              // timer: post-copy has no other timer, and a source that lost the job would leave it here for good.
              entry: ['enterPostCopy', 'refusePendingAbort'],
              on: {
                PROGRESS: { target: 'switched', reenter: true, actions: { type: 'recordStats', params: ({ event }) => ({ stats: event.stats }) } },
                ABORT: {
                  actions: {
                    type: 'refuseAbort',
                    params: ({ event }) => ({
                      why: `abort (${event.reason}) not honoured: post-copy has started and the guest already runs on the target node`,
                    }),
                  },
                },
              },
              after: {
                progressSilence: silenceToArbiter(' in post-copy'),
              },
            },
          },
          on: {
            PROGRESS: { actions: { type: 'recordStats', params: ({ event }) => ({ stats: event.stats }) } },
            VMI_GONE: {
              target: 'aborting',
              actions: { type: 'beginAbort', params: ({ event }) => ({ reason: vmiGone(event.reason), requested: false }) },
            },
            NODE_LOST: {
              target: 'resolving',
              actions: ['markSourceLost', { type: 'beginResolving', params: ({ event }) => ({ reason: event.reason }) }],
            },
            // The guest ran on the target and cannot be pulled back: only the source's result
            // says how it ended. Nothing is removed on Ferry's guess.
            TARGET_NODE_LOST: { actions: 'markTargetLost' },
          },
        },

        resolving: {
          description:
            'Ferry does not know how the migration ended: it asks the source and the target what runs where, ' +
            'with back-off, and follows the answer. It never fails on a silence.',
          initial: 'asking',
          states: {
            asking: {
              invoke: {
                id: 'inspect',
                src: 'inspect',
                input: ({ context }) => context,
                onDone: [
                  {
                    guard: { type: 'verdict', params: { kind: 'completed' } },
                    target: '#migration.Running.completing',
                    actions: { type: 'recordCompletion', params: ({ context }) => ({ mode: context.mode, downtimeMs: context.downtimeMs ?? 0 }) },
                  },
                  {
                    guard: and([{ type: 'verdict' as const, params: { kind: 'migrating' as const } }, 'abortPending']),
                    target: '#migration.Running.aborting',
                  },
                  {
                    guard: and([{ type: 'verdict' as const, params: { kind: 'migrating' as const } }, 'inPostCopyMode']),
                    target: '#migration.Running.postCopy.switched',
                  },
                  { guard: { type: 'verdict', params: { kind: 'migrating' } }, target: '#migration.Running.migrating' },
                  // "The source has no job" may only mean a start request still on its way in the
                  // handler: believe it once it holds after a full abort interval, never at first sight.
                  {
                    guard: and([{ type: 'verdictWithoutSourceJob' as const, params: { kind: 'failed' as const } }, not('failureSeen')]),
                    target: 'confirming',
                    actions: 'markFailureSeen',
                  },
                  {
                    guard: { type: 'verdict', params: { kind: 'failed' } },
                    target: '#migration.Failed',
                    actions: {
                      type: 'fail',
                      params: ({ context, event }) => ({ reason: context.pendingFailure ?? `migration ended without a result: ${event.output.why}` }),
                    },
                  },
                  { target: 'waiting', actions: { type: 'recordUnknown', params: ({ event }) => ({ why: event.output.why }) } },
                ],
                onError: { target: 'waiting', actions: { type: 'recordUnknown', params: ({ event }) => ({ why: errorMessage(event.error) }) } },
              },
            },
            waiting: { after: { resolveRetry: 'asking' } },
            confirming: { after: { abortRetry: 'asking' } },
          },
          after: {
            // The bound: say so loudly, and keep asking. Nothing here deletes anything.
            resolveTimeout: { actions: ['markUnresolved', 'reportUnresolved'] },
          },
          on: {
            PROGRESS: { actions: { type: 'recordStats', params: ({ event }) => ({ stats: event.stats }) } },
            MIGRATION_FAILED: [
              { guard: 'uncertainFailure' },
              { target: '#migration.Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: event.reason }) } },
            ],
            // Remembered: if the source turns out to be still migrating, the abort is sent then.
            ABORT: {
              actions: { type: 'beginAbort', params: ({ event }) => ({ reason: abortedBy(event.reason), requested: true }) },
            },
            NODE_LOST: { actions: 'markSourceLost' },
            // If the source turns out to be still streaming, it is told to stop: the target is gone.
            TARGET_NODE_LOST: {
              actions: ['markTargetLost', { type: 'beginAbort', params: ({ event }) => ({ reason: event.reason, requested: false }) }],
            },
          },
        },

        completing: {
          description: 'The guest runs on the target: the VMI is moved there and the source pod removed.',
          initial: 'finalizing',
          states: {
            finalizing: {
              invoke: {
                id: 'finalizeSuccess',
                src: 'finalizeSuccess',
                input: ({ context }) => context,
                onDone: '#migration.Succeeded',
                onError: {
                  target: 'backoff',
                  actions: { type: 'recordRetryError', params: ({ event }) => ({ message: errorMessage(event.error) }) },
                },
              },
            },
            backoff: { after: { retryDelay: 'finalizing' } },
          },
          on: {
            ABORT: {
              actions: {
                type: 'refuseAbort',
                params: ({ event }) => ({
                  why: `abort (${event.reason}) not honoured: the migration has completed and the guest runs on the target node`,
                }),
              },
            },
            // The guest ran on the target: it went with the node. The finalisation keeps
            // trying (the VMI must name where the guest was); the node's owner decides next.
            TARGET_NODE_LOST: { actions: 'markTargetLost' },
            // Nothing left to move the VMI onto; retrying would never end.
            VMI_GONE: {
              target: '#migration.Failed',
              actions: { type: 'fail', params: ({ event }) => ({ reason: vmiGone(event.reason) }) },
            },
            // The outcome is known; a late or repeated result changes nothing.
            MIGRATION_COMPLETED: {},
            MIGRATION_FAILED: {},
            MIGRATION_ABORTED: {},
          },
        },
      },
      // The source's result settles the migration from every sub-state that streams or asks
      // (migrating, aborting, postCopy, resolving); completion wins over an abort, as the
      // guest already runs on the target. `resolving` keeps an uncertain failure to itself.
      on: {
        MIGRATION_COMPLETED: {
          target: '.completing',
          actions: { type: 'recordCompletion', params: ({ event }) => ({ mode: event.mode, downtimeMs: event.downtimeMs }) },
        },
        MIGRATION_FAILED: [
          {
            guard: 'uncertainFailure',
            target: '.resolving',
            actions: { type: 'beginResolving', params: ({ event }) => ({ reason: event.reason }) },
          },
          { target: '#migration.Failed', actions: { type: 'fail', params: ({ event }) => ({ reason: event.reason }) } },
        ],
        MIGRATION_ABORTED: {
          target: '#migration.Failed',
          actions: { type: 'fail', params: ({ context, event }) => ({ reason: context.abortReason ?? event.reason }) },
        },
      },
    },

    Succeeded: { type: 'final', entry: 'recordSuccess' },
    Failed: {
      description: 'The guest stays on the source: what the migration left is undone, retried until it is.',
      entry: 'reportFailure',
      initial: 'recording',
      states: {
        recording: {
          invoke: {
            id: 'recordFailure',
            src: 'recordFailure',
            input: ({ context }) => context,
            onDone: 'recorded',
            onError: {
              target: 'backoff',
              actions: { type: 'countFailureRecord', params: ({ event }) => ({ message: errorMessage(event.error) }) },
            },
          },
        },
        backoff: { after: { failureRetry: 'recording' } },
        recorded: { type: 'final' },
      },
    },
  },
});

export type MigrationSnapshot = SnapshotFrom<typeof migrationMachine>;

/** The VMIM phase a snapshot stands for: its top-level state. */
export function phaseOf(snapshot: { value: unknown }): MigrationPhase {
  const value = snapshot.value;
  const top = typeof value === 'string' ? value : value && typeof value === 'object' ? Object.keys(value)[0] : undefined;
  // Resume is transient; a snapshot can only rest there if it has not started yet.
  if (top === 'Resume') return 'Pending';
  if (top && (PHASES as readonly string[]).includes(top)) return top as MigrationPhase;
  throw new Error(`migration snapshot has no phase: ${JSON.stringify(value)}`);
}

/**
 * A plain-data outline of the chart (states, transitions, named actions,
 * guards, actors and timers) for rendering diagrams in the docs.
 */
export function describeChart(): ChartNode {
  return describeNode(migrationMachine.root);
}
