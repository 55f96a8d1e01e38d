import { parseObject } from '../../api/meta.js';
import { FINAL_PHASES, VirtualMachineInstanceMigration, type MigrationPhase } from '../../api/vmim.js';
import { describeApiError, isConflict, isNotFound, VMIM_RESOURCE, type KubeClient } from '../../kube/client.js';
import { age } from '../format.js';
import { kubeClientFor, splitRef } from '../kubeconfig.js';

/** A finished migration: when it reached its final phase, if the status says. */
export function finishedAt(m: VirtualMachineInstanceMigration): string | undefined {
  const phase = m.status?.phase;
  return m.status?.phaseTransitionTimestamps?.filter((p) => p.phase === phase).at(-1)?.phaseTransitionTimestamp ?? m.status?.migrationState?.endTimestamp ?? undefined;
}

/**
 * `ferry cancel`: aborts a migration by deleting its VMIM (KubeVirt's way; the
 * controller's finalizer turns the delete into an abort).
 *
 * A migration that has already finished is left alone, record and all, and the
 * command fails (exit 1): nothing was cancelled, and a script that runs
 * `ferry cancel X && …` must not believe otherwise (as `kill` of a process that
 * has exited fails). The delete carries the uid and resourceVersion just read,
 * so a migration that finishes in between is not deleted either.
 */
export async function runCancel(ref: string, o: { kubeconfig?: string }): Promise<void> {
  const { namespace, name } = splitRef(ref, 'VMIM');
  const kube = kubeClientFor(o.kubeconfig);
  for (let attempt = 1; ; attempt++) {
    const m = await read(kube, namespace, name);
    const phase = (m.status?.phase || 'Pending') as MigrationPhase;
    if (FINAL_PHASES.has(phase)) {
      const at = finishedAt(m);
      throw new Error(`migration ${namespace}/${name} has already finished: ${phase}${at ? ` at ${at} (${age(at)} ago)` : ''}; nothing to cancel, nothing changed`);
    }
    if (m.metadata.deletionTimestamp) {
      process.stdout.write(`migration ${namespace}/${name} is already being cancelled (phase ${phase})\n`);
      return;
    }
    try {
      await kube.custom.deleteNamespacedCustomObject({
        ...VMIM_RESOURCE,
        namespace,
        name,
        body: { preconditions: { uid: m.metadata.uid, resourceVersion: m.metadata.resourceVersion } },
      });
    } catch (err) {
      if (isNotFound(err)) throw new Error(`migration ${namespace}/${name} not found`);
      // Changed since we read it (progress is written every second): look again.
      if (isConflict(err) && attempt < 5) continue;
      throw new Error(`could not cancel ${namespace}/${name}: ${describeApiError(err)}`);
    }
    process.stdout.write(`migration ${namespace}/${name} cancelled in phase ${phase} (the VM stays where it runs unless it already switched over)\n`);
    return;
  }
}

async function read(kube: KubeClient, namespace: string, name: string): Promise<VirtualMachineInstanceMigration> {
  let raw: unknown;
  try {
    raw = await kube.getCustom(VMIM_RESOURCE, namespace, name);
  } catch (err) {
    if (isNotFound(err)) throw new Error(`migration ${namespace}/${name} not found`);
    throw new Error(`could not read ${namespace}/${name}: ${describeApiError(err)}`);
  }
  const r = parseObject(VirtualMachineInstanceMigration, raw);
  if (!r.ok) throw new Error(`${namespace}/${name} is not a valid migration (${r.reason}); the controller ignores it: delete it with kubectl if it is unwanted`);
  return r.value;
}
