import { describe, expect, it } from '@jest/globals';
import type { Pod } from '../../../src/api/core.js';
import { sidesFromPods } from '../../../src/controller/sidesFromPods.js';

const UID = 'a399cee7-9feb-44aa-84c6-b1d00ac80978';
function pod(name: string, node: string | undefined, migration?: string, deleting = false): Pod {
  return {
    metadata: {
      name,
      namespace: 'default',
      labels: { 'kubevirt.io': 'virt-launcher', 'kubevirt.io/created-by': 'vmi-uid', ...(migration ? { 'kubevirt.io/migrationJobUID': migration } : {}) },
      ...(deleting ? { deletionTimestamp: '2026-12-03T18:00:00Z' } : {}),
    },
    spec: { containers: [], ...(node ? { nodeName: node } : {}) },
  } as unknown as Pod;
}

describe('the sides of a migration, from the launcher pods alone', () => {
  it('takes the target from the pod with this migration\'s label, and the source from the one other pod (itself an earlier migration\'s target)', () => {
    expect(sidesFromPods([pod('virt-launcher-vm-2-e5254fc8-1', 'node-4', 'e5254fc8'), pod('virt-launcher-vm-2-a399cee7-1', 'node-1', UID)], UID)).toEqual({
      source: 'node-4',
      target: 'node-1',
      targetPod: 'virt-launcher-vm-2-a399cee7-1',
    });
  });

  it('says nothing it cannot say unambiguously', () => {
    // Two other pods on two nodes: which one runs the guest is not for the pods to tell.
    expect(sidesFromPods([pod('a', 'node-3'), pod('b', 'node-4'), pod('t', 'node-1', UID)], UID)).toEqual({ target: 'node-1', targetPod: 't' });
    // No target pod (deleted, or not placed): only the source.
    expect(sidesFromPods([pod('a', 'node-3'), pod('t', 'node-1', UID, true), pod('u', undefined, UID)], UID)).toEqual({ source: 'node-3' });
    expect(sidesFromPods([], UID)).toEqual({});
  });
});
