import type { V1Pod } from '@kubernetes/client-node';
import type { VirtualMachineInstance } from '../api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { Pod } from '../api/core.js';
import { targetPodParts } from './launcherPodSpec.js';

/**
 * Renders the target launcher pod for a migration from the source launcher pod,
 * the way KubeVirt does: same containers and requests, never on the source
 * node (required anti-affinity on the VMI's created-by label), the VMIM's
 * addedNodeSelector added, and labels tying it to the migration so it is found
 * by label after a restart rather than by a remembered name.
 */
/**
 * The target pod's name, fixed by the migration: `virt-launcher-<vmi>-<uid prefix>-<attempt>`.
 * A create whose answer was lost and is retried then meets its own pod
 * (AlreadyExists) instead of making a second one. Kept within 63 characters.
 */
export function targetPodName(vmiName: string, migrationUid: string, attempt: number): string {
  const suffix = `-${migrationUid.replace(/[^a-z0-9]/g, '').slice(0, 8)}-${attempt}`;
  const head = `virt-launcher-${vmiName}`.slice(0, 63 - suffix.length).replace(/[-.]+$/, '');
  return `${head}${suffix}`;
}

export function buildTargetPod(opts: {
  vmim: VirtualMachineInstanceMigration;
  vmi: VirtualMachineInstance;
  sourcePod: Pod | undefined;
  /** Set when the limits core chose the target node (inbound limits need it), or the user named one. */
  targetNode?: string | undefined;
  /** A fixed name (see targetPodName); without it the API server generates one. */
  name?: string | undefined;
}): V1Pod {
  const { vmim, vmi, sourcePod } = opts;
  const vmiUid = vmi.metadata.uid ?? '';
  const memory = vmi.spec.domain?.resources?.requests?.['memory'] ?? vmi.spec.domain?.memory?.guest ?? '1Gi';

  const nodeSelector: Record<string, string> = {
    ...(vmim.spec.addedNodeSelector ?? {}),
    // The VM's own selector wins on key collisions, as in KubeVirt.
    ...(vmi.spec.nodeSelector ?? {}),
    ...(opts.targetNode ? { 'kubernetes.io/hostname': opts.targetNode } : {}),
  };

  const { labels, annotations, spec } = targetPodParts({
    source: sourcePod ? { labels: sourcePod.metadata.labels, annotations: sourcePod.metadata.annotations, spec: sourcePod.spec } : undefined,
    vmiName: vmi.metadata.name,
    vmiUid,
    migrationUid: vmim.metadata.uid ?? '',
    migrationName: vmim.metadata.name,
    nodeSelector,
    fallbackContainers: [{ name: 'compute', image: 'ferry.dev/virt-launcher:sim', resources: { requests: { memory: String(memory) } } }],
  });

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(opts.name ? { name: opts.name } : { generateName: `virt-launcher-${vmi.metadata.name}-` }),
      namespace: vmi.metadata.namespace,
      labels,
      annotations,
      ownerReferences: [
        { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', name: vmi.metadata.name, uid: vmiUid, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec,
  };
}
