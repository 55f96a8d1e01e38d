import { Labels, type VirtualMachineInstance } from '../../src/api/vmi.js';
import type { ObjectStore, Watcher } from '../../src/devcluster/store.js';

/**
 * KubeVirt's virt-handler, as far as it decides to take part in a migration
 * (shared research kubevirt-launcher-proxy.md §3, §5): per node, it would act
 * on every VMI state it sees, and this records each time it would.
 *
 * - Target side (`migration-target.go`): the target informer selects VMIs
 *   labelled `kubevirt.io/migrationTargetNodeName=<node>`; with
 *   `migrationState.targetNode == node` and the migration not final, it
 *   prepares the target launcher and starts its proxy.
 * - Source side (`migration-source.go`): with `migrationState.sourceNode ==
 *   node`, `status.nodeName == node` and the migration not final, it waits for
 *   `targetDirectMigrationNodePorts` and then tells the launcher to migrate.
 */
export type VirtHandlerAction =
  | { node: string; vmi: string; migrationUid: string; action: 'prepare-target' }
  | { node: string; vmi: string; migrationUid: string; action: 'wait-for-target-ports' | 'migrate' };

export function virtHandlerActions(vmi: VirtualMachineInstance, nodes: readonly string[]): VirtHandlerAction[] {
  const ms = vmi.status?.migrationState;
  if (!ms?.migrationUid || ms.completed || ms.failed) return [];
  const key = `${vmi.metadata.namespace ?? 'default'}/${vmi.metadata.name}`;
  const out: VirtHandlerAction[] = [];
  for (const node of nodes) {
    if (vmi.metadata.labels?.[Labels.migrationTargetNodeName] === node && ms.targetNode === node) {
      out.push({ node, vmi: key, migrationUid: ms.migrationUid, action: 'prepare-target' });
    }
    if (ms.sourceNode === node && vmi.status?.nodeName === node) {
      out.push({ node, vmi: key, migrationUid: ms.migrationUid, action: ms.targetDirectMigrationNodePorts ? 'migrate' : 'wait-for-target-ports' });
    }
  }
  return out;
}

/** Watches every VMI write of the embedded cluster (no polling gaps) and records what virt-handler would do. */
export function watchAsVirtHandler(store: ObjectStore, nodes: readonly string[]): { actions: VirtHandlerAction[]; stop: () => void } {
  const actions: VirtHandlerAction[] = [];
  const w: Watcher = store.watchRaw('virtualmachineinstances', {}, (e) => {
    if (e.type === 'DELETED') return;
    actions.push(...virtHandlerActions(e.object as unknown as VirtualMachineInstance, nodes));
  });
  return { actions, stop: () => w.stop() };
}
