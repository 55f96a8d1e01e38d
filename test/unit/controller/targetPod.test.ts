import { describe, expect, it } from '@jest/globals';
import { buildTargetPod, targetPodName } from '../../../src/controller/targetPod.js';

describe('the target pod', () => {
  it('has a name fixed by the migration, so a retried create meets its own pod', () => {
    const a = targetPodName('vm-1', '73e575a0-9466-495b-9d7b-c678823f1aee', 1);
    expect(a).toBe('virt-launcher-vm-1-73e575a0-1');
    expect(targetPodName('vm-1', '73e575a0-9466-495b-9d7b-c678823f1aee', 1)).toBe(a);
    expect(targetPodName('vm-1', '73e575a0-9466-495b-9d7b-c678823f1aee', 2)).not.toBe(a);
  });

  it('keeps a long VMI name within 63 characters and ends on an alphanumeric', () => {
    const n = targetPodName(`${'x'.repeat(70)}-`, 'abcdef12-0000', 1);
    expect(n.length).toBeLessThanOrEqual(63);
    expect(n).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });

  it('keeps the user\'s node over the placement, and the VM\'s selector over the user\'s', () => {
    const vmi = { metadata: { name: 'vm-1', namespace: 'default', uid: 'vmi-uid' }, spec: { nodeSelector: { disk: 'ssd' } } };
    const vmim = { metadata: { name: 'm', namespace: 'default', uid: 'mig-uid' }, spec: { vmiName: 'vm-1', addedNodeSelector: { zone: 'a', disk: 'hdd' } } };
    const pod = buildTargetPod({ vmim, vmi, sourcePod: undefined, targetNode: 'node-2', name: 'virt-launcher-vm-1-miguid-1' });
    expect(pod.metadata?.name).toBe('virt-launcher-vm-1-miguid-1');
    expect(pod.metadata?.generateName).toBeUndefined();
    expect(pod.spec?.nodeSelector).toEqual({ zone: 'a', disk: 'ssd', 'kubernetes.io/hostname': 'node-2' });
  });
});
