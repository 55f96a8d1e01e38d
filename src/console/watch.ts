import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { Node } from '../api/core.js';
import { MaintenanceWindow } from '../api/maintenanceWindow.js';
import { parseObject } from '../api/meta.js';
import { VirtualMachineInstance } from '../api/vmi.js';
import { queuedReason, VirtualMachineInstanceMigration } from '../api/vmim.js';
import { VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { startInformer, type KeepAliveInformer } from '../kube/informer.js';
import { listMaintenanceWindowsRaw, MW_PATH } from '../runbook/api.js';
import type { Logger } from '../util/log.js';
import type { ClusterObjects } from './snapshot.js';

type Obj = KubernetesObject;

export interface ClusterWatch {
  objects(): ClusterObjects;
  /** Watches that could not start (no such resource, or RBAC says no), in a sentence each. */
  unavailable(): string[];
  stop(): Promise<void>;
}

function parsed<T>(inf: KeepAliveInformer<Obj> | undefined, parse: (raw: unknown) => { ok: true; value: T } | { ok: false }): T[] {
  if (!inf) return [];
  return inf.list().flatMap((raw) => {
    const r = parse(raw);
    return r.ok ? [r.value] : [];
  });
}

/**
 * List-watches of what the console shows (nodes, VMIs, migrations with their
 * admission reasons, runbooks), with the user's credentials. Each
 * change calls `onChange`; the caller decides when to redraw.
 */
export async function startClusterWatch(kube: KubeClient, log: Logger, onChange: () => void): Promise<ClusterWatch> {
  const missing: string[] = [];
  const informers: Array<KeepAliveInformer<Obj>> = [];
  const watch = async (what: string, path: string, list: () => Promise<unknown>, changed: (o: Obj, t: 'add' | 'update' | 'delete') => void = () => onChange()) => {
    const inf = startInformer<Obj>({ kc: kube.kc, path, list: list as () => Promise<KubernetesListObject<Obj>>, onChange: changed, log });
    try {
      await inf.start();
      informers.push(inf);
      return inf;
    } catch (err) {
      await inf.stop().catch(() => undefined);
      const e = err as { code?: number; body?: unknown; message?: string };
      missing.push(`${what}: ${e.code ?? ''} ${typeof e.body === 'string' ? e.body.slice(0, 200) : e.message ?? String(err)}`.trim());
      log.warn({ what, err: String(e.message ?? err) }, 'console cannot watch this; it is left out');
      return undefined;
    }
  };
  const [nodes, vmis, vmims, runbooks] = await Promise.all([
    watch('nodes', '/api/v1/nodes', () => kube.core.listNode()),
    watch('virtualmachineinstances', `/apis/${VMI_RESOURCE.group}/${VMI_RESOURCE.version}/${VMI_RESOURCE.plural}`, () => kube.listCustom(VMI_RESOURCE)),
    watch('virtualmachineinstancemigrations', `/apis/${VMIM_RESOURCE.group}/${VMIM_RESOURCE.version}/${VMIM_RESOURCE.plural}`, () => kube.listCustom(VMIM_RESOURCE)),
    watch('maintenancewindows', MW_PATH, () => listMaintenanceWindowsRaw(kube)),
  ]);
  return {
    objects: () => {
      const migrations = parsed(vmims, (r) => parseObject(VirtualMachineInstanceMigration, r));
      const queueReasons = new Map<string, string>();
      for (const m of migrations) {
        const why = queuedReason(m);
        if (why && m.metadata.uid) queueReasons.set(m.metadata.uid, why);
      }
      return {
        nodes: parsed(nodes, (r) => parseObject(Node, r)),
        vmis: parsed(vmis, (r) => parseObject(VirtualMachineInstance, r)),
        vmims: migrations,
        runbooks: parsed(runbooks, (r) => parseObject(MaintenanceWindow, r)),
        queueReasons,
      };
    },
    unavailable: () => [...missing],
    async stop() {
      await Promise.all(informers.map((i) => i.stop().catch(() => undefined)));
    },
  };
}
