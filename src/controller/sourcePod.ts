/**
 * Which launcher pod a successful migration removes from its source. The VMI's
 * migrationState names it, but only when that state is this migration's: a
 * VMI read from a lagging cache can still carry the previous migration's state,
 * whose source pod is long gone, and trusting it left this migration's source
 * pod running beside the guest's new one (found by the chaos campaign, seed
 * 1000: launcher pods leaked after back-to-back migrations under API faults).
 * Otherwise the pod is looked up on the source node.
 */
export function sourcePodToRemove(o: {
  uid: string;
  /** Markers mode: the migration's state lives on the VMIM, whose source pod (if recorded) is always this migration's. */
  markersMode: boolean;
  fromVmim?: string | undefined;
  vmiState?: { migrationUid?: string | undefined; sourcePod?: string | undefined } | null | undefined;
  /** This VMI's launcher pod on the source node, other than this migration's target. */
  onSourceNode: () => string | undefined;
  targetPod: string;
}): string | undefined {
  const recorded = o.markersMode ? o.fromVmim : o.vmiState?.migrationUid === o.uid ? o.vmiState.sourcePod : undefined;
  const pod = recorded ?? o.onSourceNode();
  return pod && pod !== o.targetPod ? pod : undefined;
}
