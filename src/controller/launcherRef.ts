import type { Pod } from '../api/core.js';
import type { VirtualMachineInstance } from '../api/vmi.js';
import type { LauncherRef } from '../hypervisor/driver.js';

/**
 * What a handler needs to find a VMI's launcher on its node: the VMI's
 * active pods, pod UID → node. KubeVirt's controller keeps every running pod
 * of the VMI in status.activePods (setActivePods), the migration target's
 * included; Ferry's status carries the pod the VM runs in, so the VMI's other
 * started pods (the target) are added from the pod cache.
 */
export function launcherRef(vmi: VirtualMachineInstance, pods: readonly Pod[], disableTLS: boolean): LauncherRef {
  const activePods: Record<string, string> = { ...(vmi.status?.activePods ?? {}) };
  for (const p of pods) {
    const node = p.spec?.nodeName;
    if (p.metadata.uid && node && !p.metadata.deletionTimestamp && p.status?.phase === 'Running') activePods[p.metadata.uid] = node;
  }
  return disableTLS ? { activePods, disableTLS } : { activePods };
}
