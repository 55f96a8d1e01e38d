import { Node } from '../api/core.js';
import type { MaintenanceWindowSpec } from '../api/maintenanceWindow.js';
import { parseObject } from '../api/meta.js';
import { MigrationConfiguration } from '../api/migrationConfig.js';
import { EvictionStrategy, VirtualMachineInstance } from '../api/vmi.js';
import { VirtualMachineInstanceMigration } from '../api/vmim.js';
import { defaultFerryConfig, type FerryConfig } from '../config/ferryConfig.js';
import { KUBEVIRT_RESOURCE, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { selectNodes } from './clusterView.js';
import { planInputFor, type ClusterSnapshot } from './decisions.js';
import { planRunbook, type Overheads, type Plan } from './plan.js';
import { settingsFrom } from './settings.js';
import { occurrenceAt, resolveWindow, type Occurrence } from './window.js';

function parseAll<T>(items: readonly unknown[], schema: { safeParse(d: unknown): { success: boolean; data?: T } }): T[] {
  return items.flatMap((raw) => {
    const r = schema.safeParse(raw);
    return r.success ? [r.data as T] : [];
  });
}

/** Reads what the planner needs from a cluster, as the controller's caches would hold it. */
export async function readCluster(kube: KubeClient): Promise<{ cluster: ClusterSnapshot; migrations: MigrationConfiguration; kubevirtMigrations: unknown }> {
  const [nodes, vmis, vmims, kubevirts] = await Promise.all([
    kube.core.listNode(),
    kube.listCustom(VMI_RESOURCE),
    kube.listCustom(VMIM_RESOURCE),
    kube.listCustom(KUBEVIRT_RESOURCE).catch(() => ({ items: [] as unknown[] })),
  ]);
  const kv = kubevirts.items[0] as { spec?: { configuration?: { migrations?: unknown; evictionStrategy?: unknown } } } | undefined;
  const migrations = MigrationConfiguration.safeParse(kv?.spec?.configuration?.migrations ?? {});
  const strategy = EvictionStrategy.safeParse(kv?.spec?.configuration?.evictionStrategy);
  return {
    cluster: {
      nodes: nodes.items.flatMap((n) => {
        const r = parseObject(Node, n);
        return r.ok ? [r.value] : [];
      }),
      vmis: parseAll(vmis.items, VirtualMachineInstance),
      vmims: parseAll(vmims.items, VirtualMachineInstanceMigration),
      clusterEvictionStrategy: strategy.success ? strategy.data : undefined,
    },
    migrations: migrations.success ? migrations.data : MigrationConfiguration.parse({}),
    kubevirtMigrations: kv?.spec?.configuration?.migrations ?? {},
  };
}

export interface ClusterPlan {
  plan: Plan;
  window: Occurrence;
  /** Names the spec gives that are not nodes. */
  missing: string[];
}

/**
 * What the runbook controller would plan for `spec` if it were applied now:
 * the same selection, settings and planner, on the cluster as it is.
 */
export async function planFromCluster(
  kube: KubeClient,
  spec: MaintenanceWindowSpec,
  opts: { now?: number; config?: FerryConfig; timeScale?: number; overheads?: Overheads } = {},
): Promise<ClusterPlan> {
  const resolved = resolveWindow(spec.window);
  if (!resolved.ok) throw new Error(resolved.reason);
  const now = opts.now ?? Date.now();
  const window = occurrenceAt(resolved.window, now);
  if (!window) throw new Error('the window is over: no occurrence of it is left');
  const { cluster, migrations, kubevirtMigrations } = await readCluster(kube);
  const { selected, missing } = selectNodes(spec, cluster.nodes);
  const settings = settingsFrom(migrations, opts.config ?? defaultFerryConfig, {
    kubevirtMigrations,
    ...(opts.timeScale !== undefined ? { timeScale: opts.timeScale } : {}),
    ...(opts.overheads ? { overheads: opts.overheads } : {}),
  });
  const plan = planRunbook(planInputFor({ spec, cluster, settings, now, window, maintain: selected }));
  return { plan, window, missing };
}
