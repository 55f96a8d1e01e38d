import { getPath, isRecord, type KubeObject } from './object.js';
import type { ResourceDefinition, ResourceRegistry } from './registry.js';

/** The resource types the dev cluster serves out of the box (core, coordination, policy, KubeVirt). */

type Cond = { type?: string; status?: string };
const conditions = (o: KubeObject): Cond[] => {
  const c = getPath(o, 'status.conditions');
  return Array.isArray(c) ? (c as Cond[]) : [];
};
const arr = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v.filter(isRecord) : []);

function nodeStatus(node: KubeObject): string {
  const ready = conditions(node).find((c) => c.type === 'Ready');
  const s = ready?.status === 'True' ? 'Ready' : ready?.status === 'False' ? 'NotReady' : 'Unknown';
  return getPath(node, 'spec.unschedulable') === true ? `${s},SchedulingDisabled` : s;
}

function nodeRoles(node: KubeObject): string {
  const roles = Object.keys(node.metadata.labels ?? {})
    .filter((k) => k.startsWith('node-role.kubernetes.io/'))
    .map((k) => k.slice('node-role.kubernetes.io/'.length))
    .filter((r) => r !== '');
  return roles.length ? roles.sort().join(',') : '<none>';
}

function nodeAddress(node: KubeObject, type: string): string {
  return String(arr(getPath(node, 'status.addresses')).find((a) => a['type'] === type)?.['address'] ?? '<none>');
}

function podReady(pod: KubeObject): string {
  const containers = arr(getPath(pod, 'spec.containers'));
  const ready = arr(getPath(pod, 'status.containerStatuses')).filter((c) => c['ready'] === true).length;
  return `${ready}/${containers.length}`;
}

function podStatus(pod: KubeObject): string {
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  const reason = getPath(pod, 'status.reason');
  if (typeof reason === 'string' && reason) return reason;
  for (const c of arr(getPath(pod, 'status.containerStatuses'))) {
    const waiting = getPath(c, 'state.waiting.reason');
    if (typeof waiting === 'string' && waiting) return waiting;
  }
  return String(getPath(pod, 'status.phase') ?? 'Pending');
}

function podRestarts(pod: KubeObject): number {
  return arr(getPath(pod, 'status.containerStatuses')).reduce((n, c) => n + (typeof c['restartCount'] === 'number' ? c['restartCount'] : 0), 0);
}

const str = (v: unknown, dflt = ''): string => (v === undefined || v === null ? dflt : String(v));

const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' } as const;

export const builtinResources: ResourceDefinition[] = [
  {
    group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', shortNames: ['ns'], namespaced: false, hasStatus: true,
    strategicMergePatch: true, keepStatusOnCreate: false,
    printerColumns: [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, age],
    selectableFields: { 'status.phase': (o) => str(getPath(o, 'status.phase')) },
    prepareForCreate: (ns) => {
      ns['status'] = { phase: 'Active' };
      ns.metadata.labels = { ...(ns.metadata.labels ?? {}), 'kubernetes.io/metadata.name': ns.metadata.name! };
    },
  },
  {
    group: '', version: 'v1', kind: 'Node', plural: 'nodes', shortNames: ['no'], namespaced: false, hasStatus: true,
    strategicMergePatch: true, keepStatusOnCreate: true,
    printerColumns: [
      { name: 'Status', type: 'string', value: nodeStatus, description: 'The status of the node' },
      { name: 'Roles', type: 'string', value: nodeRoles, description: 'The roles of the node' },
      age,
      { name: 'Version', type: 'string', jsonPath: '.status.nodeInfo.kubeletVersion', description: 'Kubelet Version reported by the node.' },
      { name: 'Internal-IP', type: 'string', priority: 1, value: (n) => nodeAddress(n, 'InternalIP') },
      { name: 'External-IP', type: 'string', priority: 1, value: (n) => nodeAddress(n, 'ExternalIP') },
      { name: 'OS-Image', type: 'string', priority: 1, value: (n) => str(getPath(n, 'status.nodeInfo.osImage'), '<unknown>') },
      { name: 'Kernel-Version', type: 'string', priority: 1, value: (n) => str(getPath(n, 'status.nodeInfo.kernelVersion'), '<unknown>') },
      { name: 'Container-Runtime', type: 'string', priority: 1, value: (n) => str(getPath(n, 'status.nodeInfo.containerRuntimeVersion'), '<unknown>') },
    ],
    selectableFields: { 'spec.unschedulable': (o) => String(getPath(o, 'spec.unschedulable') === true) },
  },
  {
    group: '', version: 'v1', kind: 'Pod', plural: 'pods', shortNames: ['po'], namespaced: true, hasStatus: true,
    strategicMergePatch: true, categories: ['all'],
    printerColumns: [
      { name: 'Ready', type: 'string', value: podReady, description: 'The aggregate readiness state of this pod for accepting traffic.' },
      { name: 'Status', type: 'string', value: podStatus, description: 'The aggregate status of the containers in this pod.' },
      { name: 'Restarts', type: 'integer', value: podRestarts, description: 'The number of times the containers in this pod have been restarted.' },
      age,
      { name: 'IP', type: 'string', priority: 1, value: (p) => str(getPath(p, 'status.podIP'), '<none>') },
      { name: 'Node', type: 'string', priority: 1, value: (p) => str(getPath(p, 'spec.nodeName'), '<none>') },
      { name: 'Nominated Node', type: 'string', priority: 1, value: (p) => str(getPath(p, 'status.nominatedNodeName'), '<none>') },
      { name: 'Readiness Gates', type: 'string', priority: 1, value: () => '<none>' },
    ],
    selectableFields: Object.fromEntries(
      ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP', 'status.nominatedNodeName'].map((f) => [f, (o: KubeObject) => str(getPath(o, f))]),
    ),
    subresources: [
      { name: 'eviction', kind: 'Eviction', group: 'policy', version: 'v1', verbs: ['create'] },
      { name: 'binding', kind: 'Binding', verbs: ['create'] },
    ],
    prepareForCreate: (pod) => {
      const spec = isRecord(pod['spec']) ? pod['spec'] : (pod['spec'] = {});
      spec['schedulerName'] ??= 'default-scheduler';
      spec['restartPolicy'] ??= 'Always';
      spec['terminationGracePeriodSeconds'] ??= 30;
      spec['dnsPolicy'] ??= 'ClusterFirst';
      const status = isRecord(pod['status']) ? pod['status'] : (pod['status'] = {});
      status['phase'] ??= 'Pending';
    },
  },
  {
    group: '', version: 'v1', kind: 'Event', plural: 'events', shortNames: ['ev'], namespaced: true, strategicMergePatch: true, allowCreateOnUpdate: true,
    printerColumns: [
      { name: 'Last Seen', type: 'date', value: (e) => getPath(e, 'lastTimestamp') ?? getPath(e, 'eventTime') ?? e.metadata.creationTimestamp },
      { name: 'Type', type: 'string', jsonPath: '.type' },
      { name: 'Reason', type: 'string', jsonPath: '.reason' },
      { name: 'Object', type: 'string', value: (e) => `${String(getPath(e, 'involvedObject.kind') ?? '').toLowerCase()}/${str(getPath(e, 'involvedObject.name'))}` },
      { name: 'Message', type: 'string', jsonPath: '.message' },
    ],
    selectableFields: Object.fromEntries(
      ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'type']
        .map((f) => [f, (o: KubeObject) => str(getPath(o, f))] as const)
        .concat([['source', (o: KubeObject) => str(getPath(o, 'source.component'))]]),
    ),
  },
  {
    // Certificates live here (self-managed webhook serving certs, the proxy's CA).
    group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true, strategicMergePatch: true,
    printerColumns: [
      { name: 'Type', type: 'string', jsonPath: '.type' },
      { name: 'Data', type: 'integer', value: (s) => Object.keys(isRecord(s['data']) ? s['data'] : {}).length },
      age,
    ],
    selectableFields: { type: (o) => str(getPath(o, 'type')) },
    prepareForCreate: (secret) => {
      secret['type'] ??= 'Opaque';
      // As the real server does: stringData is write-only, folded into data as base64.
      const stringData = secret['stringData'];
      if (isRecord(stringData)) {
        const data = isRecord(secret['data']) ? secret['data'] : (secret['data'] = {});
        for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
        delete secret['stringData'];
      }
    },
  },
  {
    group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', namespaced: true, strategicMergePatch: true, allowCreateOnUpdate: true,
    printerColumns: [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, age],
  },
  {
    group: 'policy', version: 'v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', shortNames: ['pdb'], namespaced: true, hasStatus: true, strategicMergePatch: true,
    printerColumns: [
      { name: 'Min Available', type: 'string', value: (p) => str(getPath(p, 'spec.minAvailable'), 'N/A') },
      { name: 'Max Unavailable', type: 'string', value: (p) => str(getPath(p, 'spec.maxUnavailable'), 'N/A') },
      { name: 'Allowed Disruptions', type: 'integer', jsonPath: '.status.disruptionsAllowed' },
      age,
    ],
  },
  {
    group: 'kubevirt.io', version: 'v1', kind: 'VirtualMachineInstance', plural: 'virtualmachineinstances', shortNames: ['vmi', 'vmis'], namespaced: true, hasStatus: true, categories: ['all'],
    printerColumns: [
      age,
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'IP', type: 'string', jsonPath: '.status.interfaces[0].ipAddress' },
      { name: 'NodeName', type: 'string', jsonPath: '.status.nodeName' },
      { name: 'Ready', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
      { name: 'Live-Migratable', type: 'string', priority: 1, jsonPath: ".status.conditions[?(@.type=='LiveMigratable')].status" },
      { name: 'Paused', type: 'string', priority: 1, jsonPath: ".status.conditions[?(@.type=='Paused')].status" },
    ],
  },
  {
    group: 'kubevirt.io', version: 'v1', kind: 'VirtualMachineInstanceMigration', plural: 'virtualmachineinstancemigrations', shortNames: ['vmim', 'vmims'], namespaced: true, hasStatus: true, categories: ['all'],
    printerColumns: [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'The current phase of the migration' },
      { name: 'VMI', type: 'string', jsonPath: '.spec.vmiName', description: 'The name of the VMI to migrate' },
      age,
    ],
  },
  {
    group: 'kubevirt.io', version: 'v1', kind: 'KubeVirt', plural: 'kubevirts', shortNames: ['kv', 'kvs'], namespaced: true, hasStatus: true, categories: ['all'],
    printerColumns: [age, { name: 'Phase', type: 'string', jsonPath: '.status.phase' }],
  },
  {
    group: 'ferry.dev', version: 'v1alpha1', kind: 'MaintenanceWindow', plural: 'maintenancewindows', singular: 'maintenancewindow', shortNames: ['mw'], namespaced: false, hasStatus: true,
    printerColumns: [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Pending, Waiting, Running, Paused, Completed, WindowClosed or Failed' },
      { name: 'Nodes', type: 'string', jsonPath: '.status.progress', description: 'Nodes done / nodes in the runbook' },
      { name: 'Batch', type: 'string', jsonPath: '.status.currentBatch', description: 'The batch in progress and its nodes' },
      { name: 'ETA', type: 'string', jsonPath: '.status.eta', description: 'Predicted end of the runbook' },
      { name: 'Window-End', type: 'string', jsonPath: '.status.window.end', description: 'When the current window closes' },
      age,
    ],
  },
  {
    group: 'migrations.kubevirt.io', version: 'v1alpha1', kind: 'MigrationPolicy', plural: 'migrationpolicies', namespaced: false, hasStatus: true, categories: ['all'],
  },
];

export function registerBuiltinResources(registry: ResourceRegistry): void {
  for (const def of builtinResources) registry.register(def);
}
