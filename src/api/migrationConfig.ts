import { z } from 'zod';
import { Quantity } from './quantity.js';



/**
 * KubeVirt's `spec.configuration.migrations` with its current defaults
 * (research/kubevirt.md §3). Bandwidths are bytes/s; 0 means unlimited.
 */
export const MigrationConfiguration = z.object({
  parallelMigrationsPerCluster: z.number().int().min(1).default(5),
  parallelOutboundMigrationsPerNode: z.number().int().min(1).default(2),
  bandwidthPerMigration: Quantity.pipe(z.number().min(0)).default(0),
  completionTimeoutPerGiB: z.number().int().min(0).default(150),
  progressTimeout: z.number().int().min(0).default(150),
  unsafeMigrationOverride: z.boolean().default(false),
  allowAutoConverge: z.boolean().default(false),
  allowPostCopy: z.boolean().default(false),
  allowWorkloadDisruption: z.boolean().optional(),
  disableTLS: z.boolean().default(false),
  network: z.string().default(''),
  nodeDrainTaintKey: z.string().default('kubevirt.io/drain'),
  matchSELinuxLevelOnMigration: z.boolean().optional(),
});
export type MigrationConfiguration = z.infer<typeof MigrationConfiguration>;

export const defaultMigrationConfiguration: MigrationConfiguration = MigrationConfiguration.parse({});

/** KubeVirt's pending-target-pod timeouts (seconds); overridable per VMIM by annotation. */
export const UNSCHEDULABLE_POD_TIMEOUT_S = 300;
export const PENDING_POD_TIMEOUT_S = 900;
