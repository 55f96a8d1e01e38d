import { z } from 'zod';
import { KubeConfig } from '@kubernetes/client-node';
import { describeApiError, KubeClient, statusCode, VMIM_RESOURCE } from '../kube/client.js';
import { patchMaintenanceWindow } from '../runbook/api.js';
import type { ActionResult, ConsoleAction } from './model.js';

/**
 * What the console's buttons do, made with the user's own credentials: the
 * kubeconfig `ferry console` runs with, or the bearer token the browser sent.
 * The console holds no rights of its own, so whatever RBAC refuses the user
 * is refused here, with the API server's own words.
 */

const name = z.string().min(1).max(253);
export const ConsoleActionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('migrate'), namespace: name, vmi: name, node: name.optional() }),
  z.object({ action: z.literal('cancel'), namespace: name, name }),
  z.object({ action: z.literal('drain'), node: name }),
  z.object({ action: z.literal('uncordon'), node: name }),
  z.object({ action: z.enum(['pause', 'resume']), runbook: name }),
]);

/** The same cluster and TLS settings as `base`, but the user a bearer token stands for. */
export function clientWithToken(base: KubeClient, token: string): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromString(base.kc.exportConfig());
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the console\'s kubeconfig has no current cluster');
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'console-user', token }],
    contexts: [{ name: 'console', cluster: cluster.name, user: 'console-user' }],
    currentContext: 'console',
  });
  return new KubeClient(kc);
}

export interface NodeDrainOps {
  drain(kube: KubeClient, node: string): Promise<string>;
  uncordon(kube: KubeClient, node: string): Promise<string>;
}

export async function runAction(kube: KubeClient, a: ConsoleAction, nodes: NodeDrainOps): Promise<ActionResult> {
  try {
    switch (a.action) {
      case 'migrate': {
        const body = {
          apiVersion: 'kubevirt.io/v1',
          kind: 'VirtualMachineInstanceMigration',
          metadata: { generateName: `${a.vmi}-migration-`, namespace: a.namespace },
          spec: { vmiName: a.vmi, ...(a.node ? { addedNodeSelector: { 'kubernetes.io/hostname': a.node } } : {}) },
        };
        const created = (await kube.createCustom(VMIM_RESOURCE, a.namespace, body)) as { metadata?: { name?: string } };
        return { ok: true, message: `migration ${a.namespace}/${created.metadata?.name ?? '?'} created for ${a.vmi}` };
      }
      case 'cancel':
        await kube.deleteCustom(VMIM_RESOURCE, a.namespace, a.name);
        return { ok: true, message: `migration ${a.namespace}/${a.name} cancelled; the VM stays on its source unless it already switched over` };
      case 'drain':
        return { ok: true, message: await nodes.drain(kube, a.node) };
      case 'uncordon':
        return { ok: true, message: await nodes.uncordon(kube, a.node) };
      case 'pause':
      case 'resume':
        await patchMaintenanceWindow(kube, a.runbook, { spec: { paused: a.action === 'pause' } });
        return { ok: true, message: `runbook ${a.runbook} ${a.action === 'pause' ? 'paused: no new node starts' : 'resumed'}` };
    }
  } catch (err) {
    return { ok: false, status: statusCode(err) ?? 500, message: describeApiError(err).replace(/^\d+: /, '') };
  }
}
