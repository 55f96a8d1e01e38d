import { matchPolicy, MigrationPolicy } from '../api/migrationPolicy.js';
import type { Logger } from '../util/log.js';
import type { EventRecorder } from './eventRecorder.js';

/**
 * Which MigrationPolicies the controller may apply. A policy the controller
 * cannot read (a negative or unparsable bandwidth, a negative timeout, a
 * non-boolean switch) is skipped as if it did not exist, and said so on the
 * policy itself: one bad object must never stop migrations cluster-wide, and
 * must never be dropped silently either. KubeVirt's admission webhook refuses
 * such policies at create; the controller still has to survive ones that got in
 * (created before the webhook, or with it off).
 */

export interface PolicyProblem {
  /** Where in the object, e.g. `spec.bandwidthPerMigration`. */
  field: string;
  reason: string;
}

export type PolicyCheck =
  | { ok: true; policy: MigrationPolicy }
  | { ok: false; name: string | undefined; uid: string | undefined; resourceVersion: string | undefined; problems: PolicyProblem[] };

/** Pure: the policy as the controller will apply it, or every reason it cannot. */
export function checkPolicy(raw: unknown): PolicyCheck {
  const r = MigrationPolicy.safeParse(raw);
  if (r.success) return { ok: true, policy: r.data };
  const meta = (raw as { metadata?: { name?: unknown; uid?: unknown; resourceVersion?: unknown } } | undefined)?.metadata;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    ok: false,
    name: str(meta?.name),
    uid: str(meta?.uid),
    resourceVersion: str(meta?.resourceVersion),
    problems: r.error.issues.map((i) => ({ field: i.path.join('.') || '(root)', reason: i.message })),
  };
}

/** Pure: the policy that governs a VMI with these labels, chosen among the usable ones only. */
export function selectPolicy(raws: readonly unknown[], vmiLabels: Record<string, string>, namespaceLabels: Record<string, string>): MigrationPolicy | undefined {
  const usable = raws.flatMap((raw) => {
    const c = checkPolicy(raw);
    return c.ok ? [c.policy] : [];
  });
  return usable.length === 0 ? undefined : matchPolicy(usable, vmiLabels, namespaceLabels);
}

export function describeProblems(problems: readonly PolicyProblem[]): string {
  return problems.map((p) => `${p.field}: ${p.reason}`).join('; ');
}

/**
 * Tells users about unusable policies: a Warning Event on the policy and one log
 * line, once per version of the object (an edit that is still wrong is told again).
 */
export class PolicyReporter {
  /** uid → resourceVersion last reported; entries leave with their policy, so it stays as small as the policy list. */
  private readonly reported = new Map<string, string>();

  constructor(private readonly log: Logger, private readonly events: EventRecorder) {}

  observe(raw: unknown, change: 'add' | 'update' | 'delete'): void {
    const c = checkPolicy(raw);
    const uid = c.ok ? c.policy.metadata.uid : c.uid;
    const key = uid ?? (c.ok ? c.policy.metadata.name : c.name) ?? '';
    if (change === 'delete' || c.ok) {
      if (this.reported.delete(key) && change !== 'delete' && c.ok) this.log.info({ policy: c.policy.metadata.name }, 'MigrationPolicy is valid again; applying it');
      return;
    }
    const version = c.resourceVersion ?? '';
    if (this.reported.get(key) === version) return;
    this.reported.set(key, version);
    const message = `Ignored: ${describeProblems(c.problems)}. Migrations this policy would select use the next matching policy or the cluster configuration.`;
    this.log.warn({ policy: c.name, problems: c.problems }, 'ignoring invalid MigrationPolicy');
    if (!c.name) return;
    // Events of cluster-scoped objects live in "default", as the API server's own do.
    this.events.record({ apiVersion: 'migrations.kubevirt.io/v1alpha1', kind: 'MigrationPolicy', namespace: 'default', name: c.name, uid }, 'Warning', 'InvalidPolicy', message);
  }
}
