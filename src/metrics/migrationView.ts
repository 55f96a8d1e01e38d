import type { VirtualMachineInstanceMigration, MigrationPhase } from '../api/vmim.js';
import type { Priority } from '../limits/types.js';
import type { MigrationView } from './controllerMetrics.js';

/** What the controller's in-memory session knows beyond the VMIM's recorded status. */
export interface LiveMigration {
  phase: MigrationPhase;
  priority: Priority;
  sourceNode?: string | undefined;
  targetNode?: string | undefined;
  bandwidth?: number | undefined;
}

/**
 * A VMIM as the metrics see it: its recorded status, overlaid with the live
 * session when the controller tracks it (the session's phase is ahead of the
 * status write that follows it).
 */
export function migrationView(vmim: VirtualMachineInstanceMigration, live?: LiveMigration): MigrationView {
  const ms = vmim.status?.migrationState ?? undefined;
  const view: MigrationView = {
    namespace: vmim.metadata.namespace ?? 'default',
    name: vmim.metadata.name,
    vmi: vmim.spec.vmiName,
    phase: live?.phase ?? vmim.status?.phase ?? '',
  };
  const sourceNode = live?.sourceNode ?? ms?.sourceNode;
  const targetNode = live?.targetNode ?? ms?.targetNode;
  if (live) view.priority = live.priority;
  if (sourceNode) view.sourceNode = sourceNode;
  if (targetNode) view.targetNode = targetNode;
  if (live?.bandwidth !== undefined) view.bandwidth = live.bandwidth;
  if (ms?.startTimestamp) view.startTimestamp = ms.startTimestamp;
  if (ms?.endTimestamp) view.endTimestamp = ms.endTimestamp;
  return view;
}
