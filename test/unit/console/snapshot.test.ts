import type { Node } from '../../../src/api/core.js';
import type { MaintenanceWindow } from '../../../src/api/maintenanceWindow.js';
import type { VirtualMachineInstance } from '../../../src/api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { buildSnapshot, type DrainMemory } from '../../../src/console/snapshot.js';

const GiB = 1024 ** 3;
const T0 = Date.parse('2026-12-03T10:00:00Z');

const node = (name: string, drainTaint = false): Node => ({
  metadata: { name },
  spec: drainTaint ? { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } : {},
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});

const vmi = (name: string, nodeName: string, memory: string, migrationUid?: string, target?: string): VirtualMachineInstance => ({
  metadata: { name, namespace: 'default' },
  spec: { domain: { memory: { guest: memory } } },
  status: {
    phase: 'Running',
    nodeName,
    ...(migrationUid ? { migrationState: { migrationUid, sourceNode: nodeName, targetNode: target, mode: 'PreCopy' as const } } : {}),
  },
});

const vmim = (name: string, uid: string, vmiName: string, phase: string, extra: Partial<NonNullable<VirtualMachineInstanceMigration['status']>> = {}, evacuation?: string): VirtualMachineInstanceMigration => ({
  metadata: { name, namespace: 'default', uid, creationTimestamp: new Date(T0).toISOString(), ...(evacuation ? { annotations: { 'kubevirt.io/evacuationMigration': evacuation } } : {}) },
  spec: { vmiName },
  status: { phase: phase as 'Running', ...extra },
});

describe('the console snapshot', () => {
  test('an in-flight migration takes source and target from its VMI, with rate, progress and ETA', () => {
    const snap = buildSnapshot(
      {
        nodes: [node('node-1'), node('node-2')],
        vmis: [vmi('vm-1', 'node-1', '2Gi', 'uid-1', 'node-2')],
        vmims: [vmim('m1', 'uid-1', 'vm-1', 'Running', { progress: { dataTotal: 2 * GiB, dataProcessed: GiB, dataRemaining: GiB, memoryBandwidth: 100 * 1024 ** 2, etaSeconds: 10 } })],
        runbooks: [],
        queueReasons: new Map(),
      },
      { now: T0, server: 'https://k8s', taintKey: 'kubevirt.io/drain', drains: new Map() },
    );
    expect(snap.migrations[0]).toMatchObject({ vmi: 'vm-1', sourceNode: 'node-1', targetNode: 'node-2', dataProcessed: GiB, bytesPerSecond: 100 * 1024 ** 2, etaSeconds: 10, mode: 'PreCopy' });
    expect(snap.nodes[0]!.vms[0]).toMatchObject({ name: 'vm-1', migrating: true, memoryBytes: 2 * GiB });
  });

  test('a queued migration carries the controller\'s admission reason; once admitted it no longer does', () => {
    const reasons = new Map([['uid-2', 'outbound limit on node-1 (2/2)']]);
    const objs = { nodes: [node('node-1')], vmis: [], runbooks: [], queueReasons: reasons };
    const opts = { now: T0, server: '', taintKey: 'kubevirt.io/drain', drains: new Map<string, DrainMemory>() };
    expect(buildSnapshot({ ...objs, vmims: [vmim('m2', 'uid-2', 'vm-2', 'Pending')] }, opts).migrations[0]!.queueReason).toBe('outbound limit on node-1 (2/2)');
    expect(buildSnapshot({ ...objs, vmims: [vmim('m2', 'uid-2', 'vm-2', 'Scheduling')] }, opts).migrations[0]!.queueReason).toBeUndefined();
  });

  test('a drain predicts its end from bytes left and the rate leaving the node, and records when the node became empty', () => {
    const drains = new Map<string, DrainMemory>();
    const opts = (now: number) => ({ now, server: '', taintKey: 'kubevirt.io/drain', drains });
    const running = vmim('m3', 'uid-3', 'vm-3', 'Running', { progress: { dataTotal: 2 * GiB, dataProcessed: GiB, dataRemaining: GiB, memoryBandwidth: 0.5 * GiB } }, 'node-1');
    const during = buildSnapshot({ nodes: [node('node-1', true), node('node-2')], vmis: [vmi('vm-3', 'node-1', '2Gi', 'uid-3', 'node-2'), vmi('vm-4', 'node-1', '1Gi')], vmims: [running], runbooks: [], queueReasons: new Map() }, opts(T0));
    // 1 GiB left of vm-3 plus all of vm-4 (1 GiB) at 0.5 GiB/s: 4 s.
    expect(during.drains[0]).toMatchObject({ node: 'node-1', vmsLeft: 2, vmsTotal: 2, bytesLeft: 2 * GiB, bytesPerSecond: 0.5 * GiB, predictedEnd: new Date(T0 + 4000).toISOString(), startedAt: new Date(T0).toISOString() });
    expect(during.drains[0]!.finishedAt).toBeUndefined();

    const empty = buildSnapshot({ nodes: [node('node-1', true), node('node-2')], vmis: [vmi('vm-3', 'node-2', '2Gi'), vmi('vm-4', 'node-2', '1Gi')], vmims: [], runbooks: [], queueReasons: new Map() }, opts(T0 + 5000));
    expect(empty.drains[0]).toMatchObject({ vmsLeft: 0, vmsTotal: 2, finishedAt: new Date(T0 + 5000).toISOString(), startedAt: new Date(T0).toISOString() });
    expect(empty.drains[0]!.predictedEnd).toBeUndefined();
    // The end stays where it was seen.
    expect(buildSnapshot({ nodes: [node('node-1', true)], vmis: [], vmims: [], runbooks: [], queueReasons: new Map() }, opts(T0 + 9000)).drains[0]!.finishedAt).toBe(new Date(T0 + 5000).toISOString());

    // Uncordoned: the drain is gone, and forgotten.
    expect(buildSnapshot({ nodes: [node('node-1')], vmis: [], vmims: [], runbooks: [], queueReasons: new Map() }, opts(T0 + 10_000)).drains).toEqual([]);
    expect(drains.size).toBe(0);
  });

  test('a runbook shows its planned end beside the current estimate and per-node progress', () => {
    const mw = {
      metadata: { name: 'rack-a' },
      spec: { nodes: ['node-1'], maxNodesInMaintenance: 1, window: {}, done: { uncordoned: true }, paused: true },
      status: {
        phase: 'Running', progress: '0/1', eta: '2026-12-03T10:12:00Z', window: { start: '2026-12-03T10:00:00Z', end: '2026-12-03T11:00:00Z' },
        plan: { createdAt: '2026-12-03T10:00:00Z', order: ['node-1'], batches: [['node-1']], predictedEnd: '2026-12-03T10:10:00Z', wontFit: [] },
        nodes: [{ name: 'node-1', phase: 'Evacuating', batch: 1, vmsMoved: 1, vmsTotal: 3, predictedFinish: '2026-12-03T10:10:00Z' }],
      },
    } as unknown as MaintenanceWindow;
    const snap = buildSnapshot({ nodes: [], vmis: [], vmims: [], runbooks: [mw], queueReasons: new Map() }, { now: T0, server: '', taintKey: 'kubevirt.io/drain', drains: new Map() });
    expect(snap.runbooks[0]).toEqual({
      name: 'rack-a', phase: 'Running', paused: true, progress: '0/1', windowStart: '2026-12-03T10:00:00Z', windowEnd: '2026-12-03T11:00:00Z',
      predictedEnd: '2026-12-03T10:10:00Z', eta: '2026-12-03T10:12:00Z',
      nodes: [{ name: 'node-1', phase: 'Evacuating', batch: 1, vmsMoved: 1, vmsTotal: 3, predictedFinish: '2026-12-03T10:10:00Z' }],
    });
  });
});
