import { sourcePodToRemove } from '../../../src/controller/sourcePod.js';

/** Chaos campaign seed 1000: back-to-back migrations under API faults left the earlier target pod (the later source) running. */
describe('the source launcher pod a successful migration removes', () => {
  const base = { uid: 'm2', markersMode: false, targetPod: 'virt-launcher-vm-1-m2', onSourceNode: () => 'virt-launcher-vm-1-m1' };

  it("takes the pod the VMI's migrationState names when that state is this migration's", () => {
    expect(sourcePodToRemove({ ...base, vmiState: { migrationUid: 'm2', sourcePod: 'virt-launcher-vm-1-m1' }, onSourceNode: () => undefined })).toBe('virt-launcher-vm-1-m1');
  });

  it("ignores a stale migrationState of the previous migration (its source pod is long gone) and finds the pod on the source node", () => {
    expect(sourcePodToRemove({ ...base, vmiState: { migrationUid: 'm1', sourcePod: 'virt-launcher-vm-1-m0' } })).toBe('virt-launcher-vm-1-m1');
  });

  it('never removes the target pod, and removes nothing when no source pod is known', () => {
    expect(sourcePodToRemove({ ...base, vmiState: { migrationUid: 'm2', sourcePod: 'virt-launcher-vm-1-m2' }, onSourceNode: () => undefined })).toBeUndefined();
    expect(sourcePodToRemove({ ...base, vmiState: null, onSourceNode: () => undefined })).toBeUndefined();
  });

  it('in markers mode trusts the source pod recorded on the VMIM', () => {
    expect(sourcePodToRemove({ ...base, markersMode: true, fromVmim: 'virt-launcher-vm-1-m1', vmiState: { migrationUid: 'm1', sourcePod: 'virt-launcher-vm-1-m0' }, onSourceNode: () => undefined })).toBe('virt-launcher-vm-1-m1');
  });
});
