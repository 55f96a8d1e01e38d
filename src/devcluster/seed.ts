import { Annotations, Labels } from '../api/vmi.js';
import type { DevCluster } from './cluster.js';
import { PodIPAllocator, runningPodStatus } from './kubelet.js';
import { getPath, type KubeObject } from './object.js';
import { randomSuffix, timestamp, type ObjectStore } from './store.js';

/**
 * Demo content: Ready nodes, running VMIs spread over them with their
 * launcher pods, and the KubeVirt config object — what `ferry dev` starts with.
 */
const MEMORY_CYCLE = ['1Gi', '2Gi', '512Mi'];
const DIRTY_RATE_CYCLE = ['20971520', '52428800', '10485760']; // 20Mi, 50Mi, 10Mi per second
const WORKING_SET = '268435456'; // 256Mi

export const LAUNCHER_IMAGE = 'ferry.dev/virt-launcher:sim';

function vmiMemory(vmi: KubeObject): string {
  const m = getPath(vmi, 'spec.domain.resources.requests.memory') ?? getPath(vmi, 'spec.domain.memory.guest');
  return m === undefined ? '1Gi' : String(m);
}

/** The virt-launcher pod KubeVirt would run for `vmi` on `nodeName` (for seeding; the controller builds its own target pods). */
export function launcherPodFor(vmi: KubeObject, nodeName: string): KubeObject {
  const name = vmi.metadata.name!;
  if (!vmi.metadata.uid) throw new Error(`VMI ${name} has no uid yet: create it before building its launcher pod`);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `virt-launcher-${name}-${randomSuffix()}`,
      generateName: `virt-launcher-${name}-`,
      namespace: vmi.metadata.namespace ?? 'default',
      labels: { [Labels.app]: 'virt-launcher', [Labels.createdBy]: vmi.metadata.uid, 'vm.kubevirt.io/name': name },
      annotations: { [Annotations.domain]: name },
      ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', name, uid: vmi.metadata.uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName,
      containers: [{ name: 'compute', image: LAUNCHER_IMAGE, resources: { requests: { memory: vmiMemory(vmi) } } }],
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 30,
    },
  };
}

export function ensureNamespace(store: ObjectStore, name: string): void {
  if (!store.tryGet('namespaces', name)) store.create('namespaces', { metadata: { name } });
}

/** A Ready node; `i` (1-based) numbers its address and pod CIDR. */
export function nodeObject(i: number, now: number, opts: { name?: string; memory?: string; annotations?: Record<string, string> } = {}): KubeObject {
  const name = opts.name ?? `node-${i}`;
  const at = timestamp(now);
  const resources = { cpu: '32', memory: opts.memory ?? '128Gi', pods: '110', 'ephemeral-storage': '200Gi' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'kubevirt.io/schedulable': 'true' },
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec: { podCIDR: `10.244.${i}.0/24`, podCIDRs: [`10.244.${i}.0/24`] },
    status: {
      capacity: resources,
      allocatable: resources,
      conditions: [
        { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', lastHeartbeatTime: at, lastTransitionTime: at },
        { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', lastHeartbeatTime: at, lastTransitionTime: at },
        { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', lastHeartbeatTime: at, lastTransitionTime: at },
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: at, lastTransitionTime: at },
      ],
      addresses: [{ type: 'InternalIP', address: nodeAddress(i) }, { type: 'Hostname', address: name }],
      nodeInfo: {
        kubeletVersion: 'v1.30.0-ferry', kubeProxyVersion: 'v1.30.0-ferry', osImage: 'Ferry simulated node', kernelVersion: '6.1.0-ferry',
        containerRuntimeVersion: 'sim://1.0', operatingSystem: 'linux', architecture: 'amd64', machineID: '', systemUUID: '', bootID: '',
      },
    },
  };
}

function nodeAddress(i: number): string {
  return `192.168.${Math.floor(i / 256)}.${i % 256}`;
}

export interface SeedOptions {
  nodes: number;
  vms: number;
  namespace?: string;
  /** Every VMI gets this memory (real guests must match what they run with); default: a 1Gi/2Gi/512Mi cycle. */
  memory?: string;
  /** false: leave out the sim driver's behaviour annotations (the guests are real; their dirty rates are measured). */
  simAnnotations?: boolean;
}

export async function seedDemo(cluster: DevCluster, opts: SeedOptions): Promise<void> {
  const { store } = cluster;
  const namespace = opts.namespace ?? 'default';
  if (opts.vms > 0 && opts.nodes < 1) throw new Error(`seedDemo: ${opts.vms} VMs need at least one node`);
  const now = Date.now();
  for (const ns of new Set(['default', 'kube-system', 'kubevirt', namespace])) ensureNamespace(store, ns);
  for (let i = 1; i <= opts.nodes; i++) if (!store.tryGet('nodes', `node-${i}`)) store.create('nodes', nodeObject(i, now));
  if (!store.tryGet('kubevirts', 'kubevirt', 'kubevirt')) {
    store.create('kubevirts', { apiVersion: 'kubevirt.io/v1', kind: 'KubeVirt', metadata: { name: 'kubevirt', namespace: 'kubevirt' }, spec: { configuration: { migrations: {} } } });
  }
  const ips = new PodIPAllocator(store);
  for (let i = 1; i <= opts.vms; i++) {
    const name = `vm-${i}`;
    if (store.tryGet('virtualmachineinstances', name, namespace)) continue;
    const nodeIndex = ((i - 1) % opts.nodes) + 1;
    seedRunningVmi(store, ips, {
      name,
      namespace,
      nodeName: `node-${nodeIndex}`,
      hostIP: nodeAddress(nodeIndex),
      memory: opts.memory ?? MEMORY_CYCLE[(i - 1) % MEMORY_CYCLE.length]!,
      annotations: opts.simAnnotations === false ? {} : { [Annotations.simDirtyRate]: DIRTY_RATE_CYCLE[(i - 1) % DIRTY_RATE_CYCLE.length]!, [Annotations.simWorkingSet]: WORKING_SET },
    }, now);
  }
}

export interface VmiSeed {
  name: string;
  namespace: string;
  nodeName: string;
  /** The node's InternalIP. */
  hostIP: string;
  memory: string;
  annotations: Record<string, string>;
}

/** A running VMI with its Running launcher pod, as KubeVirt leaves them once a VM has booted. */
export function seedRunningVmi(store: ObjectStore, ips: PodIPAllocator, v: VmiSeed, now: number): void {
  const { name, namespace, nodeName, memory } = v;
  const vmi = store.create('virtualmachineinstances', {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: { name, namespace, labels: { [Labels.nodeName]: nodeName, 'kubevirt.io/vm': name }, annotations: v.annotations },
    spec: {
      evictionStrategy: 'LiveMigrate',
      domain: { memory: { guest: memory }, resources: { requests: { memory } }, cpu: { cores: 1 }, devices: {} },
    },
  });
  const podIP = ips.allocate(nodeName);
  const pod = launcherPodFor(vmi, nodeName);
  pod['status'] = runningPodStatus(pod, v.hostIP, podIP, now);
  const created = store.create('pods', pod, { withStatus: true });
  const at = timestamp(now);
  store.update(
    'virtualmachineinstances',
    {
      ...vmi,
      status: {
        phase: 'Running',
        nodeName,
        conditions: [
          { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: at },
          { type: 'LiveMigratable', status: 'True', lastProbeTime: null, lastTransitionTime: null },
        ],
        activePods: { [created.metadata.uid]: nodeName },
        migrationMethod: 'LiveMigration',
        migrationTransport: 'Unix',
        interfaces: [{ name: 'default', ipAddress: podIP, ipAddresses: [podIP] }],
        launcherContainerImageVersion: LAUNCHER_IMAGE,
        qosClass: 'Burstable',
      },
    },
    { subresource: 'status' },
  );
}
