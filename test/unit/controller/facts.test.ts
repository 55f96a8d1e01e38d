import { describe, expect, it } from '@jest/globals';
import type { Pod } from '../../../src/api/core.js';
import type { VirtualMachineInstance } from '../../../src/api/vmi.js';
import { isStalePlacement } from '../../../src/controller/stalePlacement.js';
import { factOf, type Observed } from '../../../src/controller/facts.js';

const vmi = (over: Partial<VirtualMachineInstance['status']> = {}, meta: Partial<VirtualMachineInstance['metadata']> = {}): VirtualMachineInstance => ({
  metadata: { name: 'vm-a', namespace: 'default', uid: 'vmi-uid', ...meta },
  spec: { evictionStrategy: 'LiveMigrate' },
  status: { phase: 'Running', nodeName: 'node-a', conditions: [{ type: 'LiveMigratable', status: 'True' }], ...over },
});
const pod = (over: { node?: string; phase?: string; ready?: boolean; unschedulable?: string; deleting?: boolean } = {}): Pod => ({
  metadata: { name: 'virt-launcher-vm-a-mig-1', namespace: 'default', ...(over.deleting ? { deletionTimestamp: '2026-12-03T12:00:00Z' } : {}) },
  spec: over.node ? { nodeName: over.node } : {},
  status: {
    phase: over.phase ?? (over.ready ? 'Running' : 'Pending'),
    conditions: [
      ...(over.ready ? [{ type: 'Ready', status: 'True' }] : []),
      ...(over.unschedulable ? [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: over.unschedulable }] : []),
    ],
  },
} as Pod);
const observed = (over: Partial<Observed> = {}): Observed => ({
  phase: 'Running', vmiKey: 'default/vm-a', deleted: false, vmi: vmi(), targetPods: [], targetPodSeen: false, otherActive: undefined, ...over,
});

describe('facts: what the objects tell the chart', () => {
  it('a deleted VMIM is an abort, whatever else is true', () => {
    expect(factOf(observed({ deleted: true, vmi: undefined })).event).toEqual({ type: 'ABORT', reason: 'VMIM was deleted' });
  });

  it('a missing or stopped VMI rejects a pending migration and ends a started one', () => {
    expect(factOf(observed({ phase: 'Pending', vmi: undefined })).event).toEqual({ type: 'REJECTED', reason: 'VMI default/vm-a does not exist' });
    expect(factOf(observed({ vmi: vmi({ phase: 'Succeeded' }) })).event).toEqual({ type: 'VMI_GONE', reason: 'VMI default/vm-a is Succeeded' });
  });

  it('a migration pinned to the node the VM already runs on is rejected at once, saying so', () => {
    expect(factOf(observed({ phase: 'Pending', pinnedHostname: 'node-a' })).event).toEqual({ type: 'REJECTED', reason: 'VMI default/vm-a already runs on node-a, the node spec.addedNodeSelector names' });
    expect(factOf(observed({ phase: 'Pending', pinnedHostname: 'node-b' })).event).toBeUndefined();
  });

  it('one active migration per VMI: a pending one behind another is rejected, naming it', () => {
    expect(factOf(observed({ phase: 'Pending', otherActive: 'default/first' })).event).toMatchObject({ type: 'REJECTED', reason: expect.stringMatching(/another migration job \(default\/first\)/) });
    expect(factOf(observed({ phase: 'Pending' })).event).toBeUndefined();
  });

  it('a target pod Ferry pinned to a node cordoned since fails at once, not after the unschedulable timeout', () => {
    const refused = pod({ unschedulable: '0/3 nodes are available: 1 node(s) were unschedulable' });
    expect(factOf(observed({ phase: 'Scheduling', targetPods: [refused], placementCordoned: 'node-c' })).event).toEqual({
      type: 'TARGET_POD_GONE', reason: 'node node-c, where Ferry placed it, was cordoned before it could be scheduled there',
    });
    // Not before the scheduler has refused it (it may have been bound just before the cordon)…
    expect(factOf(observed({ phase: 'Scheduling', targetPods: [pod()], placementCordoned: 'node-c' })).event).toBeUndefined();
    // …and never once it is bound.
    expect(factOf(observed({ phase: 'Scheduling', targetPods: [pod({ node: 'node-c' })], placementCordoned: 'node-c' })).event).toEqual({ type: 'TARGET_POD_SCHEDULED', node: 'node-c', pod: 'virt-launcher-vm-a-mig-1' });
  });

  it('a target pod Ferry pinned to the node the VM has moved to since fails at once: it is anti-affine to the VM\'s own pod there', () => {
    const reason = 'node node-c, where Ferry placed it, is where the VM runs now';
    // Whether or not the scheduler has said so yet: no node can ever take it.
    expect(factOf(observed({ phase: 'Scheduling', targetPods: [pod()], placementOnSource: 'node-c' })).event).toEqual({ type: 'TARGET_POD_GONE', reason });
    expect(factOf(observed({ phase: 'Scheduling', targetPods: [pod({ unschedulable: '0/3 nodes are available' })], placementOnSource: 'node-c' })).event).toEqual({ type: 'TARGET_POD_GONE', reason });
    // A bound pod is the scheduler's word that it fits.
    expect(factOf(observed({ phase: 'Scheduling', targetPods: [pod({ node: 'node-c' })], placementOnSource: 'node-c' })).event).toMatchObject({ type: 'TARGET_POD_SCHEDULED' });
    // It counts as a stale placement: the evacuation retries at once, with a new placement.
    expect(isStalePlacement(`target pod failed: ${reason}`)).toBe(true);
  });

  it('follows the target pod: scheduled, unschedulable, ready, then gone', () => {
    expect(factOf(observed({ phase: 'Scheduling', targetPods: [pod({ unschedulable: '0/3 nodes are available' })] })).event).toEqual({ type: 'TARGET_POD_UNSCHEDULABLE', message: '0/3 nodes are available' });
    expect(factOf(observed({ phase: 'Scheduling', targetPods: [pod({ node: 'node-b' })] })).event).toMatchObject({ type: 'TARGET_POD_SCHEDULED', node: 'node-b' });
    const ready = factOf(observed({ phase: 'Scheduling', targetPods: [pod({ node: 'node-b', ready: true })] }));
    expect(ready).toMatchObject({ event: { type: 'TARGET_POD_READY', node: 'node-b' }, targetPodSeen: true });
    // Absent before it was ever seen: not created yet. Absent after: deleted.
    expect(factOf(observed({ targetPods: [] })).event).toBeUndefined();
    expect(factOf(observed({ targetPods: [], targetPodSeen: true })).event).toEqual({ type: 'TARGET_POD_GONE', reason: 'target pod was deleted' });
    expect(factOf(observed({ targetPods: [pod({ node: 'node-b', deleting: true })], targetPodSeen: true })).event).toMatchObject({ type: 'TARGET_POD_GONE' });
    expect(factOf(observed({ targetPods: [pod({ node: 'node-b', phase: 'Failed' })] })).event).toMatchObject({ type: 'TARGET_POD_GONE', reason: expect.stringMatching(/is Failed/) });
  });

  it('says nothing about pods once the migration is final', () => {
    expect(factOf(observed({ phase: 'Succeeded', targetPods: [], targetPodSeen: true })).event).toBeUndefined();
  });
});
