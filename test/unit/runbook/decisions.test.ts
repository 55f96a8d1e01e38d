import type { NodeProgress } from '../../../src/api/maintenanceWindow.js';
import type { VirtualMachineInstance } from '../../../src/api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { matchesSelector, nodeFacts } from '../../../src/runbook/clusterView.js';
import { nextBatch } from '../../../src/runbook/decisions.js';
import type { Plan } from '../../../src/runbook/plan.js';

const T0 = Date.parse('2025-06-01T02:00:00Z');

const plan: Plan = {
  start: T0,
  windowEnd: T0 + 10_000,
  order: ['a', 'b', 'c', 'd'],
  batches: [['a', 'b']],
  nodes: [
    { name: 'a', batch: 1, start: T0, evacuated: T0 + 4000, finish: T0 + 4000, fits: true, vmsToMove: 2, vmsStaying: 0, bytesToMove: 1, soloMs: 3000 },
    { name: 'b', batch: 1, start: T0, evacuated: T0 + 5000, finish: T0 + 5000, fits: true, vmsToMove: 3, vmsStaying: 1, bytesToMove: 1, soloMs: 4000 },
    { name: 'c', fits: false, droppedAt: 1, reason: 'predicted not to be done before the window closes at …', vmsToMove: 9, vmsStaying: 0, bytesToMove: 1, soloMs: 9000 },
    { name: 'd', fits: false, droppedAt: 1, reason: 'predicted not to be done before the window closes at …', vmsToMove: 30, vmsStaying: 0, bytesToMove: 1, soloMs: 30_000 },
  ],
  predictedEnd: T0 + 5000,
  wontFit: ['c', 'd'],
};
const pending: NodeProgress[] = [{ name: 'x', phase: 'Done', batch: 1 }, ...['a', 'b', 'c', 'd'].map((name): NodeProgress => ({ name, phase: 'Pending' }))];

describe('the next batch', () => {
  test('starts the plan\'s first batch, numbered after the last one, with its predictions', () => {
    const out = nextBatch({ nodes: pending, plan, now: T0, recurring: false, windowLengthMs: 10_000, maintenanceMs: 0 });
    expect(out.started).toEqual(['a', 'b']);
    expect(out.nodes.find((n) => n.name === 'b')).toMatchObject({ phase: 'Evacuating', batch: 2, vmsTotal: 3, vmsMoved: 0, vmsStaying: 1, predictedFinish: new Date(T0 + 5000).toISOString() });
    expect(out.eta).toBe(T0 + 5000);
  });

  test('a one-shot window skips what would overrun it now', () => {
    const out = nextBatch({ nodes: pending, plan, now: T0, recurring: false, windowLengthMs: 10_000, maintenanceMs: 0 });
    expect(out.nodes.filter((n) => n.phase === 'Skipped').map((n) => n.name)).toEqual(['c', 'd']);
  });

  test('a recurring window leaves it for the next occurrence, unless it cannot fit even a whole one', () => {
    const out = nextBatch({ nodes: pending, plan, now: T0, recurring: true, windowLengthMs: 10_000, maintenanceMs: 0 });
    expect(out.nodes.find((n) => n.name === 'c')).toMatchObject({ phase: 'Pending', reason: expect.stringMatching(/waits for the next one/) });
    expect(out.nodes.find((n) => n.name === 'd')).toMatchObject({ phase: 'Skipped', reason: expect.stringMatching(/even in a whole window/) });
  });
});

describe('what the runbook sees of a node', () => {
  const vmi = (name: string, node: string, strategy?: string, migratable = true): VirtualMachineInstance => ({
    metadata: { name, namespace: 'default' },
    spec: strategy ? { evictionStrategy: strategy as 'None' } : {},
    status: { phase: 'Running', nodeName: node, conditions: [{ type: 'LiveMigratable', status: migratable ? 'True' : 'False', reason: 'HostDevice' }] },
  });
  const vmim = (name: string, node: string, phase: string, deleting = false): VirtualMachineInstanceMigration => ({
    metadata: { name, namespace: 'default', annotations: { 'kubevirt.io/evacuationMigration': node }, ...(deleting ? { deletionTimestamp: 'x' } : {}) },
    spec: { vmiName: name },
    status: { phase: phase as 'Running' },
  });

  test('VMs to move, VMs that stay and why, migrations in flight and queued', () => {
    const f = nodeFacts(
      'n1',
      [vmi('web', 'n1', 'LiveMigrate'), vmi('db', 'n1', 'None'), vmi('gpu', 'n1', 'LiveMigrate', false), vmi('elsewhere', 'n2', 'LiveMigrate')],
      [vmim('web', 'n1', 'Running'), vmim('q', 'n1', 'Pending'), vmim('gone', 'n1', 'Pending', true), vmim('old', 'n1', 'Succeeded'), vmim('other', 'n2', 'Running')],
      undefined,
    );
    expect(f.toMove).toBe(1);
    expect(f.staying).toEqual(['default/db (evictionStrategy None)', 'default/gpu (not live-migratable (HostDevice) and evictionStrategy is LiveMigrate)']);
    expect(f.inFlight).toBe(2);
    expect(f.queued.map((m) => m.metadata.name)).toEqual(['q']);
  });

  test('label selectors as Kubernetes reads them', () => {
    const labels = { rack: 'r12', zone: 'a' };
    expect(matchesSelector(labels, { matchLabels: { rack: 'r12' } })).toBe(true);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }, { key: 'gpu', operator: 'DoesNotExist' }] })).toBe(true);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] })).toBe(false);
    expect(matchesSelector(labels, { matchLabels: { rack: 'r12' }, matchExpressions: [{ key: 'gpu', operator: 'Exists' }] })).toBe(false);
  });
});
