import type { Pod } from '../../../src/api/core.js';
import type { VirtualMachineInstance } from '../../../src/api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { currentTarget, splitMigrations, targetPodsByMigration, whyWaiting } from '../../../src/cli/migrationFacts.js';
import { table } from '../../../src/cli/format.js';

const vmim = (phase: string, status: object = {}): VirtualMachineInstanceMigration =>
  ({ metadata: { name: 'm', namespace: 'default', uid: 'uid-m' }, spec: { vmiName: 'vm-1' }, status: { phase, ...status } }) as VirtualMachineInstanceMigration;
const pod = (opts: { node?: string; unschedulable?: string; uid?: string; deleting?: boolean } = {}): Pod =>
  ({
    metadata: { name: 'virt-launcher-vm-1-x', namespace: 'default', labels: { 'kubevirt.io/migrationJobUID': opts.uid ?? 'uid-m' }, ...(opts.deleting ? { deletionTimestamp: 'x' } : {}) },
    spec: opts.node ? { nodeName: opts.node } : {},
    status: opts.unschedulable ? { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: opts.unschedulable }] } : { phase: 'Running' },
  }) as Pod;

describe('what the CLI says about a migration', () => {
  test('an unschedulable target pod is the reason, in the scheduler\'s words', () => {
    const why = whyWaiting(vmim('Scheduling'), [pod({ unschedulable: '0/4 nodes are available: 3 node(s) were unschedulable.' })], undefined);
    expect(why).toBe('target pod unschedulable: 0/4 nodes are available: 3 node(s) were unschedulable.');
  });

  test('a pending migration shows the controller\'s queueing reason; a running or finished one waits for nothing', () => {
    expect(whyWaiting(vmim('Pending'), [], 'at most 2 outbound per node')).toBe('at most 2 outbound per node');
    expect(whyWaiting(vmim('Running'), [pod({ unschedulable: 'x' })], 'y')).toBeUndefined();
    expect(whyWaiting(vmim('Failed'), [pod({ unschedulable: 'x' })], 'y')).toBeUndefined();
  });

  test('the target is this migration\'s own: never the target of the VMI\'s previous migration', () => {
    const vmi = { metadata: { name: 'vm-1' }, spec: {}, status: { migrationState: { migrationUid: 'older', targetNode: 'node-2' } } } as unknown as VirtualMachineInstance;
    expect(currentTarget(vmim('Scheduling'), vmi, [])).toBeUndefined();
    expect(currentTarget(vmim('Scheduled'), vmi, [pod({ node: 'node-4' })])).toBe('node-4');
    expect(currentTarget(vmim('Running', { migrationState: { targetNode: 'node-3' } }), vmi, [pod({ node: 'node-4' })])).toBe('node-3');
    const same = { ...vmi, status: { migrationState: { migrationUid: 'uid-m', targetNode: 'node-5' } } } as VirtualMachineInstance;
    expect(currentTarget(vmim('Running'), same, [])).toBe('node-5');
  });

  test('objects that fail the schema are kept apart, with the reason and what can be read of them', () => {
    const { valid, invalid } = splitMigrations([
      { metadata: { name: 'ok', namespace: 'default' }, spec: { vmiName: 'vm-1' } },
      { metadata: { name: 'bad', namespace: 'prod', creationTimestamp: '2026-12-03T10:00:00Z' }, spec: { vmiName: 12345 } },
    ]);
    expect(valid.map((m) => m.metadata.name)).toEqual(['ok']);
    expect(invalid).toEqual([{ namespace: 'prod', name: 'bad', vmi: undefined, reason: expect.stringMatching(/^spec\.vmiName: /), creationTimestamp: '2026-12-03T10:00:00Z' }]);
  });

  test('target pods are grouped by the migration that made them', () => {
    const m = targetPodsByMigration([pod({ uid: 'a' }), pod({ uid: 'b' }), pod({ uid: 'a' })]);
    expect(m.get('a')).toHaveLength(2);
    expect(m.get('b')).toHaveLength(1);
  });

  test('a table cuts an absurdly long cell instead of widening every row', () => {
    const out = table(['NAME', 'VMI'], [['a', 'x'.repeat(300)], ['b', 'vm-1']], { maxWidths: [undefined, 20] });
    const lines = out.split('\n');
    expect(lines[1]).toBe(`a      ${'x'.repeat(19)}…`);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(40);
  });
});
