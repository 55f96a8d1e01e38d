import { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { migrationView } from '../../../src/metrics/migrationView.js';

const vmim = (status?: object) =>
  VirtualMachineInstanceMigration.parse({
    metadata: { name: 'mig-1', namespace: 'prod', uid: 'u1' },
    spec: { vmiName: 'db-0' },
    ...(status ? { status } : {}),
  });

describe('a VMIM as the metrics see it', () => {
  test('a VMIM nobody has processed yet is in the unset phase', () => {
    expect(migrationView(vmim())).toEqual({ namespace: 'prod', name: 'mig-1', vmi: 'db-0', phase: '' });
  });

  test('a finished VMIM reports its recorded phase, nodes and times', () => {
    const v = migrationView(
      vmim({
        phase: 'Succeeded',
        migrationState: { sourceNode: 'n1', targetNode: 'n2', startTimestamp: '2025-01-01T00:00:00Z', endTimestamp: '2025-01-01T00:00:30Z' },
      }),
    );
    expect(v).toEqual({
      namespace: 'prod', name: 'mig-1', vmi: 'db-0', phase: 'Succeeded', sourceNode: 'n1', targetNode: 'n2',
      startTimestamp: '2025-01-01T00:00:00Z', endTimestamp: '2025-01-01T00:00:30Z',
    });
  });

  test("a tracked migration reports the session's phase (ahead of the status write), priority, nodes and bandwidth", () => {
    const v = migrationView(vmim({ phase: 'Pending' }), { phase: 'Scheduling', priority: 'evacuation', sourceNode: 'n1', targetNode: 'n3', bandwidth: 5e8 });
    expect(v).toEqual({ namespace: 'prod', name: 'mig-1', vmi: 'db-0', phase: 'Scheduling', priority: 'evacuation', sourceNode: 'n1', targetNode: 'n3', bandwidth: 5e8 });
  });
});
