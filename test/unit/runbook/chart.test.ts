import { createActor, fromPromise } from 'xstate';
import type { NodeProgress } from '../../../src/api/maintenanceWindow.js';
import { ManualClock } from '../../../src/util/clock.js';
import {
  describeChart,
  runbookDelays,
  runbookMachine,
  runbookPhaseOf,
  type BatchOutcome,
  type ChartNode,
  type PlanOutcome,
  type RunbookContext,
  type RunbookEvent,
  type RunbookInput,
  type WindowTimes,
} from '../../../statecharts/runbook.js';

const T0 = Date.parse('2025-06-01T02:00:00Z');
const HOUR = 3_600_000;
const at = (ms: number) => new Date(ms).toISOString();

/** Every state any test passed through, microstep by microstep (transient ones included). */
const visited = new Set<string>();

function paths(value: unknown, prefix = 'runbook'): string[] {
  if (typeof value === 'string') return [prefix, `${prefix}.${value}`];
  if (!value || typeof value !== 'object') return [prefix];
  return [prefix, ...Object.entries(value).flatMap(([k, v]) => paths(v, `${prefix}.${k}`))];
}

interface Script {
  window?: WindowTimes;
  recurring?: boolean;
  nodes?: string[];
  batchSize?: number;
  /** Nodes the fake planner says will not fit. */
  wontFit?: string[];
  planFails?: number;
  batchFails?: number;
  finalizerFails?: number;
}

/** A runbook actor on a manual clock, with a scripted planner standing in for the controller's. */
function harness(script: Script, input: Partial<RunbookInput> = {}) {
  const clock = new ManualClock(T0);
  const calls = { makePlan: [] as Array<WindowTimes | undefined>, planNextBatch: 0, removeFinalizer: 0 };
  let planFails = script.planFails ?? 0;
  let batchFails = script.batchFails ?? 0;
  let finalizerFails = script.finalizerFails ?? 0;
  const window = script.window ?? { start: T0, end: T0 + HOUR };
  const machine = runbookMachine.provide({
    delays: runbookDelays(() => clock.now()),
    actors: {
      makePlan: fromPromise<PlanOutcome, { context: RunbookContext; after?: WindowTimes }>(async ({ input: i }) => {
        calls.makePlan.push(i.after);
        if (planFails-- > 0) throw new Error('window.timeZone "Mars/Olympus" is not an IANA time zone');
        const w = i.after ? { start: i.after.start + 24 * HOUR, end: i.after.end + 24 * HOUR } : window;
        const kept = i.context.nodes.filter((n) => n.phase !== 'Pending');
        const pending = (script.nodes ?? []).filter((n) => !kept.some((k) => k.name === n)).map((name): NodeProgress => ({ name, phase: 'Pending' }));
        return { plannedAt: clock.now(), window: w, recurring: script.recurring ?? false, nodes: [...kept, ...pending] };
      }),
      planNextBatch: fromPromise<BatchOutcome, RunbookContext>(async ({ input: ctx }) => {
        calls.planNextBatch++;
        if (batchFails-- > 0) throw new Error('API server unreachable');
        const size = script.batchSize ?? 1;
        const batch = Math.max(0, ...ctx.nodes.map((n) => n.batch ?? 0)) + 1;
        const started: string[] = [];
        const nodes = ctx.nodes.map((n): NodeProgress => {
          if (n.phase !== 'Pending') return n;
          if (script.wontFit?.includes(n.name)) return { ...n, phase: 'Skipped', reason: 'predicted not to be done before the window closes' };
          if (started.length >= size) return n;
          started.push(n.name);
          return { ...n, phase: 'Evacuating', batch, startedAt: at(clock.now()), vmsTotal: 2 };
        });
        return { nodes, started };
      }),
      removeFinalizer: fromPromise<void, RunbookContext>(async () => {
        calls.removeFinalizer++;
        if (finalizerFails-- > 0) throw new Error('conflict');
      }),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: { name: 'mw', recurring: script.recurring ?? false, paused: false, ...input },
    inspect: (ev) => {
      if (ev.type === '@xstate.microstep' || ev.type === '@xstate.snapshot') {
        for (const p of paths((ev.snapshot as unknown as { value: unknown }).value)) visited.add(p);
      }
    },
  });
  actor.start();
  const settle = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  const send = async (ev: RunbookEvent) => {
    actor.send(ev);
    await settle();
  };
  const advance = async (ms: number) => {
    clock.advance(ms);
    await settle();
  };
  const phase = () => runbookPhaseOf(actor.getSnapshot());
  const node = (name: string) => actor.getSnapshot().context.nodes.find((n) => n.name === name)!;
  const phases = () => Object.fromEntries(actor.getSnapshot().context.nodes.map((n) => [n.name, n.phase]));
  const evacuated = (n: string) => send({ type: 'NODE_EVACUATED', node: n, at: at(clock.now()), vmsMoved: 2, staying: [] });
  const done = (n: string) => send({ type: 'NODE_DONE', node: n, at: at(clock.now()) });
  const settled = (n: string, vmsLeft: number) => send({ type: 'NODE_SETTLED', node: n, at: at(clock.now()), vmsLeft });
  return { actor, clock, calls, settle, send, advance, phase, node, phases, evacuated, done, settled };
}

describe('a runbook inside its window', () => {
  test('runs batch after batch: evacuate, ready for maintenance, done, next batch, until Completed', async () => {
    const h = harness({ nodes: ['a', 'b', 'c'], batchSize: 2 });
    await h.settle();
    expect(h.phase()).toBe('Running');
    expect(h.phases()).toEqual({ a: 'Evacuating', b: 'Evacuating', c: 'Pending' });
    await h.evacuated('a');
    expect(h.node('a')).toMatchObject({ phase: 'ReadyForMaintenance', vmsMoved: 2 });
    // Node a waits for its maintenance; b still evacuates; no new batch yet.
    await h.done('a');
    expect(h.phases()).toEqual({ a: 'Done', b: 'Evacuating', c: 'Pending' });
    expect(h.calls.planNextBatch).toBe(1);
    await h.evacuated('b');
    await h.done('b');
    expect(h.phases()).toEqual({ a: 'Done', b: 'Done', c: 'Evacuating' });
    expect(h.node('c').batch).toBe(2);
    await h.evacuated('c');
    await h.done('c');
    expect(h.phase()).toBe('Completed');
  });

  test('reports VMs that stay and does not wait for them', async () => {
    const h = harness({ nodes: ['a'] });
    await h.settle();
    await h.send({ type: 'NODE_EVACUATED', node: 'a', at: at(T0), vmsMoved: 1, staying: ['default/db (evictionStrategy None)'] });
    expect(h.node('a')).toMatchObject({ phase: 'ReadyForMaintenance', vmsStaying: 1 });
    expect(h.node('a').reason).toMatch(/1 VM stay: default\/db \(evictionStrategy None\)/);
  });

  test('facts about nodes that do not apply are ignored', async () => {
    const h = harness({ nodes: ['a', 'b'] });
    await h.settle();
    await h.done('a'); // not in maintenance yet
    await h.evacuated('b'); // not started
    expect(h.phases()).toEqual({ a: 'Evacuating', b: 'Pending' });
  });

  test('a planning error is retried after a delay', async () => {
    const h = harness({ nodes: ['a'], batchFails: 1 });
    await h.settle();
    expect(h.actor.getSnapshot().context.error).toMatch(/unreachable/);
    expect(h.phases()).toEqual({ a: 'Pending' });
    await h.advance(5000);
    expect(h.phases()).toEqual({ a: 'Evacuating' });
    expect(h.actor.getSnapshot().context.error).toBeUndefined();
  });
});

describe('outside the window', () => {
  test('waits, touching nothing, until the window opens', async () => {
    const h = harness({ nodes: ['a'], window: { start: T0 + HOUR, end: T0 + 2 * HOUR } });
    await h.settle();
    expect(h.phase()).toBe('Waiting');
    expect(h.calls.planNextBatch).toBe(0);
    await h.advance(HOUR - 1);
    expect(h.phase()).toBe('Waiting');
    await h.advance(1);
    expect(h.phase()).toBe('Running');
    expect(h.phases()).toEqual({ a: 'Evacuating' });
  });

  test('a window moved while waiting re-arms the timer', async () => {
    const h = harness({ nodes: ['a'], window: { start: T0 + HOUR, end: T0 + 2 * HOUR } });
    await h.settle();
    await h.send({ type: 'WINDOW_CHANGED', window: { start: T0 + 3 * HOUR, end: T0 + 4 * HOUR } });
    await h.advance(2 * HOUR);
    expect(h.phase()).toBe('Waiting');
    await h.advance(HOUR);
    expect(h.phase()).toBe('Running');
  });

  test('a window already over skips every node', async () => {
    // The planner finds no occurrence of the window left.
    const none = createActor(
      runbookMachine.provide({
        actors: {
          makePlan: fromPromise<PlanOutcome, { context: RunbookContext; after?: WindowTimes }>(async () => ({ plannedAt: T0, recurring: false, nodes: [{ name: 'a', phase: 'Pending' }] })),
        },
      }),
      {
        input: { name: 'mw', recurring: false, paused: false },
        inspect: (ev) => {
          if (ev.type === '@xstate.microstep') for (const p of paths((ev.snapshot as unknown as { value: unknown }).value)) visited.add(p);
        },
      },
    ).start();
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(runbookPhaseOf(none.getSnapshot())).toBe('WindowClosed');
    expect(none.getSnapshot().context.nodes[0]).toMatchObject({ phase: 'Skipped', reason: 'the window is over' });
  });
});

describe('when the window closes mid-batch', () => {
  test('no new node starts; evacuations stop, settle, and the nodes never started are Skipped', async () => {
    const h = harness({ nodes: ['a', 'b', 'c'], batchSize: 2 });
    await h.settle();
    await h.advance(HOUR);
    expect(h.phase()).toBe('WindowClosed');
    expect(h.node('a')).toMatchObject({ phase: 'Evacuating', interrupted: true });
    expect(h.node('a').reason).toMatch(/no new migration starts; released once the migrations in flight end/);
    // a: its last migrations in flight ended with 1 VM not moved; b happened to empty.
    await h.settled('a', 1);
    expect(h.node('a')).toMatchObject({ phase: 'Skipped' });
    expect(h.node('a').interrupted).toBeUndefined();
    expect(h.node('a').reason).toMatch(/window closed mid-evacuation: 1 VM not moved stay on it; .*none was left half-done/);
    await h.settled('b', 0);
    expect(h.node('b').phase).toBe('ReadyForMaintenance');
    // Node b's maintenance still counts; only then the runbook ends.
    expect(h.actor.getSnapshot().value).toBe('Closing');
    await h.done('b');
    expect(h.phases()).toEqual({ a: 'Skipped', b: 'Done', c: 'Skipped' });
    expect(h.node('c').reason).toBe('the window closed before its turn');
    expect(h.phase()).toBe('WindowClosed');
    expect(h.calls.planNextBatch).toBe(1);
  });

  test('a window extended while running closes at its new end', async () => {
    const h = harness({ nodes: ['a'] });
    await h.settle();
    await h.send({ type: 'WINDOW_CHANGED', window: { start: T0, end: T0 + 2 * HOUR } });
    await h.advance(HOUR + 1);
    expect(h.phase()).toBe('Running');
    await h.advance(HOUR);
    expect(h.phase()).toBe('WindowClosed');
  });

  test('when nothing more fits, the runbook closes early with the rest Skipped', async () => {
    const h = harness({ nodes: ['a', 'b'], wontFit: ['b'] });
    await h.settle();
    await h.evacuated('a');
    await h.done('a');
    expect(h.phases()).toEqual({ a: 'Done', b: 'Skipped' });
    expect(h.phase()).toBe('WindowClosed');
  });

  test('a recurring window leaves the rest for its next occurrence', async () => {
    const h = harness({ nodes: ['a', 'b'], recurring: true });
    await h.settle();
    await h.advance(HOUR);
    await h.settled('a', 1);
    // a goes back to Pending (its VMs stay for now), b was never started.
    expect(h.phases()).toEqual({ a: 'Pending', b: 'Pending' });
    expect(h.phase()).toBe('Waiting');
    expect(h.calls.makePlan.at(-1)).toEqual({ start: T0, end: T0 + HOUR });
    expect(h.actor.getSnapshot().context.window).toEqual({ start: T0 + 24 * HOUR, end: T0 + 25 * HOUR });
    await h.advance(23 * HOUR);
    expect(h.phase()).toBe('Running');
    expect(h.phases()).toEqual({ a: 'Evacuating', b: 'Pending' });
  });
});

describe('pause', () => {
  test('no new batch while paused; the batch in progress carries on; resume continues', async () => {
    const h = harness({ nodes: ['a', 'b'] });
    await h.settle();
    await h.send({ type: 'SPEC_CHANGED', paused: true });
    expect(h.phase()).toBe('Paused');
    await h.evacuated('a');
    await h.done('a');
    expect(h.phases()).toEqual({ a: 'Done', b: 'Pending' });
    expect(h.calls.planNextBatch).toBe(1);
    expect(h.phase()).toBe('Paused');
    await h.send({ type: 'SPEC_CHANGED', paused: false });
    expect(h.phase()).toBe('Running');
    expect(h.phases()).toEqual({ a: 'Done', b: 'Evacuating' });
  });

  test('a runbook created paused starts nothing until resumed', async () => {
    const h = harness({ nodes: ['a'] }, { paused: true });
    await h.settle();
    expect(h.phase()).toBe('Paused');
    expect(h.calls.planNextBatch).toBe(0);
    await h.send({ type: 'SPEC_CHANGED', paused: false });
    expect(h.phases()).toEqual({ a: 'Evacuating' });
  });
});

describe('deletion', () => {
  test('stops cleanly: in-flight evacuations settle, nodes in maintenance are left, then the finalizer goes', async () => {
    const h = harness({ nodes: ['a', 'b', 'c'], batchSize: 2, finalizerFails: 1 });
    await h.settle();
    await h.evacuated('a');
    await h.send({ type: 'DELETE' });
    expect(h.actor.getSnapshot().value).toBe('Deleting');
    expect(h.node('b')).toMatchObject({ phase: 'Evacuating', interrupted: true });
    expect(h.calls.removeFinalizer).toBe(0);
    await h.send({ type: 'DELETE' }); // again: nothing changes
    await h.settled('b', 2);
    expect(h.node('b')).toMatchObject({ phase: 'Skipped' });
    expect(h.node('b').reason).toMatch(/runbook deleted mid-evacuation/);
    expect(h.node('a').phase).toBe('ReadyForMaintenance');
    expect(h.calls.removeFinalizer).toBe(1);
    await h.advance(5000);
    expect(h.calls.removeFinalizer).toBe(2);
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.phases()).toEqual({ a: 'ReadyForMaintenance', b: 'Skipped', c: 'Pending' });
  });
});

describe('failure', () => {
  test('a spec that cannot be planned fails with the reason; a changed spec plans again', async () => {
    const h = harness({ nodes: ['a'], planFails: 1 });
    await h.settle();
    expect(h.phase()).toBe('Failed');
    expect(h.actor.getSnapshot().context.error).toMatch(/IANA/);
    await h.send({ type: 'SPEC_CHANGED', paused: false });
    expect(h.phase()).toBe('Running');
  });
});

describe('a restarted controller resumes from the status', () => {
  const nodes: NodeProgress[] = [
    { name: 'a', phase: 'Done', batch: 1 },
    { name: 'b', phase: 'Evacuating', batch: 2, vmsTotal: 2 },
    { name: 'c', phase: 'Pending' },
  ];
  const window = { start: T0, end: T0 + HOUR };

  test('mid-batch: it waits for the batch, without planning it again', async () => {
    const h = harness({ nodes: ['a', 'b', 'c'] }, { resumePhase: 'Running', nodes, window });
    await h.settle();
    expect(h.phase()).toBe('Running');
    expect(h.calls.makePlan).toEqual([]);
    expect(h.calls.planNextBatch).toBe(0);
    await h.evacuated('b');
    expect(h.actor.getSnapshot().value).toMatchObject({ Running: { batch: 'InMaintenance' } });
    await h.done('b');
    expect(h.phases()).toEqual({ a: 'Done', b: 'Done', c: 'Evacuating' });
  });

  test('in each recorded phase', async () => {
    const cases = [
      { resumePhase: 'Completed' as const, value: 'Completed' },
      { resumePhase: 'Failed' as const, value: 'Failed' },
      { resumePhase: 'Waiting' as const, value: 'Waiting', window: { start: T0 + HOUR, end: T0 + 2 * HOUR } },
      { resumePhase: 'WindowClosed' as const, value: 'WindowClosed' },
      { resumePhase: 'Paused' as const, value: { Running: { batch: 'Planning', gate: 'Open', window: 'Open' } }, paused: false },
    ];
    for (const c of cases) {
      const h = harness({}, { resumePhase: c.resumePhase, nodes: [{ name: 'a', phase: 'Done' }, { name: 'b', phase: 'Skipped', reason: 'the window closed before its turn' }, ...(c.value === 'Waiting' || typeof c.value === 'object' ? [{ name: 'c', phase: 'Pending' as const }] : [])], window: c.window ?? window });
      await h.settle();
      expect({ phase: c.resumePhase, value: h.actor.getSnapshot().value }).toEqual({ phase: c.resumePhase, value: typeof c.value === 'object' ? { Running: { batch: 'Evacuating', gate: 'Open', window: 'Open' } } : c.value });
      h.actor.stop();
    }
  });

  test('being deleted: it goes straight to stopping', async () => {
    const h = harness({}, { resumePhase: 'Running', deleting: true, nodes: [{ name: 'a', phase: 'Evacuating', interrupted: true }], window });
    await h.settle();
    expect(h.actor.getSnapshot().value).toBe('Deleting');
    await h.settled('a', 0);
    expect(h.calls.removeFinalizer).toBe(1);
  });
});

test('every state of the chart is reached by the scenarios above', () => {
  const all: string[] = [];
  const walk = (n: ChartNode, prefix: string) => {
    all.push(prefix);
    for (const s of n.states) walk(s, `${prefix}.${s.key}`);
  };
  walk(describeChart(), 'runbook');
  // Every actor starts in Resume and leaves it within its first step, before any inspection event.
  expect(describeChart().initial).toBe('Resume');
  expect(all.filter((s) => s !== 'runbook.Resume' && !visited.has(s))).toEqual([]);
  expect(all.length).toBeGreaterThan(20);
});

test('describeChart lists named guards, actions, delays and actors', () => {
  const chart = describeChart();
  const running = chart.states.find((s) => s.key === 'Running')!;
  const windowRegion = running.states.find((s) => s.key === 'window')!;
  const open = windowRegion.states.find((s) => s.key === 'Open')!;
  expect(open.transitions.map((t) => t.event)).toContain('after(untilWindowCloses)');
  const planning = running.states.find((s) => s.key === 'batch')!.states.find((s) => s.key === 'Planning')!;
  expect(planning.invoke).toEqual(['planNextBatch']);
  const closing = chart.states.find((s) => s.key === 'Closing')!;
  expect(closing.entry).toEqual(['interruptEvacuations', 'announceStopping']);
  expect(closing.transitions.find((t) => t.event === 'NODE_SETTLED')!.guard).toBe('and(recurring, nodeInterrupted)');
});
