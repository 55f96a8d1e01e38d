import { PatchStrategy, PolicyV1Api, setHeaderOptions } from '@kubernetes/client-node';
import { Labels, type EvictionStrategy, type VirtualMachineInstance } from '../api/vmi.js';
import { describeApiError, isConflict, isNotFound, type KubeClient } from '../kube/client.js';
import type { Logger } from '../util/log.js';
import { evacuationAction } from './evacuationRules.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export function budgetName(vmi: VirtualMachineInstance): string {
  return `kubevirt-disruption-budget-${vmi.metadata.name}`;
}

/**
 * How many of a VMI's launcher pods must stay up, KubeVirt's way: one for a VM
 * that must not be stopped by an eviction (LiveMigrate, External, or
 * LiveMigrateIfPossible when it can move), two while it migrates so neither
 * side is evicted mid-flight; none (no budget) for a VM that may be stopped.
 */
export function desiredMinAvailable(vmi: VirtualMachineInstance, clusterDefault: EvictionStrategy | undefined): number {
  if (vmi.status?.phase !== 'Running' || vmi.metadata.deletionTimestamp) return 0;
  const action = evacuationAction(vmi, clusterDefault);
  if (action.kind === 'leave') return 0;
  const ms = vmi.status?.migrationState;
  const migrating = ms?.migrationUid !== undefined && !ms.completed && !ms.failed;
  return migrating ? 2 : 1;
}

/**
 * Keeps one PodDisruptionBudget per VMI as desiredMinAvailable says. It is the
 * safety net under the eviction check: if the controller is down, launcher
 * pods still cannot be evicted from under a VM that must not stop.
 */
export class DisruptionBudgets {
  private readonly api: PolicyV1Api;
  /** What we last made true per VMI uid, so steady state costs no API calls. */
  private readonly applied = new Map<string, number>();

  constructor(private readonly kube: KubeClient, private readonly log: Logger) {
    this.api = kube.kc.makeApiClient(PolicyV1Api);
  }

  async reconcile(vmi: VirtualMachineInstance, clusterDefault: EvictionStrategy | undefined): Promise<void> {
    const uid = vmi.metadata.uid;
    if (!uid) return;
    const want = desiredMinAvailable(vmi, clusterDefault);
    if (this.applied.get(uid) === want) return;
    const namespace = vmi.metadata.namespace ?? 'default';
    const name = budgetName(vmi);
    try {
      if (want === 0) {
        await this.api.deleteNamespacedPodDisruptionBudget({ namespace, name }).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
      } else if ((this.applied.get(uid) ?? 0) > 0) {
        // We made it and nobody deleted it since, as far as we know: change it in place.
        await this.api.patchNamespacedPodDisruptionBudget({ namespace, name, body: { spec: { minAvailable: want } } }, mergePatch).catch(async (err: unknown) => {
          if (!isNotFound(err)) throw err;
          await this.create(vmi, want);
        });
      } else {
        await this.create(vmi, want);
      }
      this.applied.set(uid, want);
    } catch (err) {
      this.log.warn({ vmi: `${namespace}/${vmi.metadata.name}`, err: describeApiError(err) }, 'could not update the disruption budget');
      throw err;
    }
  }

  /** Creates the budget, or (one already there: ours from before a restart) sets its minAvailable. */
  private async create(vmi: VirtualMachineInstance, want: number): Promise<void> {
    const uid = vmi.metadata.uid ?? '';
    const namespace = vmi.metadata.namespace ?? 'default';
    const name = budgetName(vmi);
    try {
      await this.api.createNamespacedPodDisruptionBudget({
        namespace,
        body: {
          apiVersion: 'policy/v1',
          kind: 'PodDisruptionBudget',
          metadata: {
            name,
            namespace,
            labels: { [Labels.createdBy]: uid },
            ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', name: vmi.metadata.name, uid, controller: true, blockOwnerDeletion: true }],
          },
          spec: { minAvailable: want, selector: { matchLabels: { [Labels.createdBy]: uid } } },
        },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
      await this.api.patchNamespacedPodDisruptionBudget({ namespace, name, body: { spec: { minAvailable: want } } }, mergePatch);
    }
  }

  forget(uid: string): void {
    this.applied.delete(uid);
  }
}
