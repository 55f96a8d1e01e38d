import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { parseObject } from '../api/meta.js';
import { MaintenanceWindow, MW_GROUP, MW_PLURAL, MW_VERSION } from '../api/maintenanceWindow.js';
import type { KubeClient } from '../kube/client.js';

/**
 * MaintenanceWindow objects over the API (cluster-scoped custom resources),
 * for the controller and the CLI. I/O only.
 */

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const ref = { group: MW_GROUP, version: MW_VERSION, plural: MW_PLURAL };

export const MW_PATH = `/apis/${MW_GROUP}/${MW_VERSION}/${MW_PLURAL}`;

export async function listMaintenanceWindowsRaw(kube: KubeClient): Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }> {
  return (await kube.custom.listClusterCustomObject(ref)) as { items: unknown[]; metadata?: { resourceVersion?: string } };
}

export function getMaintenanceWindowRaw(kube: KubeClient, name: string): Promise<unknown> {
  return kube.custom.getClusterCustomObject({ ...ref, name });
}

export async function getMaintenanceWindow(kube: KubeClient, name: string): Promise<MaintenanceWindow> {
  const r = parseObject(MaintenanceWindow, await getMaintenanceWindowRaw(kube, name));
  if (!r.ok) throw new Error(`MaintenanceWindow ${name} is malformed: ${r.reason}`);
  return r.value;
}

export function createMaintenanceWindow(kube: KubeClient, body: object): Promise<unknown> {
  return kube.custom.createClusterCustomObject({ ...ref, body });
}

export function patchMaintenanceWindow(kube: KubeClient, name: string, patch: object): Promise<unknown> {
  return kube.custom.patchClusterCustomObject({ ...ref, name, body: patch }, mergePatch);
}

export function patchMaintenanceWindowStatus(kube: KubeClient, name: string, status: object): Promise<unknown> {
  return kube.custom.patchClusterCustomObjectStatus({ ...ref, name, body: { status } }, mergePatch);
}

export function deleteMaintenanceWindow(kube: KubeClient, name: string): Promise<unknown> {
  return kube.custom.deleteClusterCustomObject({ ...ref, name });
}
