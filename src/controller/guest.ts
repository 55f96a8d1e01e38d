import { parseQuantity } from '../api/quantity.js';
import { Annotations, type VirtualMachineInstance } from '../api/vmi.js';
import type { GuestSpec } from '../hypervisor/driver.js';

/** KubeVirt's libvirt domain name for a VMI. */
export function domainName(vmi: VirtualMachineInstance): string {
  return `${vmi.metadata.namespace ?? 'default'}_${vmi.metadata.name}`;
}

export function guestMemoryBytes(vmi: VirtualMachineInstance): number {
  const q = vmi.spec.domain?.memory?.guest ?? vmi.spec.domain?.resources?.requests?.['memory'];
  if (q === undefined) return 1024 ** 3; // KubeVirt's own fallback is the pod request; 1Gi keeps sims sane
  return parseQuantity(q);
}

/** What the handler needs to know about the guest; the sim reads its behaviour from annotations. */
export function guestSpecFor(vmi: VirtualMachineInstance): GuestSpec {
  const ann = vmi.metadata.annotations ?? {};
  const num = (k: string): number | undefined => {
    const v = ann[k];
    if (v === undefined) return undefined;
    try { return parseQuantity(v); } catch { return undefined; }
  };
  const spec: GuestSpec = { name: domainName(vmi), memoryBytes: guestMemoryBytes(vmi) };
  const dirty = num(Annotations.simDirtyRate);
  const ws = num(Annotations.simWorkingSet);
  if (dirty !== undefined) spec.dirtyRate = dirty;
  if (ws !== undefined) spec.workingSet = ws;
  const zero = Number(ann[Annotations.simZeroFraction]);
  if (ann[Annotations.simZeroFraction] !== undefined && zero >= 0 && zero <= 1) spec.zeroFraction = zero;
  return spec;
}
