import { objectKey } from '../api/meta.js';
import { Labels } from '../api/vmi.js';
import { MIGRATION_FINALIZER, type VirtualMachineInstanceMigration } from '../api/vmim.js';
import { isConflict, isNotFound, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';

/**
 * The VMIM's finalizer: added on first sight (so a delete becomes an abort the
 * controller sees, not a vanished object), removed once the migration is final
 * and what it left is undone. Both are JSON patches guarded by the read's
 * resourceVersion; a lost race is left to the watch, which brings the object back.
 */

/** First sight of a VMIM: add our finalizer and the vmi-name label. */
export async function adopt(kube: KubeClient, vmim: VirtualMachineInstanceMigration): Promise<void> {
  const finalizers = [...new Set([...(vmim.metadata.finalizers ?? []), MIGRATION_FINALIZER])];
  try {
    await kube.patchCustomJson(VMIM_RESOURCE, vmim.metadata.namespace ?? 'default', vmim.metadata.name, [
      { op: 'test', path: '/metadata/resourceVersion', value: vmim.metadata.resourceVersion },
      { op: 'add', path: '/metadata/finalizers', value: finalizers },
      { op: 'add', path: '/metadata/labels', value: { ...(vmim.metadata.labels ?? {}), [Labels.vmiName]: vmim.spec.vmiName } },
    ]);
  } catch (err) {
    // 422: the resourceVersion test failed, so the object changed and its event is on the way; gone: nothing to adopt.
    // A 409 is not that: the write was refused and nothing changed, so no event will come. It is retried (the
    // queue's back-off): taken as done, it left VMIMs created under API faults untouched for good (chaos seed 13).
    if (isNotFound(err) || (err as { code?: number }).code === 422) return;
    throw err;
  }
}

/** Is this VMIM adopted (our finalizer and the vmi-name label on it)? */
export function adopted(vmim: VirtualMachineInstanceMigration): boolean {
  return (vmim.metadata.finalizers ?? []).includes(MIGRATION_FINALIZER) && vmim.metadata.labels?.[Labels.vmiName] === vmim.spec.vmiName;
}

/**
 * Lets the VMIM go; a lost race requeues its key (`requeue`), a gone object is fine.
 * Says whether this call removed it.
 */
export async function removeFinalizer(kube: KubeClient, vmim: VirtualMachineInstanceMigration, requeue: (key: string) => void): Promise<boolean> {
  const finalizers = vmim.metadata.finalizers ?? [];
  if (!finalizers.includes(MIGRATION_FINALIZER)) return false;
  try {
    await kube.patchCustomJson(VMIM_RESOURCE, vmim.metadata.namespace ?? 'default', vmim.metadata.name, [
      { op: 'test', path: '/metadata/resourceVersion', value: vmim.metadata.resourceVersion },
      { op: 'replace', path: '/metadata/finalizers', value: finalizers.filter((f) => f !== MIGRATION_FINALIZER) },
    ]);
  } catch (err) {
    if (isConflict(err) || isNotFound(err) || (err as { code?: number }).code === 422) {
      if (!isNotFound(err)) requeue(objectKey({ namespace: vmim.metadata.namespace, name: vmim.metadata.name }));
      return false;
    }
    throw err;
  }
  return true;
}
