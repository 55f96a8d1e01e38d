/**
 * The kubelet stand-in with something behind its pods (the libvirt dev mode
 * runs a launcher daemon per virt-launcher pod): a pod is Running only once
 * what it stands for has started, Failed when that cannot start, and its
 * object goes only once what it ran has stopped.
 */
import type { DevCluster } from '../../../src/devcluster/index.js';
import type { PodRuntime } from '../../../src/devcluster/kubelet.js';
import type { KubeObject } from '../../../src/devcluster/object.js';
import { waitFor } from '../../support/wait.js';
import { clientsFor, startFastCluster } from './support.js';

class RecordingRuntime implements PodRuntime {
  readonly events: string[] = [];
  release: (() => void) | undefined;
  failWith: string | undefined;
  handles(pod: KubeObject): boolean {
    return pod.metadata.labels?.['kubevirt.io'] === 'virt-launcher';
  }
  async start(pod: KubeObject): Promise<void> {
    this.events.push(`start ${pod.metadata.name}`);
    await new Promise<void>((r) => { this.release = r; });
    if (this.failWith) throw new Error(this.failWith);
  }
  async stop(pod: KubeObject): Promise<void> {
    this.events.push(`stop ${pod.metadata.name}`);
    await new Promise((r) => setTimeout(r, 200));
    this.events.push(`stopped ${pod.metadata.name}`);
  }
}

let cluster: DevCluster;
afterEach(async () => cluster?.close());

const launcher = (name: string) => ({
  metadata: { name, labels: { 'kubevirt.io': 'virt-launcher' } },
  spec: { nodeName: 'node-1', containers: [{ name: 'compute', image: 'x' }] },
});

async function setUp(runtime: RecordingRuntime) {
  cluster = await startFastCluster({ podRuntime: runtime });
  const { core } = clientsFor(cluster);
  await core.createNode({ body: { metadata: { name: 'node-1' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } } });
  return core;
}

test('a launcher pod is Running only after its runtime started, and is removed only after it stopped', async () => {
  const runtime = new RecordingRuntime();
  const core = await setUp(runtime);
  await core.createNamespacedPod({ namespace: 'default', body: launcher('virt-launcher-vm-1-abc') });
  await waitFor('the runtime to be asked to start the pod', async () => runtime.release);
  await new Promise((r) => setTimeout(r, 100));
  expect((await core.readNamespacedPod({ namespace: 'default', name: 'virt-launcher-vm-1-abc' })).status?.phase ?? 'Pending').toBe('Pending');
  runtime.release!();
  await waitFor('Running', async () => (await core.readNamespacedPod({ namespace: 'default', name: 'virt-launcher-vm-1-abc' })).status?.phase === 'Running' || undefined);

  await core.deleteNamespacedPod({ namespace: 'default', name: 'virt-launcher-vm-1-abc' });
  await waitFor('the pod to go', async () => (await core.listNamespacedPod({ namespace: 'default' })).items.length === 0 || undefined);
  expect(runtime.events).toEqual(['start virt-launcher-vm-1-abc', 'stop virt-launcher-vm-1-abc', 'stopped virt-launcher-vm-1-abc']);
});

test('a launcher that cannot start fails its pod with the reason', async () => {
  const runtime = new RecordingRuntime();
  runtime.failWith = 'libvirtd exited during start';
  const core = await setUp(runtime);
  await core.createNamespacedPod({ namespace: 'default', body: launcher('virt-launcher-vm-2-abc') });
  await waitFor('the runtime to be asked', async () => runtime.release);
  runtime.release!();
  const pod = await waitFor('Failed', async () => {
    const p = await core.readNamespacedPod({ namespace: 'default', name: 'virt-launcher-vm-2-abc' });
    return p.status?.phase === 'Failed' ? p : undefined;
  });
  expect(pod.status?.message).toBe('libvirtd exited during start');
});

test('pods the runtime does not handle run as before', async () => {
  const runtime = new RecordingRuntime();
  const core = await setUp(runtime);
  await core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'web' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'x' }] } } });
  await waitFor('Running', async () => (await core.readNamespacedPod({ namespace: 'default', name: 'web' })).status?.phase === 'Running' || undefined);
  expect(runtime.events).toEqual([]);
});
