import type { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { nextEvacuationStep } from '../../../src/controller/evacuationRules.js';
import { STALE_PLACEMENT_CONDITION_REASON } from '../../../src/controller/stalePlacement.js';

let seq = 0;
function vmim(phase: string, opts: { evacuation?: boolean; deleting?: boolean; failedBecause?: string } = {}): VirtualMachineInstanceMigration {
  seq++;
  return {
    metadata: {
      name: `m-${seq}`,
      namespace: 'default',
      uid: `u-${seq}`,
      creationTimestamp: `2026-12-03T10:00:${String(seq).padStart(2, '0')}Z`,
      ...(opts.evacuation === false ? {} : { annotations: { 'kubevirt.io/evacuationMigration': 'node-1' } }),
      ...(opts.deleting ? { deletionTimestamp: '2026-12-03T10:01:00Z' } : {}),
    },
    spec: { vmiName: 'vm-1' },
    ...(phase ? { status: { phase, ...(opts.failedBecause ? { conditions: [{ type: 'Failed', status: 'True', reason: opts.failedBecause, message: 'x' }] } : {}) } } : {}),
  } as VirtualMachineInstanceMigration;
}

const BASE = 20_000;
const step = (migrations: VirtualMachineInstanceMigration[], failedAt: Record<string, number> = {}, now = 100_000) =>
  nextEvacuationStep({ migrations, failedAt: (m) => failedAt[m.metadata.uid!] ?? 0, now, backoffBaseMs: BASE });

describe('what evacuation does next for a VM that must leave its node', () => {
  test('a VM with no migration gets its first evacuation', () => {
    expect(step([])).toEqual({ kind: 'create', attempt: 1 });
  });

  test('any unfinished migration of the VM, a user one too, makes it wait and says which', () => {
    const user = vmim('Scheduling', { evacuation: false });
    expect(step([vmim('Succeeded'), user])).toEqual({ kind: 'busy', migration: `default/${user.metadata.name}`, phase: 'Scheduling', evacuating: undefined });
    const fresh = vmim('');
    expect(step([fresh])).toMatchObject({ kind: 'busy', phase: 'Pending', evacuating: 'node-1' });
  });

  test('a migration being deleted does not block (its abort is under way)', () => {
    expect(step([vmim('Running', { deleting: true })])).toEqual({ kind: 'create', attempt: 1 });
  });

  test('failed evacuations back off 20 s, doubling, from when each failure was seen', () => {
    const f1 = vmim('Failed');
    expect(step([f1], { [f1.metadata.uid!]: 90_000 }, 100_000)).toEqual({ kind: 'backoff', failures: 1, waitMs: 10_000 });
    expect(step([f1], { [f1.metadata.uid!]: 80_000 }, 100_000)).toEqual({ kind: 'create', attempt: 2 });
    const f2 = vmim('Failed');
    expect(step([f1, f2], { [f1.metadata.uid!]: 0, [f2.metadata.uid!]: 90_000 }, 100_000)).toEqual({ kind: 'backoff', failures: 2, waitMs: 30_000 });
  });

  test('a success resets the count, and failed user migrations do not count', () => {
    const f1 = vmim('Failed');
    const ok = vmim('Succeeded');
    const user = vmim('Failed', { evacuation: false });
    expect(step([f1, ok, user], { [f1.metadata.uid!]: 99_000, [user.metadata.uid!]: 99_000 })).toEqual({ kind: 'create', attempt: 1 });
  });

  test('a failure on a placement made stale by a later cordon is retried at once and does not count toward the back-off', () => {
    const stale = vmim('Failed', { failedBecause: STALE_PLACEMENT_CONDITION_REASON });
    expect(step([stale], { [stale.metadata.uid!]: 99_000 }, 100_000)).toEqual({ kind: 'create', attempt: 1 });
    // A real failure still backs off, counted without the stale one: 20 s, not 40.
    const real = vmim('Failed', { failedBecause: 'MigrationFailed' });
    const stale2 = vmim('Failed', { failedBecause: STALE_PLACEMENT_CONDITION_REASON });
    expect(step([real, stale2], { [real.metadata.uid!]: 90_000, [stale2.metadata.uid!]: 99_000 }, 100_000)).toEqual({ kind: 'backoff', failures: 1, waitMs: 10_000 });
  });
});
