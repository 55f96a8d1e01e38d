import type { Node, Pod } from '../api/core.js';
import { Annotations, isLiveMigratable, Labels, type EvictionStrategy, type VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, type MigrationPhase, type VirtualMachineInstanceMigration } from '../api/vmim.js';
import { STALE_PLACEMENT_CONDITION_REASON } from './stalePlacement.js';

/**
 * KubeVirt's eviction semantics, as pure functions: what happens to a VMI when
 * its node drains, and what an eviction of its launcher pod is answered.
 */

export type EvacuationAction =
  | { kind: 'migrate' }
  | { kind: 'mark-external' } // External: only record status.evacuationNodeName for someone else
  | { kind: 'leave'; reason: string } // None, or LiveMigrateIfPossible on a non-migratable VM
  | { kind: 'blocked'; reason: string }; // LiveMigrate but not migratable: cannot move, must not stop

export function strategyOf(vmi: VirtualMachineInstance, clusterDefault: EvictionStrategy | undefined): EvictionStrategy {
  return vmi.spec.evictionStrategy ?? clusterDefault ?? 'None';
}

export function evacuationAction(vmi: VirtualMachineInstance, clusterDefault: EvictionStrategy | undefined): EvacuationAction {
  const strategy = strategyOf(vmi, clusterDefault);
  const migratable = isLiveMigratable(vmi);
  switch (strategy) {
    case 'None':
      return { kind: 'leave', reason: 'evictionStrategy None' };
    case 'External':
      return { kind: 'mark-external' };
    case 'LiveMigrateIfPossible':
      return migratable.ok ? { kind: 'migrate' } : { kind: 'leave', reason: `not live-migratable (${migratable.reason}); LiveMigrateIfPossible lets it be evicted` };
    case 'LiveMigrate':
      return migratable.ok ? { kind: 'migrate' } : { kind: 'blocked', reason: `not live-migratable (${migratable.reason}) and evictionStrategy is LiveMigrate` };
  }
}

export function hasDrainTaint(node: Node, taintKey: string): boolean {
  return (node.spec?.taints ?? []).some((t) => t.key === taintKey && (t.effect === 'NoSchedule' || t.effect === 'NoExecute'));
}

/** A node drains when it carries the drain taint, or when a VMI on it was marked by an intercepted eviction. */
export function nodeIsDraining(node: Node | undefined, taintKey: string): boolean {
  return node !== undefined && hasDrainTaint(node, taintKey);
}

export function isLauncherPod(pod: Pod): boolean {
  return pod.metadata.labels?.[Labels.app] === 'virt-launcher';
}

export type EvictionVerdict =
  | { allow: true }
  | { allow: false; code: 429; message: string; markEvacuation: boolean };

/**
 * The answer to `POST pods/<launcher>/eviction`, as KubeVirt's eviction webhook
 * gives it: evictions that would stop a VM that should move start its
 * evacuation instead and are refused with 429, so `kubectl drain` retries
 * until the VM has left (then the pod is gone and the drain completes).
 */
export function evictionVerdict(pod: Pod, vmi: VirtualMachineInstance | undefined, clusterDefault: EvictionStrategy | undefined): EvictionVerdict {
  if (!isLauncherPod(pod) || !vmi) return { allow: true };
  if (vmi.status?.phase && vmi.status.phase !== 'Running') return { allow: true };
  // Only the pod the VM runs in matters; a leftover target pod of a failed migration may go.
  if (pod.spec?.nodeName && vmi.status?.nodeName && pod.spec.nodeName !== vmi.status.nodeName) return { allow: true };
  const key = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
  const action = evacuationAction(vmi, clusterDefault);
  switch (action.kind) {
    case 'leave':
      return { allow: true };
    case 'migrate':
      return { allow: false, code: 429, message: `Eviction triggered evacuation of VMI "${key}"`, markEvacuation: true };
    case 'mark-external':
      return { allow: false, code: 429, message: `Eviction of VMI "${key}" is left to an external controller (evictionStrategy External)`, markEvacuation: true };
    case 'blocked':
      return { allow: false, code: 429, message: `VMI "${key}" cannot be evicted: ${action.reason}`, markEvacuation: false };
  }
}

/** KubeVirt's back-off for evacuation retries: 20 s after the first failure, doubling. */
export function evacuationBackoffMs(failuresSinceSuccess: number, baseMs: number): number {
  if (failuresSinceSuccess <= 0) return 0;
  return baseMs * 2 ** Math.min(failuresSinceSuccess - 1, 10);
}

/** What evacuation does next for one VM that should leave its node. */
export type EvacuationStep =
  /**
   * A migration of this VM has not ended: KubeVirt allows one at a time, so wait for it.
   * `evacuating` names the node it evacuates, when it is an evacuation (ours, if it is this node).
   */
  | { kind: 'busy'; migration: string; phase: string; evacuating: string | undefined }
  /** Recent evacuation failures: wait out the back-off before the next attempt. */
  | { kind: 'backoff'; failures: number; waitMs: number }
  | { kind: 'create'; attempt: number };

/** Ferry's own placement went stale before anything was sent (src/controller/stalePlacement.ts): not the VM's failure. */
function failedOnStalePlacement(m: VirtualMachineInstanceMigration): boolean {
  return (m.status?.conditions ?? []).some((c) => c.type === 'Failed' && c.status === 'True' && c.reason === STALE_PLACEMENT_CONDITION_REASON);
}

/**
 * Pure: the next step for a VM, from its migrations (any order) and when each
 * failed evacuation was first seen failed, on the controller's clock.
 * Failure times come from that clock only, never from status timestamps written
 * by another clock (a test's or a benchmark's virtual time, or skewed hosts).
 */
export function nextEvacuationStep(args: {
  migrations: readonly VirtualMachineInstanceMigration[];
  failedAt: (m: VirtualMachineInstanceMigration) => number;
  now: number;
  backoffBaseMs: number;
}): EvacuationStep {
  const mine = [...args.migrations].sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
  const open = mine.find((m) => !FINAL_PHASES.has((m.status?.phase || 'Pending') as MigrationPhase) && !m.metadata.deletionTimestamp);
  if (open) {
    return {
      kind: 'busy',
      migration: `${open.metadata.namespace ?? 'default'}/${open.metadata.name}`,
      phase: open.status?.phase || 'Pending',
      evacuating: open.metadata.annotations?.[Annotations.evacuationMigration],
    };
  }
  // KubeVirt's back-off: count evacuation failures since the last success.
  let failures = 0;
  let lastFailure = -Infinity;
  for (const m of mine) {
    if (m.status?.phase === 'Succeeded') {
      failures = 0;
      lastFailure = -Infinity;
    } else if (m.status?.phase === 'Failed' && m.metadata.annotations?.[Annotations.evacuationMigration] !== undefined && !failedOnStalePlacement(m)) {
      failures++;
      lastFailure = Math.max(lastFailure, args.failedAt(m));
    }
  }
  const waitMs = lastFailure + evacuationBackoffMs(failures, args.backoffBaseMs) - args.now;
  if (failures > 0 && waitMs > 0) return { kind: 'backoff', failures, waitMs };
  return { kind: 'create', attempt: failures + 1 };
}
