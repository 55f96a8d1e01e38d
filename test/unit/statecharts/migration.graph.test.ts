import { describe, expect, it } from '@jest/globals';
import { getAdjacencyMap, getShortestPaths, getStateNodes } from '@xstate/graph';
import type { AnyStateNode } from 'xstate';
import { MigrationPhase } from '../../../src/api/vmim.js';
import {
  describeChart,
  migrationMachine,
  type ChartNode,
  type MigrationEvent,
  type MigrationSnapshot,
} from '../../../statecharts/migration.js';
import { migrationInput, stats, GiB } from './migrationHarness.js';

/** One sample of every event the controller can send. */
const domainEvents: MigrationEvent[] = [
  { type: 'ADMITTED' },
  { type: 'REJECTED', reason: 'not migratable' },
  { type: 'TARGET_POD_UNSCHEDULABLE', message: 'insufficient memory' },
  { type: 'TARGET_POD_SCHEDULED', node: 'node-b', pod: 'target' },
  { type: 'TARGET_POD_READY', node: 'node-b', pod: 'target' },
  { type: 'TARGET_POD_GONE', reason: 'evicted' },
  { type: 'PROGRESS', stats: stats(GiB) },
  { type: 'MIGRATION_COMPLETED', mode: 'PreCopy', downtimeMs: 10 },
  { type: 'MIGRATION_FAILED', reason: 'connection reset' },
  { type: 'MIGRATION_ABORTED', reason: 'cancelled' },
  { type: 'ABORT', reason: 'VMIM deleted' },
  { type: 'VMI_GONE', reason: 'VMI deleted' },
  { type: 'NODE_LOST', node: 'node-a', reason: 'source node lost' },
  { type: 'TARGET_NODE_LOST', node: 'node-b', reason: 'target node lost' },
];

/** Results of the invoked actors, as the chart receives them. */
const actorEvents = [
  { type: 'xstate.done.actor.handOff' },
  { type: 'xstate.error.actor.handOff', error: new Error('conflict') },
  { type: 'xstate.done.actor.prepareTarget', output: { address: '10.0.0.9:49152' } },
  { type: 'xstate.error.actor.prepareTarget', error: new Error('no disk') },
  { type: 'xstate.done.actor.startSource' },
  { type: 'xstate.error.actor.startSource', error: new Error('no answer') },
  { type: 'xstate.done.actor.finalizeSuccess' },
  { type: 'xstate.error.actor.finalizeSuccess', error: new Error('conflict') },
  { type: 'xstate.done.actor.requestAbort', output: { state: 'aborting' } },
  { type: 'xstate.done.actor.requestAbort', output: { state: 'not-found' } },
  { type: 'xstate.error.actor.requestAbort', error: new Error('timeout') },
  { type: 'xstate.done.actor.startPostCopy' },
  { type: 'xstate.error.actor.startPostCopy', error: new Error('not running') },
  { type: 'xstate.done.actor.inspect', output: { kind: 'unknown', why: 'silence' } },
  { type: 'xstate.done.actor.inspect', output: { kind: 'completed', why: 'target runs it' } },
  { type: 'xstate.done.actor.inspect', output: { kind: 'failed', why: 'guest on the source' } },
  { type: 'xstate.error.actor.inspect', error: new Error('boom') },
  { type: 'xstate.done.actor.recordFailure' },
  { type: 'xstate.error.actor.recordFailure', error: new Error('etcd timeout') },
] as unknown as MigrationEvent[];

/** Every timer of the chart firing: xstate names them `xstate.after.<delay>.<state id>`. */
const timerEvents = getStateNodes(migrationMachine.root)
  .flatMap((n: AnyStateNode) => [...n.transitions.keys()])
  .filter((type) => type.startsWith('xstate.after.'))
  .map((type) => ({ type })) as unknown as MigrationEvent[];

const traversal = (allowPostCopy: boolean) => ({
  input: migrationInput({ allowPostCopy }),
  events: [...domainEvents, ...actorEvents, ...timerEvents],
  // Reachability is about state nodes; context variations would only multiply the walk.
  serializeState: (s: MigrationSnapshot) => JSON.stringify(s.value),
});

/** {a: {b: 'c'}} for the path ['a','b','c'], which snapshot.matches understands. */
function valueOf(path: string[]): unknown {
  const [head, ...rest] = path;
  if (head === undefined) throw new Error('empty path');
  return rest.length ? { [head]: valueOf(rest) } : head;
}

const reachedNodes = (snapshots: MigrationSnapshot[]) =>
  getStateNodes(migrationMachine.root)
    .filter((n: AnyStateNode) => snapshots.some((s) => s.matches(valueOf(n.path) as never)))
    .map((n: AnyStateNode) => n.id);

describe('the migration chart as a graph', () => {
  const allNodeIds = getStateNodes(migrationMachine.root).map((n: AnyStateNode) => n.id);
  // Resume is left on the way to the first resting state; its exits (and TargetReady.checking,
  // entered only from it) are covered by the resume tests.
  const restingNodeIds = allNodeIds.filter((id) => id !== 'migration.Resume' && id !== 'migration.TargetReady.checking');

  it('has exactly the VMIM phases as top-level states, plus the transient Resume', () => {
    expect(Object.keys(migrationMachine.root.states).sort()).toEqual([...MigrationPhase.options, 'Resume'].sort());
    expect(migrationMachine.root.initial?.target[0]?.key).toBe('Resume');
  });

  it('reaches every state node from the start with the events the controller sends', () => {
    const paths = getShortestPaths(migrationMachine, traversal(true));
    const reached = reachedNodes(paths.map((p) => p.state));
    expect(reached.sort()).toEqual([...restingNodeIds].sort());
  });

  it('cannot reach post-copy when post-copy is not allowed', () => {
    const paths = getShortestPaths(migrationMachine, traversal(false));
    const reached = reachedNodes(paths.map((p) => p.state));
    expect(reached).not.toContain('migration.Running.postCopy');
    expect(reached).toContain('migration.Running.aborting');
  });

  it('reaches Succeeded along the expected shortest route', () => {
    const paths = getShortestPaths(migrationMachine, traversal(true));
    const toSuccess = paths.find((p) => p.state.value === 'Succeeded');
    expect(toSuccess?.steps.map((s) => s.event.type)).toEqual([
      'xstate.init',
      'ADMITTED',
      'TARGET_POD_READY',
      'xstate.done.actor.handOff',
      'xstate.done.actor.prepareTarget',
      // A result may beat the start acknowledgement; completion goes straight to finalising.
      'MIGRATION_COMPLETED',
      'xstate.done.actor.finalizeSuccess',
    ]);
  });

  it('has no dead ends: a final phase stays reachable from every reachable state', () => {
    const adj = getAdjacencyMap(migrationMachine, traversal(true));
    const keys = Object.keys(adj);
    const key = (s: MigrationSnapshot) => JSON.stringify(s.value);
    // Succeeded ends the actor; Failed ends once what it left is undone (Failed.recorded).
    const finished = (s: MigrationSnapshot) => s.status === 'done' || s.matches({ Failed: 'recorded' });
    const canFinish = new Set(keys.filter((k) => finished(adj[k as keyof typeof adj]!.state)));
    expect(canFinish.size).toBe(2);
    for (let grew = true; grew; ) {
      grew = false;
      for (const k of keys) {
        if (canFinish.has(k)) continue;
        const next = Object.values(adj[k as keyof typeof adj]!.transitions).map((t) => key(t.state));
        if (next.some((n) => canFinish.has(n))) { canFinish.add(k); grew = true; }
      }
    }
    expect(keys.filter((k) => !canFinish.has(k))).toEqual([]);
  });
});

describe('describeChart', () => {
  const chart = describeChart();
  const all = (n: ChartNode): ChartNode[] => [n, ...n.states.flatMap(all)];

  it('is plain data that survives JSON', () => {
    expect(JSON.parse(JSON.stringify(chart))).toEqual(chart);
  });

  it('names every state, timer, actor and effect of the chart', () => {
    const nodes = all(chart);
    expect(nodes.map((n) => n.id).sort()).toEqual(getStateNodes(migrationMachine.root).map((n: AnyStateNode) => n.id).concat('migration').sort());
    const events = new Set(nodes.flatMap((n) => n.transitions.map((t) => t.event)));
    for (const timer of ['unschedulableTimeout', 'pendingPodTimeout', 'targetReadyTimeout', 'progressTimeout', 'completionTimeout', 'abortRetry', 'retryDelay']) {
      expect(events).toContain(`after(${timer})`);
    }
    expect(nodes.flatMap((n) => n.invoke).sort()).toEqual(['finalizeSuccess', 'handOff', 'inspect', 'inspect', 'prepareTarget', 'recordFailure', 'requestAbort', 'startPostCopy', 'startSource']);
    expect(nodes.flatMap((n) => n.entry)).toEqual(expect.arrayContaining(['createTargetPod', 'recordSuccess', 'reportFailure']));
    const guards = nodes.flatMap((n) => n.transitions.map((t) => t.guard)).filter(Boolean);
    expect(guards).toEqual(expect.arrayContaining(['resumeAt(Running)', 'and(completionTimeoutEnabled, postCopyAllowed)', 'progressTimeoutEnabled']));
  });

  it('shows the progress timer restart as a re-entry of the progress window', () => {
    const win = all(chart).find((n) => n.id === 'migration.Running.migrating.stall.progressWindow');
    const restart = win?.transitions.find((t) => t.event === 'PROGRESS' && t.guard === 'madeProgress');
    expect(restart).toMatchObject({ targets: ['migration.Running.migrating.stall.progressWindow'], reenter: true });
  });
});
