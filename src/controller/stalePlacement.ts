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

export function stalePlacementReason(node: string): string {
  return `node ${node}${PHRASE}`;
}

/** True for a failure reason built by stalePlacementReason (with any prefix the chart adds). */
export function isStalePlacement(failureReason: string): boolean {
  return failureReason.endsWith(PHRASE);
}
