import { parseObject } from '../api/meta.js';
import { isLiveMigratable, VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, VirtualMachineInstanceMigration, type MigrationPhase } from '../api/vmim.js';
import { zodReason } from '../bus/zodReason.js';
import { isNotFound, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { allow, forbidden, invalid, type AdmissionRequest, type Verdict } from './review.js';

/**
 * VMIM validation at create time, as virt-api's migration-create admitter:
 * a migration that cannot start is refused by `kubectl create` with the
 * reason, so no object is left behind to fail later. The controller keeps its
 * own checks for what changes between admission and admit (races).
 */

/** Pure: the reason a migration of this VMI cannot be created now, if any. */
export function migrationRefusal(
  vmiKey: string,
  vmi: VirtualMachineInstance | undefined,
  otherMigrations: VirtualMachineInstanceMigration[],
): string | undefined {
  if (!vmi) return `VMI ${vmiKey} does not exist`;
  if (vmi.metadata.deletionTimestamp) return `VMI ${vmiKey} is being deleted`;
  if (vmi.status?.phase !== 'Running') return `VMI ${vmiKey} is not running (phase ${vmi.status?.phase || 'unknown'})`;
  const migratable = isLiveMigratable(vmi);
  if (!migratable.ok) return `Cannot migrate VMI, Reason: ${migratable.reason}`;
  const ms = vmi.status.migrationState;
  if (ms?.migrationUid && !ms.completed && !ms.failed) return `in-flight migration detected: migration ${ms.migrationUid} is in progress for VMI ${vmiKey}`;
  const active = otherMigrations.find((m) => !m.metadata.deletionTimestamp && !FINAL_PHASES.has((m.status?.phase || 'Pending') as MigrationPhase));
  if (active) return `in-flight migration detected: migration ${active.metadata.namespace}/${active.metadata.name} (phase ${active.status?.phase || 'Pending'}) is in progress for VMI ${vmiKey}`;
  return undefined;
}

export async function admitMigration(req: AdmissionRequest, kube: KubeClient): Promise<Verdict> {
  if (req.operation !== 'CREATE') return allow();
  const parsed = VirtualMachineInstanceMigration.safeParse(req.object);
  if (!parsed.success) return invalid(`VirtualMachineInstanceMigration is invalid: ${zodReason(parsed.error)}`);
  const namespace = req.namespace ?? parsed.data.metadata.namespace ?? 'default';
  const vmiName = parsed.data.spec.vmiName;
  const vmiKey = `${namespace}/${vmiName}`;
  let vmi: VirtualMachineInstance | undefined;
  try {
    const r = parseObject(VirtualMachineInstance, await kube.getCustom(VMI_RESOURCE, namespace, vmiName));
    if (!r.ok) return invalid(`VMI ${vmiKey} cannot be read: ${r.reason}`);
    vmi = r.value;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const others = (await kube.listCustom(VMIM_RESOURCE, namespace)).items.flatMap((raw) => {
    const r = parseObject(VirtualMachineInstanceMigration, raw);
    return r.ok && r.value.spec.vmiName === vmiName ? [r.value] : [];
  });
  const refusal = migrationRefusal(vmiKey, vmi, others);
  return refusal ? forbidden(refusal) : allow();
}
