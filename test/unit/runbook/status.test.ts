import type { VirtualMachineInstance } from '../../../src/api/vmi.js';
import type { ClusterSnapshot } from '../../../src/runbook/decisions.js';
import { runbookStatus } from '../../../src/runbook/status.js';
import type { RunbookContext } from '../../../statecharts/runbook.js';

const T0 = Date.parse('2026-12-03T02:00:00Z');
const empty: ClusterSnapshot = { nodes: [], vmis: [], vmims: [] };
const ctx = (over: Partial<RunbookContext>): RunbookContext => ({ name: 'mw', recurring: false, paused: false, resumeDeleting: false, nodes: [], ...over });
const base = { batchState: undefined, cluster: empty, generation: 3, startedAt: undefined, finishedAt: undefined, now: T0 };

describe('what a runbook\'s status says', () => {
  test('running a batch: progress, the batch, VMs moved so far, and a Progressing condition', () => {
    const vmi = { metadata: { name: 'v1', namespace: 'default' }, spec: { evictionStrategy: 'LiveMigrate' }, status: { phase: 'Running', nodeName: 'a' } } as VirtualMachineInstance;
    const s = runbookStatus({
      ...base,
      phase: 'Running',
      batchState: 'Evacuating',
      cluster: { ...empty, vmis: [vmi] },
      context: ctx({ nodes: [{ name: 'x', phase: 'Done', batch: 1 }, { name: 'a', phase: 'Evacuating', batch: 2, vmsTotal: 3 }, { name: 'b', phase: 'Pending' }], eta: T0 + 60_000, window: { start: T0, end: T0 + 3600_000 } }),
    });
    expect(s).toMatchObject({ phase: 'Running', progress: '1/3', currentBatch: '2: a', observedGeneration: 3, startedAt: new Date(T0).toISOString(), eta: new Date(T0 + 60_000).toISOString() });
    expect(s.nodes?.find((n) => n.name === 'a')?.vmsMoved).toBe(2);
    expect(s.conditions).toEqual([{ type: 'Progressing', status: 'True', reason: 'Evacuating', message: 'evacuating batch 2: a' }]);
    expect(s.finishedAt).toBeUndefined();
  });

  test('finished only once no node is left in maintenance; the first start and finish times are kept', () => {
    const inMaintenance = runbookStatus({ ...base, phase: 'WindowClosed', startedAt: '2026-12-03T01:00:00.000Z', context: ctx({ nodes: [{ name: 'a', phase: 'ReadyForMaintenance' }], eta: T0 }) });
    expect(inMaintenance.finishedAt).toBeUndefined();
    expect(inMaintenance.eta).toBeUndefined();
    expect(inMaintenance.startedAt).toBe('2026-12-03T01:00:00.000Z');
    const done = runbookStatus({ ...base, phase: 'Completed', finishedAt: '2026-12-03T01:30:00.000Z', context: ctx({ nodes: [{ name: 'a', phase: 'Done' }] }) });
    expect(done.finishedAt).toBe('2026-12-03T01:30:00.000Z');
    expect(done.conditions?.[0]).toMatchObject({ type: 'Progressing', status: 'False', message: 'every node done' });
  });

  test('an error is the condition, Failed for a bad spec, PlanningFailed otherwise', () => {
    expect(runbookStatus({ ...base, phase: 'Failed', context: ctx({ error: 'bad window' }) }).conditions).toEqual([{ type: 'Failed', status: 'True', reason: 'InvalidSpec', message: 'bad window' }]);
    expect(runbookStatus({ ...base, phase: 'Running', context: ctx({ error: 'planner threw' }) }).conditions?.[0]).toMatchObject({ type: 'PlanningFailed', reason: 'PlanningError' });
  });
});
