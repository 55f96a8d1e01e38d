import { parseObject } from '../api/meta.js';
import { Pod, podUnschedulable } from '../api/core.js';
import { Labels, type VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, queuedReason, VirtualMachineInstanceMigration, type MigrationPhase } from '../api/vmim.js';
import type { KubeClient } from '../kube/client.js';

/**
 * What the CLI tells an operator about a migration beyond its phase: why it
 * waits, where it is going, and why an object is not a migration at all.
 * The decisions are pure functions; `readMigrationFacts` is the one read.
 */

/** A VMIM object the controller ignores because it fails the schema, and why. */
export interface InvalidMigration {
  namespace: string;
  name: string;
  /** spec.vmiName when it is at least a string. */
  vmi: string | undefined;
  reason: string;
  creationTimestamp: string | undefined;
}

export function splitMigrations(items: readonly unknown[]): { valid: VirtualMachineInstanceMigration[]; invalid: InvalidMigration[] } {
  const valid: VirtualMachineInstanceMigration[] = [];
  const invalid: InvalidMigration[] = [];
  for (const raw of items) {
    const r = parseObject(VirtualMachineInstanceMigration, raw);
    if (r.ok) {
      valid.push(r.value);
      continue;
    }
    const o = raw as { metadata?: { name?: unknown; namespace?: unknown; creationTimestamp?: unknown }; spec?: { vmiName?: unknown } };
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    invalid.push({
      namespace: str(o.metadata?.namespace) ?? 'default',
      name: str(o.metadata?.name) ?? '(no name)',
      vmi: str(o.spec?.vmiName),
      reason: r.reason,
      creationTimestamp: str(o.metadata?.creationTimestamp),
    });
  }
  return { valid, invalid };
}

/** Target launcher pods by the uid of the migration that created them. */
export function targetPodsByMigration(pods: readonly Pod[]): Map<string, Pod[]> {
  const out = new Map<string, Pod[]>();
  for (const p of pods) {
    const uid = p.metadata.labels?.[Labels.migrationJobUID];
    if (!uid) continue;
    out.set(uid, [...(out.get(uid) ?? []), p]);
  }
  return out;
}

/**
 * Why a migration that has not started moving memory is still waiting, if we
 * can tell: the scheduler's own words for an unschedulable target pod, else the
 * controller's reason for keeping it queued (the VMIM's `Queued` condition).
 */
export function whyWaiting(vmim: VirtualMachineInstanceMigration, targetPods: readonly Pod[], queuedReason: string | undefined): string | undefined {
  const phase = (vmim.status?.phase || 'Pending') as MigrationPhase;
  if (FINAL_PHASES.has(phase) || phase === 'Running') return undefined;
  for (const pod of targetPods) {
    if (pod.metadata.deletionTimestamp) continue;
    const u = podUnschedulable(pod);
    if (u.unschedulable) return `target pod unschedulable: ${u.message ?? 'no node fits'}`;
  }
  if (phase === 'Pending' && queuedReason) return queuedReason;
  return undefined;
}

/**
 * Where this migration is going. A VMI's migrationState describes its latest
 * migration, which is only this one if the uids match; before the target is
 * known that is the scheduled target pod's node, or nothing.
 */
export function currentTarget(vmim: VirtualMachineInstanceMigration, vmi: VirtualMachineInstance | undefined, targetPods: readonly Pod[]): string | undefined {
  const own = vmim.status?.migrationState?.targetNode;
  if (own) return own;
  const ms = vmi?.status?.migrationState;
  if (ms?.migrationUid && ms.migrationUid === vmim.metadata.uid && ms.targetNode) return ms.targetNode;
  return targetPods.find((p) => !p.metadata.deletionTimestamp && p.spec?.nodeName)?.spec?.nodeName;
}

export interface MigrationFacts {
  valid: VirtualMachineInstanceMigration[];
  invalid: InvalidMigration[];
  targetPods: Map<string, Pod[]>;
  /** The controller's latest reason for keeping a migration queued (its `Queued` condition), by VMIM uid. */
  queued: Map<string, string>;
}

/** One read of everything the CLI shows about migrations (one namespace, or all). */
export async function readMigrationFacts(kube: KubeClient, vmimResource: Parameters<KubeClient['listCustom']>[0], namespace?: string): Promise<MigrationFacts> {
  const { valid, invalid } = splitMigrations((await kube.listCustom(vmimResource, namespace)).items);
  const waiting = valid.some((m) => !FINAL_PHASES.has((m.status?.phase || 'Pending') as MigrationPhase));
  if (!waiting) return { valid, invalid, targetPods: new Map(), queued: new Map() };
  const labelSelector = Labels.migrationJobUID;
  // Pods only add reasons: a user who may not list them still gets the migrations.
  const podList = await (namespace ? kube.core.listNamespacedPod({ namespace, labelSelector }) : kube.core.listPodForAllNamespaces({ labelSelector })).catch(() => ({ items: [] }));
  const pods = podList.items.flatMap((raw) => {
    const r = parseObject(Pod, raw);
    return r.ok ? [r.value] : [];
  });
  const queued = new Map<string, string>();
  for (const m of valid) {
    const why = queuedReason(m);
    if (why && m.metadata.uid) queued.set(m.metadata.uid, why);
  }
  return { valid, invalid, targetPods: targetPodsByMigration(pods), queued };
}
