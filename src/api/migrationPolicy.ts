import { z } from 'zod';
import { ObjectMeta } from './meta.js';
import { MigrationConfiguration } from './migrationConfig.js';
import { parseQuantity } from './quantity.js';

/** A bandwidth as KubeVirt takes it: a Kubernetes quantity (or plain number), never negative. */
const Bandwidth = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  try {
    if (parseQuantity(v) < 0) ctx.addIssue({ code: 'custom', message: `must not be negative (got "${v}")` });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** `migrations.kubevirt.io/v1alpha1` MigrationPolicy (cluster-scoped). */
export const MigrationPolicy = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMeta,
  spec: z.looseObject({
    selectors: z
      .looseObject({
        namespaceSelector: z.record(z.string(), z.string()).optional(),
        virtualMachineInstanceSelector: z.record(z.string(), z.string()).optional(),
      })
      .nullable()
      .optional(),
    allowAutoConverge: z.boolean().optional(),
    allowPostCopy: z.boolean().optional(),
    allowWorkloadDisruption: z.boolean().optional(),
    bandwidthPerMigration: Bandwidth.optional(),
    completionTimeoutPerGiB: z.number().int().min(0).optional(),
  }),
});
export type MigrationPolicy = z.infer<typeof MigrationPolicy>;

export const MIGRATION_POLICY_RESOURCE = { group: 'migrations.kubevirt.io', version: 'v1alpha1', plural: 'migrationpolicies' };

/**
 * KubeVirt's precedence: a policy matches when every label in its selectors
 * matches (VMI labels, namespace labels); the most matching labels win, then
 * the most VMI-label matches, then the lexicographically smallest name.
 */
export function matchPolicy(
  policies: readonly MigrationPolicy[],
  vmiLabels: Record<string, string>,
  namespaceLabels: Record<string, string>,
): MigrationPolicy | undefined {
  let best: { p: MigrationPolicy; total: number; vmi: number } | undefined;
  for (const p of policies) {
    const sel = p.spec.selectors;
    if (!sel) continue;
    const vmiSel = Object.entries(sel.virtualMachineInstanceSelector ?? {});
    const nsSel = Object.entries(sel.namespaceSelector ?? {});
    if (!vmiSel.every(([k, v]) => vmiLabels[k] === v) || !nsSel.every(([k, v]) => namespaceLabels[k] === v)) continue;
    const cand = { p, total: vmiSel.length + nsSel.length, vmi: vmiSel.length };
    if (
      !best ||
      cand.total > best.total ||
      (cand.total === best.total && cand.vmi > best.vmi) ||
      (cand.total === best.total && cand.vmi === best.vmi && p.metadata.name < best.p.metadata.name)
    ) {
      best = cand;
    }
  }
  return best?.p;
}

/** The cluster configuration with the policy's overrides applied (parallel limits and timeouts other than completion stay cluster-wide). */
export function effectiveConfiguration(cluster: MigrationConfiguration, policy: MigrationPolicy | undefined): MigrationConfiguration {
  if (!policy) return cluster;
  const s = policy.spec;
  const merged = MigrationConfiguration.parse({
    ...cluster,
    ...(s.allowAutoConverge !== undefined ? { allowAutoConverge: s.allowAutoConverge } : {}),
    ...(s.allowPostCopy !== undefined ? { allowPostCopy: s.allowPostCopy } : {}),
    ...(s.bandwidthPerMigration !== undefined ? { bandwidthPerMigration: s.bandwidthPerMigration } : {}),
    ...(s.completionTimeoutPerGiB !== undefined ? { completionTimeoutPerGiB: s.completionTimeoutPerGiB } : {}),
  });
  // KubeVirt: allowWorkloadDisruption follows allowPostCopy unless the policy sets it.
  merged.allowWorkloadDisruption = s.allowWorkloadDisruption ?? (s.allowPostCopy !== undefined ? s.allowPostCopy : cluster.allowWorkloadDisruption);
  return merged;
}
