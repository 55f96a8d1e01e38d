/**
 * The life of one MaintenanceWindow runbook, as a statechart.
 *
 * Structure only: I/O (planning on live cluster data, Kubernetes Events,
 * removing the finalizer) is named actors and actions the controller supplies
 * with `runbookMachine.provide(...)`; bookkeeping is pure `assign`s of what the
 * events carry. The controller converges nodes (cordon, taint, label, release)
 * and status from the context after every transition, so the chart never
 * waits on an API call to decide.
 *
 * Top level (the runbook's phase): Pending → Waiting (outside the window) →
 * Running (batches, or Paused) → Completed | WindowClosed, with Failed for a
 * spec that cannot be acted on and Deleting for a deleted runbook. Running has
 * three regions:
 *  - batch: cordon+taint a batch → Evacuating → InMaintenance (every node
 *    ready for maintenance, waiting for "done") → BetweenBatches → next batch;
 *  - gate: Open / Paused, following `spec.paused` (no new batch while paused;
 *    nodes already started carry on);
 *  - window: Open until the window's end, then Over.
 * When the window is over (or nothing more fits in it) the runbook is Closing:
 * evacuations in progress are stopped — no new migration starts, the ones in
 * flight finish or abort on their own — and each such node is released once
 * nothing is in flight from it; nodes never started are Skipped.
 */
import { and, assign, fromPromise, setup, stateIn, type SnapshotFrom } from 'xstate';
import { describeNode, type ChartNode } from './outline.js';

export type { ChartNode, ChartTransition } from './outline.js';
import type { NodeProgress, PlanSummary, RunbookPhase } from '../src/api/maintenanceWindow.js';

export interface WindowTimes {
  /** Epoch ms. */
  start: number;
  end: number;
}

export interface RunbookInput {
  name: string;
  recurring: boolean;
  paused: boolean;
  /** Restarted controller: what the status says. */
  resumePhase?: RunbookPhase;
  /** The object carries a deletionTimestamp. */
  deleting?: boolean;
  window?: WindowTimes;
  nodes?: NodeProgress[];
  plan?: PlanSummary;
  eta?: number;
}

export interface RunbookContext {
  name: string;
  recurring: boolean;
  /** `spec.paused`. */
  paused: boolean;
  resumePhase?: RunbookPhase;
  resumeDeleting: boolean;
  /** The window occurrence worked in or waited for; undefined when none is left. */
  window?: WindowTimes;
  /** When the last plan was made (epoch ms). */
  plannedAt?: number;
  nodes: NodeProgress[];
  plan?: PlanSummary;
  /** Predicted end (epoch ms). */
  eta?: number;
  /** Why the runbook failed, or why the last planning attempt did. */
  error?: string;
}

/** What planning the whole runbook gives. */
export interface PlanOutcome {
  plannedAt: number;
  /** Undefined: no occurrence of the window is left. */
  window?: WindowTimes;
  recurring: boolean;
  nodes: NodeProgress[];
  plan?: PlanSummary;
  eta?: number;
}

/** What planning the next batch gives: the nodes with the batch started, skipped or deferred. */
export interface BatchOutcome {
  /** Every node, the batch's now Evacuating. */
  nodes: NodeProgress[];
  /** The nodes started by this batch (empty: nothing more fits in this window). */
  started: string[];
  eta?: number;
}

export type RunbookEvent =
  | { type: 'NODE_EVACUATED'; node: string; at: string; vmsMoved: number; staying: string[] }
  | { type: 'NODE_DONE'; node: string; at: string }
  /** A node whose evacuation was stopped has nothing in flight any more. */
  | { type: 'NODE_SETTLED'; node: string; at: string; vmsLeft: number }
  | { type: 'SPEC_CHANGED'; paused: boolean }
  | { type: 'WINDOW_CHANGED'; window: WindowTimes }
  | { type: 'DELETE' };

export type RunbookActorInput = Readonly<RunbookContext>;

/** Node's setTimeout fires at once beyond 2^31-1 ms; longer waits re-arm (the controller re-creates the actor daily). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
const RETRY_MS = 5000;

function timerMs(ms: number): number {
  return Math.min(Math.max(0, Math.round(ms)), MAX_TIMER_MS);
}

function notProvided(name: string): never {
  throw new Error(`not provided: ${name}`);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function updateNode(nodes: NodeProgress[], name: string, change: (n: NodeProgress) => NodeProgress): NodeProgress[] {
  return nodes.map((n) => (n.name === name ? change(n) : n));
}

function nodeOf(context: RunbookContext, name: string): NodeProgress | undefined {
  return context.nodes.find((n) => n.name === name);
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The window delays measured on `now` (the controller passes its injected clock's); the chart's own use the system clock. */
export function runbookDelays(now: () => number) {
  return {
    untilWindowOpens: ({ context }: { context: RunbookContext }) => timerMs((context.window?.start ?? now()) - now()),
    untilWindowCloses: ({ context }: { context: RunbookContext }) => timerMs((context.window?.end ?? now()) - now()),
    retryDelay: () => RETRY_MS,
  };
}

function settled(n: NodeProgress, at: string, vmsLeft: number, why: string, requeue: boolean): NodeProgress {
  const { interrupted: _, ...rest } = n;
  if (vmsLeft === 0) return { ...rest, phase: 'ReadyForMaintenance', readyAt: at, reason: `${why} as it emptied; ready for maintenance` };
  const left = `${plural(vmsLeft, 'VM')} not moved stay on it`;
  if (requeue) return { ...rest, phase: 'Pending', reason: `${why} mid-evacuation (${left}); it starts again in the next window` };
  return { ...rest, phase: 'Skipped', finishedAt: at, reason: `${why} mid-evacuation: ${left}; every migration in flight ended, none was left half-done` };
}

export const runbookMachine = setup({
  types: {
    context: {} as RunbookContext,
    events: {} as RunbookEvent,
    input: {} as RunbookInput,
  },
  actions: {
    // I/O, supplied by the controller: Kubernetes Events, one sentence each.
    announceBatch: () => {},
    announceReady: () => {},
    announceDone: () => {},
    announceStopping: () => {},
    announceSettled: () => {},
    announceLeftInMaintenance: () => {},
    announceFinished: () => {},

    // Bookkeeping.
    adoptPlan: assign((_, params: { outcome: PlanOutcome }) => {
      const o = params.outcome;
      return { plannedAt: o.plannedAt, window: o.window, recurring: o.recurring, nodes: o.nodes, plan: o.plan, eta: o.eta, error: undefined };
    }),
    adoptBatch: assign((_, params: { outcome: BatchOutcome }) => ({
      nodes: params.outcome.nodes,
      eta: params.outcome.eta,
      error: undefined,
    })),
    adoptSpec: assign(({ event }) => (event.type === 'SPEC_CHANGED' ? { paused: event.paused } : {})),
    adoptWindow: assign(({ event }) => (event.type === 'WINDOW_CHANGED' ? { window: event.window } : {})),
    recordError: assign((_, params: { error: unknown }) => ({ error: errorMessage(params.error) })),
    markReady: assign(({ context, event }) => {
      if (event.type !== 'NODE_EVACUATED') return {};
      const stay = event.staying.length > 0 ? `; ${plural(event.staying.length, 'VM')} stay: ${event.staying.join(', ')}` : '';
      return {
        nodes: updateNode(context.nodes, event.node, (n) => ({
          ...n,
          phase: 'ReadyForMaintenance',
          readyAt: event.at,
          vmsMoved: event.vmsMoved,
          vmsStaying: event.staying.length,
          reason: `empty${stay}; ready for maintenance`,
        })),
      };
    }),
    markDone: assign(({ context, event }) => {
      if (event.type !== 'NODE_DONE') return {};
      return { nodes: updateNode(context.nodes, event.node, (n) => ({ ...n, phase: 'Done', finishedAt: event.at, reason: 'maintenance done; node back in service' })) };
    }),
    interruptEvacuations: assign(({ context }, params: { why: string }) => ({
      nodes: context.nodes.map((n) =>
        n.phase === 'Evacuating' && !n.interrupted
          ? { ...n, interrupted: true, reason: `${params.why}: no new migration starts; released once the migrations in flight end` }
          : n,
      ),
    })),
    settleInterrupted: assign(({ context, event }, params: { why: string; requeue: boolean }) => {
      if (event.type !== 'NODE_SETTLED') return {};
      return { nodes: updateNode(context.nodes, event.node, (n) => settled(n, event.at, event.vmsLeft, params.why, params.requeue)) };
    }),
    skipPending: assign(({ context }, params: { reason: string }) => ({
      nodes: context.nodes.map((n) => (n.phase === 'Pending' ? { ...n, phase: 'Skipped' as const, reason: params.reason } : n)),
    })),
  },
  actors: {
    makePlan: fromPromise<PlanOutcome, { context: RunbookActorInput; after?: WindowTimes }>(async () => notProvided('makePlan')),
    planNextBatch: fromPromise<BatchOutcome, RunbookActorInput>(async () => notProvided('planNextBatch')),
    removeFinalizer: fromPromise<void, RunbookActorInput>(async () => notProvided('removeFinalizer')),
  },
  guards: {
    resumeAt: ({ context }, params: { phases: RunbookPhase[] }) => context.resumePhase !== undefined && params.phases.includes(context.resumePhase),
    resumeDeleting: ({ context }) => context.resumeDeleting,
    hasWindow: ({ context }) => context.window !== undefined,
    noWindowLeft: ({ context }) => context.window === undefined,
    windowOpenWhenPlanned: ({ context }) => context.window !== undefined && context.plannedAt !== undefined && context.plannedAt >= context.window.start,
    anyEvacuating: ({ context }) => context.nodes.some((n) => n.phase === 'Evacuating'),
    anyInMaintenance: ({ context }) => context.nodes.some((n) => n.phase === 'ReadyForMaintenance'),
    nothingPending: ({ context }) => !context.nodes.some((n) => n.phase === 'Pending'),
    batchEvacuated: ({ context }) => !context.nodes.some((n) => n.phase === 'Evacuating'),
    batchDone: ({ context }) => !context.nodes.some((n) => n.phase === 'Evacuating' || n.phase === 'ReadyForMaintenance'),
    nothingActive: ({ context }) => !context.nodes.some((n) => n.phase === 'Evacuating' || n.phase === 'ReadyForMaintenance'),
    noneInFlight: ({ context }) => !context.nodes.some((n) => n.phase === 'Evacuating'),
    recurring: ({ context }) => context.recurring,
    recurringWithPending: ({ context }) => context.recurring && context.nodes.some((n) => n.phase === 'Pending'),
    skippedForWindow: ({ context }) => context.nodes.some((n) => n.phase === 'Skipped' && /window/.test(n.reason ?? '')),
    startsNothing: (_, params: { outcome: BatchOutcome }) => params.outcome.started.length === 0,
    nodeEvacuating: ({ context, event }) => 'node' in event && nodeOf(context, event.node)?.phase === 'Evacuating' && !nodeOf(context, event.node)?.interrupted,
    nodeInterrupted: ({ context, event }) => 'node' in event && nodeOf(context, event.node)?.phase === 'Evacuating' && nodeOf(context, event.node)?.interrupted === true,
    nodeInMaintenance: ({ context, event }) => 'node' in event && nodeOf(context, event.node)?.phase === 'ReadyForMaintenance',
    pausedInSpec: ({ context }) => context.paused,
    resumedInSpec: ({ context }) => !context.paused,
  },
  delays: {
    untilWindowOpens: ({ context }) => timerMs((context.window?.start ?? Date.now()) - Date.now()),
    untilWindowCloses: ({ context }) => timerMs((context.window?.end ?? Date.now()) - Date.now()),
    retryDelay: () => RETRY_MS,
  },
}).createMachine({
  id: 'runbook',
  initial: 'Resume',
  context: ({ input }) => ({
    name: input.name,
    recurring: input.recurring,
    paused: input.paused,
    resumePhase: input.resumePhase,
    resumeDeleting: input.deleting ?? false,
    window: input.window,
    nodes: input.nodes ?? [],
    plan: input.plan,
    eta: input.eta,
  }),
  on: {
    DELETE: { target: '.Deleting' },
  },
  states: {
    Resume: {
      description: 'A restarted controller lands where the status says.',
      always: [
        { guard: 'resumeDeleting', target: 'Deleting' },
        { guard: { type: 'resumeAt', params: { phases: ['Completed'] } }, target: 'Completed' },
        { guard: { type: 'resumeAt', params: { phases: ['Failed'] } }, target: 'Failed' },
        { guard: { type: 'resumeAt', params: { phases: ['WindowClosed'] } }, target: 'Closing' },
        { guard: { type: 'resumeAt', params: { phases: ['Running', 'Paused'] } }, target: 'Running' },
        { guard: { type: 'resumeAt', params: { phases: ['Waiting'] } }, target: 'Waiting' },
        { target: 'Pending' },
      ],
    },

    Pending: {
      description: 'Resolve the window and the nodes, and plan the whole runbook.',
      invoke: {
        src: 'makePlan',
        input: ({ context }) => ({ context }),
        onDone: { target: 'Scheduling', actions: { type: 'adoptPlan', params: ({ event }) => ({ outcome: event.output }) } },
        onError: { target: 'Failed', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
      },
    },

    NextWindow: {
      description: 'A recurring window closed with nodes left: plan for the next occurrence.',
      invoke: {
        src: 'makePlan',
        input: ({ context }) => ({ context, ...(context.window ? { after: context.window } : {}) }),
        onDone: { target: 'Scheduling', actions: { type: 'adoptPlan', params: ({ event }) => ({ outcome: event.output }) } },
        onError: { target: 'Failed', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
      },
    },

    Scheduling: {
      always: [
        { guard: 'noWindowLeft', target: 'Finished', actions: { type: 'skipPending', params: { reason: 'the window is over' } } },
        { guard: 'nothingPending', target: 'Finished' },
        { guard: 'windowOpenWhenPlanned', target: 'Running' },
        { target: 'Waiting' },
      ],
    },

    Waiting: {
      description: 'Outside the window: nothing is touched until it opens.',
      after: { untilWindowOpens: 'Running' },
      on: {
        SPEC_CHANGED: { actions: 'adoptSpec' },
        WINDOW_CHANGED: { target: 'Waiting', reenter: true, actions: 'adoptWindow' },
      },
    },

    Running: {
      type: 'parallel',
      always: { guard: stateIn('#runbook.Running.window.Over'), target: 'Closing' },
      on: {
        NODE_EVACUATED: { guard: 'nodeEvacuating', actions: ['markReady', 'announceReady'] },
        NODE_DONE: { guard: 'nodeInMaintenance', actions: ['markDone', 'announceDone'] },
        SPEC_CHANGED: { actions: 'adoptSpec' },
      },
      states: {
        batch: {
          initial: 'Resume',
          states: {
            Resume: {
              always: [
                { guard: 'anyEvacuating', target: 'Evacuating' },
                { guard: 'anyInMaintenance', target: 'InMaintenance' },
                { target: 'BetweenBatches' },
              ],
            },
            BetweenBatches: {
              always: [
                { guard: 'nothingPending', target: '#runbook.Finished' },
                { guard: stateIn('#runbook.Running.gate.Open'), target: 'Planning' },
              ],
            },
            Planning: {
              description: 'Re-plan from the live cluster; start the next nodes that fit in what is left of the window.',
              invoke: {
                src: 'planNextBatch',
                input: ({ context }) => context,
                onDone: [
                  {
                    guard: { type: 'startsNothing', params: ({ event }) => ({ outcome: event.output }) },
                    target: '#runbook.Closing',
                    actions: { type: 'adoptBatch', params: ({ event }) => ({ outcome: event.output }) },
                  },
                  {
                    target: 'Evacuating',
                    actions: [{ type: 'adoptBatch', params: ({ event }) => ({ outcome: event.output }) }, 'announceBatch'],
                  },
                ],
                onError: { target: 'PlanningRetry', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
              },
            },
            PlanningRetry: { after: { retryDelay: 'Planning' } },
            Evacuating: {
              description: 'Batch cordoned and tainted; Ferry evacuates the VMs within the limits.',
              always: { guard: 'batchEvacuated', target: 'InMaintenance' },
            },
            InMaintenance: {
              description: 'Every node of the batch empty, labelled ready; waiting for maintenance to be done.',
              always: { guard: 'batchDone', target: 'BetweenBatches' },
            },
          },
        },
        gate: {
          initial: 'Open',
          states: {
            Open: { always: { guard: 'pausedInSpec', target: 'Paused' } },
            Paused: { always: { guard: 'resumedInSpec', target: 'Open' } },
          },
        },
        window: {
          initial: 'Open',
          states: {
            Open: {
              after: { untilWindowCloses: 'Over' },
              on: { WINDOW_CHANGED: { target: 'Open', reenter: true, actions: 'adoptWindow' } },
            },
            Over: {},
          },
        },
      },
    },

    Closing: {
      description: 'No new node or migration starts; stopped evacuations settle, nodes in maintenance finish.',
      entry: [{ type: 'interruptEvacuations', params: { why: 'window closed' } }, 'announceStopping'],
      on: {
        NODE_SETTLED: [
          { guard: and(['recurring', 'nodeInterrupted']), actions: [{ type: 'settleInterrupted', params: { why: 'window closed', requeue: true } }, 'announceSettled'] },
          { guard: 'nodeInterrupted', actions: [{ type: 'settleInterrupted', params: { why: 'window closed', requeue: false } }, 'announceSettled'] },
        ],
        NODE_DONE: { guard: 'nodeInMaintenance', actions: ['markDone', 'announceDone'] },
        SPEC_CHANGED: { actions: 'adoptSpec' },
      },
      always: [
        { guard: 'nothingActive', target: 'AfterWindow' },
      ],
    },

    AfterWindow: {
      always: [
        { guard: 'recurringWithPending', target: 'NextWindow' },
        { target: 'Finished', actions: { type: 'skipPending', params: { reason: 'the window closed before its turn' } } },
      ],
    },

    Finished: {
      always: [
        { guard: 'skippedForWindow', target: 'WindowClosed' },
        { target: 'Completed' },
      ],
    },

    Completed: { entry: 'announceFinished' },
    WindowClosed: { entry: 'announceFinished' },
    Failed: {
      entry: 'announceFinished',
      on: { SPEC_CHANGED: { target: 'Pending', actions: 'adoptSpec' } },
    },

    Deleting: {
      description: 'Stop cleanly: release what is being evacuated once its migrations end; leave nodes in maintenance as they are.',
      entry: [{ type: 'interruptEvacuations', params: { why: 'runbook deleted' } }, 'announceStopping', 'announceLeftInMaintenance'],
      on: {
        DELETE: {},
        NODE_SETTLED: { guard: 'nodeInterrupted', actions: [{ type: 'settleInterrupted', params: { why: 'runbook deleted', requeue: false } }, 'announceSettled'] },
      },
      always: { guard: 'noneInFlight', target: 'Released' },
    },

    Released: {
      on: { DELETE: {} },
      invoke: {
        src: 'removeFinalizer',
        input: ({ context }) => context,
        onDone: 'Deleted',
        onError: { target: 'ReleaseRetry', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    ReleaseRetry: { on: { DELETE: {} }, after: { retryDelay: 'Released' } },
    Deleted: { type: 'final' },
  },
});

export type RunbookSnapshot = SnapshotFrom<typeof runbookMachine>;

/** The runbook phase a snapshot stands for; undefined while it is being deleted (the status keeps its last phase). */
export function runbookPhaseOf(snapshot: { value: unknown; matches?: (v: never) => boolean }): RunbookPhase | undefined {
  const value = snapshot.value;
  const top = typeof value === 'string' ? value : value && typeof value === 'object' ? Object.keys(value)[0] : undefined;
  switch (top) {
    case 'Resume':
    case 'Pending':
    case 'Scheduling':
      return 'Pending';
    case 'NextWindow':
    case 'Waiting':
      return 'Waiting';
    case 'Running': {
      const gate = (value as { Running?: { gate?: unknown } }).Running?.gate;
      return gate === 'Paused' ? 'Paused' : 'Running';
    }
    case 'Closing':
    case 'AfterWindow':
    case 'WindowClosed':
      return 'WindowClosed';
    case 'Finished':
    case 'Completed':
      return 'Completed';
    case 'Failed':
      return 'Failed';
    default:
      return undefined;
  }
}

/** The batch region's state while Running ("Evacuating", "InMaintenance", ...). */
export function batchStateOf(snapshot: { value: unknown }): string | undefined {
  const v = snapshot.value as { Running?: { batch?: unknown } } | string;
  return typeof v === 'object' && typeof v.Running?.batch === 'string' ? v.Running.batch : undefined;
}

/** The chart as plain data (states, transitions, guards, actions) for docs and diagrams. */
export function describeChart(): ChartNode {
  return describeNode(runbookMachine.root);
}
