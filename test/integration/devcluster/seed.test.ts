import { launcherPodFor, seedDemo, type DevCluster } from '../../../src/devcluster/index.js';
import { clientsFor, eventually, startFastCluster, VMI } from './support.js';

let cluster: DevCluster;

beforeEach(async () => {
  cluster = await startFastCluster();
});
afterEach(async () => {
  await cluster.close();
});

describe('seedDemo', () => {
  test('creates Ready nodes and running VMIs spread round-robin, each with its launcher pod', async () => {
    await seedDemo(cluster, { nodes: 2, vms: 3 });
    const c = clientsFor(cluster);
    const nodes = (await c.core.listNode()).items;
    expect(nodes.map((n) => n.metadata?.name)).toEqual(['node-1', 'node-2']);
    expect(nodes[0]).toMatchObject({
      metadata: { labels: { 'kubernetes.io/hostname': 'node-1', 'kubernetes.io/os': 'linux', 'kubevirt.io/schedulable': 'true' } },
      status: { allocatable: { cpu: '32', memory: '128Gi', pods: '110' }, addresses: [{ type: 'InternalIP', address: '192.168.0.1' }, expect.anything()], nodeInfo: { kubeletVersion: 'v1.30.0-ferry' } },
    });

    const vmis = (await c.custom.listNamespacedCustomObject({ ...VMI, namespace: 'default' })).items as Array<Record<string, any>>;
    expect(vmis.map((v) => [v.metadata.name, v.status.nodeName, v.spec.domain.memory.guest, v.spec.domain.resources.requests.memory])).toEqual([
      ['vm-1', 'node-1', '1Gi', '1Gi'],
      ['vm-2', 'node-2', '2Gi', '2Gi'],
      ['vm-3', 'node-1', '512Mi', '512Mi'],
    ]);
    const vm1 = vmis[0]!;
    expect(vm1.spec.evictionStrategy).toBe('LiveMigrate');
    expect(vm1.metadata.labels['kubevirt.io/nodeName']).toBe('node-1');
    expect(Number(vm1.metadata.annotations['ferry.dev/sim-dirty-rate'])).toBeGreaterThan(0);
    expect(vm1.metadata.annotations['ferry.dev/sim-working-set']).toBe('268435456');
    expect(vm1.status).toMatchObject({ phase: 'Running', migrationMethod: 'LiveMigration' });
    expect(vm1.status.conditions.filter((x: { status: string }) => x.status === 'True').map((x: { type: string }) => x.type).sort()).toEqual(['LiveMigratable', 'Ready']);

    const pods = (await c.core.listNamespacedPod({ namespace: 'default', labelSelector: `kubevirt.io/created-by=${vm1.metadata.uid}` })).items;
    expect(pods).toHaveLength(1);
    const pod = pods[0]!;
    expect(pod.metadata?.name).toMatch(/^virt-launcher-vm-1-[a-z0-9]{5}$/);
    expect(pod.metadata?.labels).toMatchObject({ 'kubevirt.io': 'virt-launcher', 'vm.kubevirt.io/name': 'vm-1' });
    expect(pod.metadata?.annotations).toEqual({ 'kubevirt.io/domain': 'vm-1' });
    expect(pod.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'VirtualMachineInstance', name: 'vm-1', uid: vm1.metadata.uid, controller: true })]);
    expect(pod.spec?.nodeName).toBe('node-1');
    expect(pod.spec?.containers[0]?.resources?.requests).toEqual({ memory: '1Gi' });
    expect(pod.status?.phase).toBe('Running');
    expect(vm1.status.activePods).toEqual({ [pod.metadata!.uid!]: 'node-1' });
    expect(vm1.status.interfaces[0].ipAddress).toBe(pod.status?.podIP);

    const kv = await c.custom.getNamespacedCustomObject({ group: 'kubevirt.io', version: 'v1', plural: 'kubevirts', namespace: 'kubevirt', name: 'kubevirt' });
    expect(kv.spec.configuration.migrations).toEqual({});
    expect((await c.core.listNamespace()).items.map((n) => n.metadata?.name)).toEqual(expect.arrayContaining(['default', 'kube-system', 'kubevirt']));
  });

  test('a launcher pod built with launcherPodFor for another node starts there with its own IP', async () => {
    await seedDemo(cluster, { nodes: 2, vms: 1 });
    const vmi = cluster.store.get('vmi', 'vm-1', 'default');
    const target = cluster.store.create('pods', launcherPodFor(vmi, 'node-2'));
    const running = await eventually(() => {
      const p = cluster.store.get('pods', target.metadata.name, 'default');
      return p.status && (p.status as { phase?: string }).phase === 'Running' ? p : undefined;
    }, 'the target pod to run');
    const ips = cluster.store.list('pods').items.map((p) => (p.status as { podIP?: string }).podIP);
    expect(new Set(ips).size).toBe(ips.length);
    expect((running.status as { podIP: string }).podIP).toMatch(/^10\.244\.2\./);
  });
});
