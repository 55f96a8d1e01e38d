import type { MigrationConfiguration } from '../api/migrationConfig.js';
import type { FerryConfig } from '../config/ferryConfig.js';
import { pinnedIn, resolveLimits } from '../limits/adaptive.js';
import { DEV_CLUSTER_OVERHEADS, type Overheads, type PlanSettings } from './plan.js';

/** What the planner needs beyond the cluster's objects, in force right now. */
export interface RunbookSettings extends PlanSettings {
  /** Node annotation that overrides the NIC capacity (bytes/s). */
  nicCapacityAnnotation: string;
}

/** Supplies the settings at every plan, so a changed KubeVirt configuration is used at the next batch. */
export type SettingsProvider = () => RunbookSettings;

/**
 * The limits and migration rules exactly as the VMIM controller admits with:
 * KubeVirt's `migrations` configuration for the parallel limits and
 * per-migration bandwidth, Ferry's configuration for the inbound limit, the
 * budget, NIC capacities and the maximum downtime.
 */
export function settingsFrom(
  migrations: MigrationConfiguration,
  config: FerryConfig,
  opts: { timeScale?: number; overheads?: Overheads; kubevirtMigrations?: unknown } = {},
): RunbookSettings {
  // The KubeVirt CR's migrations block as written tells which limits it pins; the rest adapt, as in the controller.
  const limits = resolveLimits({
    pins: [pinnedIn(opts.kubevirtMigrations ?? migrations), pinnedIn(config.limits)],
    bandwidthBudget: config.limits.bandwidthBudget,
    defaultNicCapacity: config.limits.defaultNicCapacity,
    bandwidthPerMigration: migrations.bandwidthPerMigration,
    completionTimeoutPerGiB: migrations.completionTimeoutPerGiB,
  });
  return {
    limits,
    rules: {
      progressTimeoutMs: migrations.progressTimeout * 1000,
      completionTimeoutPerGiB: migrations.completionTimeoutPerGiB,
      autoConverge: migrations.allowAutoConverge,
      postCopy: migrations.allowPostCopy,
      maxDowntimeMs: config.maxDowntimeMs,
    },
    overheads: opts.overheads ?? DEV_CLUSTER_OVERHEADS,
    timeScale: opts.timeScale ?? 1,
    nicCapacityAnnotation: config.limits.nicCapacityAnnotation,
  };
}
