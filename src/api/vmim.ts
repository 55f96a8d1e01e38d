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

export const VirtualMachineInstanceMigration = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMeta,
  spec: z.looseObject({
    vmiName: z.string().min(1, 'spec.vmiName is required'),
    addedNodeSelector: z.record(z.string(), z.string()).optional(),
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
export const MIGRATION_FINALIZER = 'kubevirt.io/migrationJobFinalize';
