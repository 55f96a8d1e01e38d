import { z } from 'zod';
import { Condition, ObjectMeta } from './meta.js';
import { MigrationState } from './vmi.js';

export const MigrationPhase = z.enum([
  'Pending',
  'Scheduling',
  'Scheduled',
  'PreparingTarget',
  'TargetReady',
  'Running',
  'Succeeded',
  'Failed',
]);
export type MigrationPhase = z.infer<typeof MigrationPhase>;

export const FINAL_PHASES: ReadonlySet<MigrationPhase> = new Set(['Succeeded', 'Failed']);

/** Ferry's live view of a running migration (not in KubeVirt's status; extra, read-only). */
export const MigrationProgress = z.looseObject({
  dataTotal: z.number().optional(),
  dataProcessed: z.number().optional(),
  dataRemaining: z.number().optional(),
  memoryBandwidth: z.number().optional(),
  dirtyRate: z.number().optional(),
  iteration: z.number().optional(),
  bandwidthLimit: z.number().optional(),
  etaSeconds: z.number().optional(),
  updated: z.string().optional(),
});
export type MigrationProgress = z.infer<typeof MigrationProgress>;

// Kubernetes label syntax (apimachinery's IsQualifiedName / IsValidLabelValue): the target
// pod's nodeSelector is built from these, and the API server refuses a pod with a bad one.
const labelName = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const labelPrefix = /^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$/;
const LabelKey = z.string().refine((k) => {
  const i = k.lastIndexOf('/');
  const [prefix, name] = i < 0 ? [undefined, k] : [k.slice(0, i), k.slice(i + 1)];
  return labelName.test(name) && (prefix === undefined || labelPrefix.test(prefix));
}, 'not a valid label key (an optional DNS prefix and "/", then at most 63 of A-Z a-z 0-9 - _ ., starting and ending alphanumeric)');
const LabelValue = z.string().refine((v) => v === '' || labelName.test(v), 'not a valid label value (at most 63 of A-Z a-z 0-9 - _ ., starting and ending alphanumeric)');

export const VirtualMachineInstanceMigration = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMeta,
  spec: z.looseObject({
    vmiName: z.string().min(1, 'spec.vmiName is required'),
    addedNodeSelector: z.record(LabelKey, LabelValue).optional(),
  }),
  status: z
    .looseObject({
      phase: z.union([MigrationPhase, z.literal('')]).optional(),
      phaseTransitionTimestamps: z
        .array(z.looseObject({ phase: z.string(), phaseTransitionTimestamp: z.string() }))
        .optional(),
      conditions: z.array(Condition).optional(),
      migrationState: MigrationState.nullable().optional(),
      progress: MigrationProgress.optional(),
    })
    .optional(),
});
export type VirtualMachineInstanceMigration = z.infer<typeof VirtualMachineInstanceMigration>;

export const VMIM_PLURAL = 'virtualmachineinstancemigrations';

/**
 * Ferry's condition on a VMIM that admission keeps queued: status True, the
 * reason's class as `reason` (e.g. `OutboundLimit`), the sentence as `message`.
 * It exists only while the VMIM is Pending.
 */
export const QUEUED_CONDITION = 'Queued';

/** Why admission keeps this migration queued, if it says (its `Queued` condition). */
export function queuedReason(vmim: VirtualMachineInstanceMigration): string | undefined {
  const phase = vmim.status?.phase || 'Pending';
  if (phase !== 'Pending') return undefined;
  const c = vmim.status?.conditions?.find((x) => x.type === QUEUED_CONDITION && x.status === 'True');
  return c?.message || undefined;
}
export const MIGRATION_FINALIZER = 'kubevirt.io/migrationJobFinalize';
