import { parseObject } from '../../src/api/meta.js';
import { Pod } from '../../src/api/core.js';
import { VirtualMachineInstance } from '../../src/api/vmi.js';
import { VirtualMachineInstanceMigration } from '../../src/api/vmim.js';
import { isNotFound, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../../src/kube/client.js';
import type { DevEnvironment } from '../../src/devcluster/environment.js';
import { waitFor } from './wait.js';

export async function getVmi(kube: KubeClient, name: string, ns = 'default'): Promise<VirtualMachineInstance> {
  const r = parseObject(VirtualMachineInstance, await kube.getCustom(VMI_RESOURCE, ns, name));
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

export async function getVmim(kube: KubeClient, name: string, ns = 'default'): Promise<VirtualMachineInstanceMigration | undefined> {
  try {
    const r = parseObject(VirtualMachineInstanceMigration, await kube.getCustom(VMIM_RESOURCE, ns, name));
    if (!r.ok) throw new Error(r.reason);
    return r.value;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export async function createVmim(kube: KubeClient, vmiName: string, opts: { name?: string; ns?: string; annotations?: Record<string, string>; addedNodeSelector?: Record<string, string> } = {}): Promise<string> {
  const created = (await kube.createCustom(VMIM_RESOURCE, opts.ns ?? 'default', {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstanceMigration',
    metadata: { ...(opts.name ? { name: opts.name } : { generateName: `${vmiName}-mig-` }), namespace: opts.ns ?? 'default', ...(opts.annotations ? { annotations: opts.annotations } : {}) },
    spec: { vmiName, ...(opts.addedNodeSelector ? { addedNodeSelector: opts.addedNodeSelector } : {}) },
  })) as { metadata: { name: string } };
  return created.metadata.name;
}

export async function waitForPhase(kube: KubeClient, name: string, phases: string[], timeoutMs = 20_000): Promise<VirtualMachineInstanceMigration> {
  return waitFor(`VMIM ${name} to reach ${phases.join('|')}`, async () => {
    const m = await getVmim(kube, name);
    return m && phases.includes(m.status?.phase ?? '') ? m : undefined;
  }, { timeoutMs });
}

export async function launcherPods(kube: KubeClient, vmiUid: string, ns = 'default'): Promise<Pod[]> {
  const list = await kube.core.listNamespacedPod({ namespace: ns, labelSelector: `kubevirt.io/created-by=${vmiUid}` });
  return list.items.flatMap((p) => {
    const r = parseObject(Pod, p);
    return r.ok ? [r.value] : [];
  });
}

/** Every node whose driver holds domain `name`, with its state there. */
export async function domainsOf(env: DevEnvironment, name: string): Promise<Array<{ node: string; state: string }>> {
  const out: Array<{ node: string; state: string }> = [];
  for (const [node, a] of env.agents) for (const d of await a.driver.listDomains()) if (d.name === name) out.push({ node, state: d.state });
  return out;
}
