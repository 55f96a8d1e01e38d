import { Labels } from '../api/vmi.js';
import type { Pod } from '../api/core.js';

/**
 * Where a migration's two sides are, read from the VM's launcher pods alone:
 * the target is the pod labelled with this migration's uid, the source the one
 * other live launcher pod on another node. For a migration resumed in
 * Scheduled or later whose recorded state names neither side (chaos seed 1000:
 * a new leader resumed a Running migration without them, asked nobody, and
 * ignored the source's result for good). Pure; undefined where the pods do not
 * say it unambiguously.
 */
export function sidesFromPods(pods: readonly Pod[], migrationUid: string): { source?: string; target?: string; targetPod?: string } {
  const live = pods.filter((p) => !p.metadata.deletionTimestamp && p.spec?.nodeName);
  const targets = live.filter((p) => p.metadata.labels?.[Labels.migrationJobUID] === migrationUid);
  const target = targets.length === 1 ? targets[0] : undefined;
  const targetNode = target?.spec?.nodeName;
  const sourceNodes = new Set(
    live.filter((p) => p.metadata.labels?.[Labels.migrationJobUID] !== migrationUid && p.spec?.nodeName !== targetNode).map((p) => p.spec!.nodeName!),
  );
  const source = sourceNodes.size === 1 ? [...sourceNodes][0] : undefined;
  return {
    ...(source ? { source } : {}),
    ...(target && targetNode ? { target: targetNode, targetPod: target.metadata.name } : {}),
  };
}
