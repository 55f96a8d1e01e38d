/**
 * Every statechart Ferry runs, for tools that draw or inspect them
 * (`ferry statecharts export`). A new chart exports a `describeChart`-like
 * function and is listed here.
 */
import { describeChart as describeMigration } from './migration.js';
import type { ChartNode } from './outline.js';
import { describeChart as describeRunbook } from './runbook.js';

export type { ChartNode, ChartTransition } from './outline.js';

export interface ChartEntry {
  /** File stem of the exported page (`docs/statecharts/<name>.md`). */
  name: string;
  title: string;
  /** Where the chart is defined, relative to the repository root. */
  source: string;
  /** One paragraph on what the chart is the life of. */
  summary: string;
  describe: () => ChartNode;
}

export const charts: readonly ChartEntry[] = [
  {
    name: 'migration',
    title: 'Migration (one VirtualMachineInstanceMigration)',
    source: 'statecharts/migration.ts',
    summary:
      "The life of one VMIM as the controller drives it. Top-level states are KubeVirt's VMIM phases (the controller writes the top-level state into `status.phase`), plus the transient `Resume` a restarted controller passes through to land in the phase recorded in status.",
    describe: describeMigration,
  },
  {
    name: 'runbook',
    title: 'Runbook (one MaintenanceWindow)',
    source: 'statecharts/runbook.ts',
    summary:
      'The life of one maintenance-window runbook: wait for the window, then evacuate its nodes batch by batch (cordon and taint, wait until empty, mark ready for maintenance, wait for done, return to service), stopping cleanly when the window closes, on pause or on deletion.',
    describe: describeRunbook,
  },
];
