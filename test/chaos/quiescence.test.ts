import { InvariantChecker } from '../../src/chaos/invariants.js';
import { nodeHeld, quiescenceViolations } from '../../src/chaos/quiescence.js';
import { MIGRATION_FINALIZER } from '../../src/api/vmim.js';
import type { StoredObject } from '../../src/devcluster/object.js';

/** The end-state checks the campaign makes once the faults have stopped: what an operator would find left over. */
const obj = (o: Record<string, unknown> & { metadata: Record<string, unknown> }): StoredObject => o as unknown as StoredObject;
const checker = () => new InvariantChecker({ limits: { cluster: 5, outboundPerNode: 2, inboundPerNode: 2, nicCapacity: () => 1e9, bandwidthBudget: 1e9 }, migrationBoundMs: 1000, transitBoundMs: 1000 });
const vmim = (name: string, phase: string, meta: Record<string, unknown> = {}) =>
  obj({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name, namespace: 'default', uid: `uid-${name}`, ...meta }, spec: { vmiName: 'vm-1' }, status: { phase } });
const node = (name: string, spec: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) => obj({ apiVersion: 'v1', kind: 'Node', metadata: { name, ...meta }, spec });
const check = (s: { vmims?: StoredObject[]; nodes?: StoredObject[]; maintenanceWindows?: StoredObject[] }) =>
  quiescenceViolations({ at: 1, vmis: [], pods: [], pdbs: [], vmims: s.vmims ?? [], checker: checker(), handlerJobs: [], nodes: s.nodes ?? [], maintenanceWindows: s.maintenanceWindows ?? [] }).map((v) => `${v.subject}: ${v.message}`);

describe('quiescence checks', () => {
  it('passes a clean end state: final migrations without finalizers, nodes in service, runbooks ended', () => {
    expect(check({
      vmims: [vmim('a', 'Succeeded'), vmim('b', 'Failed', { finalizers: ['someone.else/keep'] })],
      nodes: [node('node-1'), node('node-2', { unschedulable: false, taints: [{ key: 'other', effect: 'NoSchedule' }] })],
      maintenanceWindows: [obj({ metadata: { name: 'mw' }, status: { phase: 'Completed' } })],
    })).toEqual([]);
  });

  it("reports Ferry's finalizer left on a final migration, and a deleted migration that is still there", () => {
    expect(check({
      vmims: [
        vmim('a', 'Succeeded', { finalizers: [MIGRATION_FINALIZER] }),
        vmim('b', 'Running', { deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [MIGRATION_FINALIZER] }),
      ],
    })).toEqual([
      `default/a: finalizer ${MIGRATION_FINALIZER} left on a Succeeded migration`,
      'default/b: migration still Running after the faults stopped',
      `default/b: deleted at 2026-01-01T00:00:00Z but still there (finalizers: ${MIGRATION_FINALIZER})`,
    ]);
  });

  it("reports a handler whose view of its hypervisor differs from the journal's truth (leaked or lost state)", () => {
    const c = checker();
    c.journal({ at: 0, node: 'node-1', domain: 'default_vm-1', state: 'running' });
    c.journal({ at: 0, node: 'node-1', domain: 'default_vm-2', state: 'running' });
    c.journal({ at: 1, node: 'node-1', domain: 'default_vm-3', state: 'incoming', migrationId: 'm' });
    c.journal({ at: 2, node: 'node-1', domain: 'default_vm-3', state: 'gone' });
    const v = quiescenceViolations({
      at: 3, vmis: [], pods: [], pdbs: [], vmims: [], checker: c, handlerJobs: [],
      handlerDomains: new Map([
        ['node-1', [{ name: 'default_vm-1', state: 'running' }, { name: 'default_vm-3', state: 'incoming' }]],
        ['node-2', []],
      ]),
    }).map((x) => `${x.subject}: ${x.message}`);
    expect(v).toEqual([
      'node-1: handler reports default_vm-3 incoming, the journal says gone',
      'node-1: handler does not know default_vm-2, which the journal says is running there',
    ]);
  });

  it('reports a node left cordoned, drain-tainted or held by a runbook, and a runbook that never ended', () => {
    expect(check({
      nodes: [
        node('node-1', { unschedulable: true }),
        node('node-2', { taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] }, { annotations: { 'ferry.dev/maintenance-window': 'mw' }, labels: { 'ferry.dev/maintenance': 'ready' } }),
      ],
      maintenanceWindows: [obj({ metadata: { name: 'mw' }, status: { phase: 'Running' } })],
    })).toEqual([
      'node/node-1: not back in service after the drains and runbooks ended: cordoned',
      'node/node-2: not back in service after the drains and runbooks ended: tainted kubevirt.io/drain, held by maintenance window mw, labelled ferry.dev/maintenance=ready',
      'maintenancewindow/mw: runbook still Running after the faults stopped',
    ]);
    expect(nodeHeld(node('node-3', { unschedulable: false }))).toBeUndefined();
  });
});
