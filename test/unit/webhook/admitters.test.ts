import type { VirtualMachineInstance } from '../../../src/api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { migrationRefusal } from '../../../src/webhook/migrationAdmitter.js';
import { admitResource } from '../../../src/webhook/resourceAdmitter.js';
import type { AdmissionRequest } from '../../../src/webhook/review.js';

const vmi = (over: Partial<VirtualMachineInstance['status']> = {}, meta: Partial<VirtualMachineInstance['metadata']> = {}): VirtualMachineInstance =>
  ({ metadata: { name: 'vm-1', namespace: 'default', uid: 'u1', ...meta }, spec: {}, status: { phase: 'Running', nodeName: 'node-1', ...over } }) as VirtualMachineInstance;
const vmim = (name: string, phase?: string): VirtualMachineInstanceMigration =>
  ({ metadata: { name, namespace: 'default' }, spec: { vmiName: 'vm-1' }, ...(phase !== undefined ? { status: { phase } } : {}) }) as VirtualMachineInstanceMigration;

describe('which migrations are refused at create', () => {
  test('a running, migratable VM with no migration in flight may be migrated', () => {
    expect(migrationRefusal('default/vm-1', vmi(), [vmim('old', 'Succeeded'), vmim('older', 'Failed')])).toBeUndefined();
  });

  test('each reason a migration cannot start, in the words kubectl prints', () => {
    expect(migrationRefusal('default/vm-1', undefined, [])).toBe('VMI default/vm-1 does not exist');
    expect(migrationRefusal('default/vm-1', vmi({}, { deletionTimestamp: '2026-01-01T00:00:00Z' }), [])).toBe('VMI default/vm-1 is being deleted');
    expect(migrationRefusal('default/vm-1', vmi({ phase: 'Scheduling' }), [])).toBe('VMI default/vm-1 is not running (phase Scheduling)');
    expect(migrationRefusal('default/vm-1', vmi({ conditions: [{ type: 'LiveMigratable', status: 'False', reason: 'HostDeviceNotLiveMigratable' }] }), [])).toBe('Cannot migrate VMI, Reason: HostDeviceNotLiveMigratable');
    expect(migrationRefusal('default/vm-1', vmi(), [vmim('first')])).toBe('in-flight migration detected: migration default/first (phase Pending) is in progress for VMI default/vm-1');
    expect(migrationRefusal('default/vm-1', vmi({ migrationState: { migrationUid: 'm-1', completed: false } }), [])).toBe('in-flight migration detected: migration m-1 is in progress for VMI default/vm-1');
  });

  test('a migration being deleted, or finished, does not block a new one', () => {
    const deleting = { ...vmim('going', 'Running'), metadata: { name: 'going', namespace: 'default', deletionTimestamp: '2026-01-01T00:00:00Z' } } as VirtualMachineInstanceMigration;
    expect(migrationRefusal('default/vm-1', vmi({ migrationState: { migrationUid: 'm-1', completed: true } }), [deleting])).toBeUndefined();
  });
});

describe('validation of Ferry\'s resources and KubeVirt\'s migration settings', () => {
  const req = (group: string, resource: string, object: unknown, operation: 'CREATE' | 'UPDATE' | 'DELETE' = 'CREATE'): AdmissionRequest =>
    ({ uid: 'x', kind: { group, version: 'v1', kind: 'K' }, resource: { group, version: 'v1', resource }, operation, object }) as AdmissionRequest;

  test('a bad field is refused with its path and the schema\'s reason', () => {
    const v = admitResource(req('migrations.kubevirt.io', 'migrationpolicies', { metadata: { name: 'p' }, spec: { completionTimeoutPerGiB: 1.5, allowPostCopy: 'yes' } }));
    expect(v).toMatchObject({ allowed: false, code: 422 });
    expect(v.allowed === false && v.message).toMatch(/^MigrationPolicy "p" is invalid: spec\.allowPostCopy: Invalid input: expected boolean.*, spec\.completionTimeoutPerGiB: Invalid input: expected int/);
  });

  test('a MaintenanceWindow must name nodes or a selector, and a valid duration', () => {
    const v = admitResource(req('ferry.dev', 'maintenancewindows', { metadata: { name: 'mw' }, spec: { window: { schedule: '0 2 * * *', duration: '2h' } } }));
    expect(v.allowed === false && v.message).toBe('MaintenanceWindow "mw" is invalid: spec.nodes: give either nodes or nodeSelector (exactly one)');
    expect(admitResource(req('ferry.dev', 'maintenancewindows', { metadata: { name: 'mw' }, spec: { nodes: ['n1'], window: { schedule: '0 2 * * *', duration: '2h' } } })).allowed).toBe(true);
  });

  test('KubeVirt: migrations settings and evictionStrategy from the controller\'s schemas; the rest of the CR is not Ferry\'s business', () => {
    const kv = (configuration: unknown) => req('kubevirt.io', 'kubevirts', { metadata: { name: 'kubevirt' }, spec: { configuration, certificateRotateStrategy: { anything: true } } }, 'UPDATE');
    expect(admitResource(kv({ migrations: { parallelOutboundMigrationsPerNode: 4, bandwidthPerMigration: '64Mi' }, evictionStrategy: 'LiveMigrate' })).allowed).toBe(true);
    const bad = admitResource(kv({ migrations: { bandwidthPerMigration: 'fast' }, evictionStrategy: 'Sometimes' }));
    expect(bad.allowed === false && bad.message).toMatch(/^KubeVirt "kubevirt" is invalid: spec\.configuration\.migrations\.bandwidthPerMigration: .*, spec\.configuration\.evictionStrategy: /);
  });

  test('deletes are never refused', () => {
    expect(admitResource(req('ferry.dev', 'maintenancewindows', undefined, 'DELETE')).allowed).toBe(true);
  });
});
