/**
 * A migration whose target pod Ferry pinned to a node that was cordoned before
 * the pod got there (a drain of several nodes cordons them one after another,
 * and admission may place a VM on the next one in the moment between). It
 * fails at once, before any byte is sent; the condition says why in a reason
 * of its own, so the evacuation retries at once with a new placement instead
 * of counting it against the VM in KubeVirt's back-off: the VM did nothing wrong.
 */
export const STALE_PLACEMENT_CONDITION_REASON = 'TargetPlacementStale';

const PHRASE = ', where Ferry placed it, was cordoned before it could be scheduled there';
/**
 * The other way a placement goes stale: admission placed the target on the node
 * the VM has moved to since (its copy of the VMI was one move behind, as a cache
 * may be under API faults). The target pod is anti-affine to the VM's own pod
 * there, so no scheduler will ever bind it.
 */
const ON_SOURCE_PHRASE = ', where Ferry placed it, is where the VM runs now';

export function stalePlacementReason(node: string): string {
  return `node ${node}${PHRASE}`;
}

export function placementOnSourceReason(node: string): string {
  return `node ${node}${ON_SOURCE_PHRASE}`;
}

/** True for a failure reason built by stalePlacementReason or placementOnSourceReason (with any prefix the chart adds). */
export function isStalePlacement(failureReason: string): boolean {
  return failureReason.endsWith(PHRASE) || failureReason.endsWith(ON_SOURCE_PHRASE);
}
