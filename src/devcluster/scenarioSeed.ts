import { Annotations } from '../api/vmi.js';
import { FerryConfig } from '../config/ferryConfig.js';
import type { DevCluster } from './cluster.js';
import { PodIPAllocator } from './kubelet.js';
import type { Scenario } from './scenarioFile.js';
import { ensureNamespace, nodeObject, seedRunningVmi } from './seed.js';

/**
 * The embedded cluster a bench scenario describes (`ferry dev --scenario`,
 * `npm run bench -- --real`): its nodes with their memory and NIC capacity, its
 * VMs running with their memory, dirty rate, working set and zero pages for the
 * sim driver, and its `config` split the way a real cluster splits it — the
 * KubeVirt fields into the KubeVirt CR, Ferry's own into Ferry's config. Only
 * what the scenario sets is written, so a limit it leaves out stays unpinned
 * (adaptive) exactly as in the virtual-time bench.
 */

const KUBEVIRT_FIELDS = [
  'parallelMigrationsPerCluster',
  'parallelOutboundMigrationsPerNode',
  'bandwidthPerMigration',
  'completionTimeoutPerGiB',
  'progressTimeout',
  'allowAutoConverge',
  'allowPostCopy',
] as const;

/** The KubeVirt CR's `spec.configuration.migrations` for the scenario. */
export function scenarioMigrations(s: Scenario): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KUBEVIRT_FIELDS) if (s.given[k] !== undefined) out[k] = s.given[k];
  return out;
}

/**
 * Ferry's config for the scenario: its budget, inbound limit (when set) and
 * max downtime; every node's NIC comes from its annotation. `over` is merged
 * on top (e.g. evacuation back-off scaled to a time scale).
 */
export function scenarioFerryConfig(s: Scenario, over: Record<string, unknown> = {}): FerryConfig {
  const limits: Record<string, unknown> = {
    bandwidthBudget: s.bandwidthBudget,
    defaultNicCapacity: Math.min(...s.nodes.map((n) => n.nic)),
  };
  if (s.given.parallelInboundMigrationsPerNode !== undefined) limits['parallelInboundMigrationsPerNode'] = s.given.parallelInboundMigrationsPerNode;
  const raw: Record<string, unknown> = { maxDowntimeMs: s.config.maxDowntimeMs, ...over, limits: { ...limits, ...((over['limits'] as object | undefined) ?? {}) } };
  return FerryConfig.parse(raw);
}

/** Creates the scenario's nodes, KubeVirt CR and running VMIs (with launcher pods) in `namespace`. */
export function seedScenario(cluster: DevCluster, s: Scenario, opts: { namespace?: string; nicAnnotation: string }): void {
  const { store } = cluster;
  const namespace = opts.namespace ?? 'default';
  const now = Date.now();
  for (const ns of new Set(['default', 'kube-system', 'kubevirt', namespace])) ensureNamespace(store, ns);
  const index = new Map<string, number>();
  s.nodes.forEach((n, i) => {
    index.set(n.name, i + 1);
    store.create('nodes', nodeObject(i + 1, now, { name: n.name, memory: String(Math.round(n.memory)), annotations: { [opts.nicAnnotation]: String(Math.round(n.nic)) } }));
  });
  store.create('kubevirts', {
    apiVersion: 'kubevirt.io/v1',
    kind: 'KubeVirt',
    metadata: { name: 'kubevirt', namespace: 'kubevirt' },
    spec: { configuration: { migrations: scenarioMigrations(s) } },
  });
  const ips = new PodIPAllocator(store);
  for (const vm of s.vms) {
    const i = index.get(vm.node)!;
    const node = store.tryGet('nodes', vm.node) as { status?: { addresses?: Array<{ type: string; address: string }> } } | undefined;
    seedRunningVmi(store, ips, {
      name: vm.name,
      namespace,
      nodeName: vm.node,
      hostIP: node?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? `192.168.0.${i}`,
      memory: String(Math.round(vm.memory)),
      annotations: {
        [Annotations.simDirtyRate]: String(Math.round(vm.dirtyRate)),
        [Annotations.simWorkingSet]: String(Math.round(vm.workingSet)),
        [Annotations.simZeroFraction]: String(vm.zeroFraction),
      },
    }, now);
  }
}
