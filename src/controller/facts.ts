import { podIsReady, podUnschedulable, type Pod } from '../api/core.js';
import { isLiveMigratable, type VirtualMachineInstance } from '../api/vmi.js';
import type { MigrationPhase } from '../api/vmim.js';
import type { MigrationEvent } from '../../statecharts/migration.js';
import { placementOnSourceReason, stalePlacementReason } from './stalePlacement.js';

/** What the objects say about one migration now (all read from the caches). */
export interface Observed {
  phase: MigrationPhase;
  vmiKey: string;
  /** The VMIM carries a deletionTimestamp (the user aborts). */
  deleted: boolean;
  vmi: VirtualMachineInstance | undefined;
  /** This migration's target launcher pods. */
  targetPods: readonly Pod[];
  /** A target pod was seen before (so its absence now means it was deleted). */
  targetPodSeen: boolean;
  /** Another active migration of the same VMI, if any (checked while Pending). */
  otherActive: string | undefined;
  /** Why the VMI is unusable when the cache has no valid copy (missing, or failing the schema). */
  missingVmiReason?: string | undefined;
  /** The node `spec.addedNodeSelector` pins by hostname (`ferry migrate --node`). */
  pinnedHostname?: string | undefined;
  /**
   * The node Ferry's own placement pinned the target pod to, when that node has
   * since been cordoned (another drain started after the placement).
   */
  placementCordoned?: string | undefined;
  /**
   * The node Ferry's own placement pinned the target pod to, when the VMI runs
   * there now (the placement used a copy of the VMI that was a move behind).
   */
  placementOnSource?: string | undefined;
}

const WITH_TARGET_POD: ReadonlySet<MigrationPhase> = new Set(['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running']);

/**
 * The chart event the objects stand for, if any: level-triggered facts, from
 * which the chart takes what applies to its state. Pure, so every rule is
 * tested without a cluster (test/unit/controller/facts.test.ts).
 */
export function factOf(o: Observed): { event?: MigrationEvent; targetPodSeen: boolean } {
  const seen = o.targetPodSeen;
  if (o.deleted) return { event: { type: 'ABORT', reason: 'VMIM was deleted' }, targetPodSeen: seen };
  const vmi = o.vmi;
  if (!vmi || vmi.metadata.deletionTimestamp || (vmi.status?.phase && vmi.status.phase !== 'Running')) {
    const reason = !vmi ? o.missingVmiReason ?? `VMI ${o.vmiKey} does not exist` : `VMI ${o.vmiKey} is ${vmi.metadata.deletionTimestamp ? 'being deleted' : vmi.status?.phase}`;
    return { event: o.phase === 'Pending' ? { type: 'REJECTED', reason } : { type: 'VMI_GONE', reason }, targetPodSeen: seen };
  }
  if (o.phase === 'Pending') {
    const migratable = isLiveMigratable(vmi);
    if (!migratable.ok) return { event: { type: 'REJECTED', reason: `Cannot migrate VMI, Reason: ${migratable.reason}` }, targetPodSeen: seen };
    if (o.otherActive) return { event: { type: 'REJECTED', reason: `another migration job (${o.otherActive}) is in progress for VMI ${o.vmiKey}` }, targetPodSeen: seen };
    // A target pod pinned to the node the VM already runs on can never be placed (it is anti-affine to the source):
    // say so now rather than after the unschedulable timeout.
    if (o.pinnedHostname && o.pinnedHostname === vmi.status?.nodeName) {
      return { event: { type: 'REJECTED', reason: `VMI ${o.vmiKey} already runs on ${o.pinnedHostname}, the node spec.addedNodeSelector names` }, targetPodSeen: seen };
    }
    return { targetPodSeen: seen };
  }
  if (!WITH_TARGET_POD.has(o.phase)) return { targetPodSeen: seen };
  const pod = o.targetPods.find((p) => !p.metadata.deletionTimestamp);
  if (!pod) return seen ? { event: { type: 'TARGET_POD_GONE', reason: 'target pod was deleted' }, targetPodSeen: seen } : { targetPodSeen: seen };
  if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') {
    return { event: { type: 'TARGET_POD_GONE', reason: `target pod ${pod.metadata.name} is ${pod.status.phase}` }, targetPodSeen: true };
  }
  if (podIsReady(pod) && pod.spec?.nodeName) return { event: { type: 'TARGET_POD_READY', node: pod.spec.nodeName, pod: pod.metadata.name }, targetPodSeen: true };
  const u = podUnschedulable(pod);
  // Ferry chose that node and it was cordoned before the pod got there: no node can take the pod
  // (it is pinned), so waiting out the unschedulable timeout (300 s) would only hold the slot and the
  // source's bandwidth. Fail now; the target pod is removed and an evacuation retries at once (no back-off)
  // with a new placement.
  if (u.unschedulable && o.placementCordoned && !pod.spec?.nodeName) {
    return { event: { type: 'TARGET_POD_GONE', reason: stalePlacementReason(o.placementCordoned) }, targetPodSeen: true };
  }
  // Pinned to the node the VM runs on: the pod is anti-affine to the VM's own pod there and no scheduler
  // will bind it, whether or not one has said so yet. Fail now, as for a cordoned pin.
  if (o.placementOnSource && !pod.spec?.nodeName) {
    return { event: { type: 'TARGET_POD_GONE', reason: placementOnSourceReason(o.placementOnSource) }, targetPodSeen: true };
  }
  if (u.unschedulable) return { event: { type: 'TARGET_POD_UNSCHEDULABLE', message: u.message ?? 'no node fits' }, targetPodSeen: true };
  if (pod.spec?.nodeName) return { event: { type: 'TARGET_POD_SCHEDULED', node: pod.spec.nodeName, pod: pod.metadata.name }, targetPodSeen: true };
  return { targetPodSeen: true };
}
