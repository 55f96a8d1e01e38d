import type { Policy as SimPolicy } from '../../src/runbook/simulation/policy.js';

export type { ClusterView, MigrationRules, PolicyDecision, QueuedVm, RunningVm, SimNode } from '../../src/runbook/simulation/policy.js';

export type PolicyName = 'ferry' | 'kubevirt-tuned' | 'kubevirt-default';
/** Ferry first: the report compares it with each of the others. */
export const POLICIES: readonly PolicyName[] = ['ferry', 'kubevirt-tuned', 'kubevirt-default'];

/** How a controller decides what runs: the only thing that differs between the policies. */
export interface Policy extends SimPolicy {
  readonly name: PolicyName;
}
