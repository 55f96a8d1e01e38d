import { describeApiError, isNotFound, VMI_RESOURCE, VMIM_RESOURCE } from '../../kube/client.js';
import { followMigration } from '../follow.js';
import { formatDuration } from '../format.js';
import { kubeClientFor, splitRef } from '../kubeconfig.js';

export async function runMigrate(ref: string, o: { kubeconfig?: string; node?: string; wait: boolean; timeout?: number }): Promise<void> {
  const { namespace, name } = splitRef(ref, 'VMI');
  const kube = kubeClientFor(o.kubeconfig);
  try {
    await kube.getCustom(VMI_RESOURCE, namespace, name);
  } catch (err) {
    if (isNotFound(err)) throw new Error(`VMI ${namespace}/${name} not found`);
    throw new Error(`cannot read VMI ${namespace}/${name}: ${describeApiError(err)}`);
  }
  const body = {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstanceMigration',
    metadata: { generateName: `${name}-migration-`, namespace },
    spec: { vmiName: name, ...(o.node ? { addedNodeSelector: { 'kubernetes.io/hostname': o.node } } : {}) },
  };
  let created: { metadata?: { name?: string } };
  try {
    created = (await kube.createCustom(VMIM_RESOURCE, namespace, body)) as typeof created;
  } catch (err) {
    throw new Error(`could not create the migration: ${describeApiError(err)}`);
  }
  const vmim = created.metadata?.name ?? '?';
  process.stdout.write(`virtualmachineinstancemigration.kubevirt.io/${vmim} created\n`);
  if (!o.wait) return;
  const result = await followMigration(kube, namespace, vmim, o.timeout ? { timeoutMs: o.timeout * 1000 } : {});
  const ms = result.vmim.status?.migrationState;
  if (result.phase === 'Succeeded') {
    process.stdout.write(`${namespace}/${name} migrated from ${ms?.sourceNode ?? '?'} to ${ms?.targetNode ?? '?'} in ${formatDuration(result.seconds)}\n`);
    return;
  }
  const reason = ms?.failureReason ?? result.vmim.status?.conditions?.find((c) => c.type === 'Failed')?.message ?? 'no reason recorded';
  throw new Error(`migration ${namespace}/${vmim} ${result.phase}: ${reason}`);
}
