import { PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import type { DevCluster } from '../../../src/devcluster/index.js';
import { antiAffinityTo, clientsFor, eventually, podBody, readyNode, startFastCluster } from './support.js';

let cluster: DevCluster;
let c: ReturnType<typeof clientsFor>;

beforeEach(async () => {
  cluster = await startFastCluster();
  c = clientsFor(cluster);
});
afterEach(async () => {
  await cluster.close();
});

const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

async function createNodes(...nodes: ReturnType<typeof readyNode>[]) {
  for (const n of nodes) await c.core.createNode({ body: n });
}

async function nodeOf(name: string): Promise<string> {
  return eventually(async () => (await c.core.readNamespacedPod({ name, namespace: 'default' })).spec?.nodeName, `pod ${name} to be bound`);
}

async function running(name: string): Promise<V1Pod> {
  return eventually(async () => {
    const p = await c.core.readNamespacedPod({ name, namespace: 'default' });
    return p.status?.phase === 'Running' ? p : undefined;
  }, `pod ${name} to run`);
}

const scheduledCondition = async (name: string) => (await c.core.readNamespacedPod({ name, namespace: 'default' })).status?.conditions?.find((x) => x.type === 'PodScheduled');

describe('scheduler and kubelet stand-ins', () => {
  test('a new pod is bound to a node and then runs, Ready, with an IP from the node\'s pod range', async () => {
    await createNodes(readyNode('node-1'));
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('p') });
    const pod = await running('p');
    expect(pod.spec?.nodeName).toBe('node-1');
    expect(pod.status?.podIP).toMatch(/^10\.244\.\d+\.\d+$/);
    expect(pod.status?.hostIP).toBe('192.168.1.1');
    expect(pod.status?.startTime).toBeInstanceOf(Date);
    expect(Object.fromEntries((pod.status?.conditions ?? []).map((x) => [x.type, x.status]))).toEqual({ Initialized: 'True', Ready: 'True', ContainersReady: 'True', PodScheduled: 'True' });
    expect(pod.status?.containerStatuses?.[0]).toMatchObject({ name: 'compute', ready: true, restartCount: 0, state: { running: {} } });
  });

  test('a cordoned node gets no new pods; nodeSelector narrows the choice', async () => {
    await createNodes(readyNode('node-1', { unschedulable: true }), readyNode('node-2', { labels: { disk: 'ssd' } }), readyNode('node-3'));
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('any') });
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('ssd', { spec: { nodeSelector: { disk: 'ssd' } } }) });
    expect(await nodeOf('ssd')).toBe('node-2');
    expect(['node-2', 'node-3']).toContain(await nodeOf('any'));
  });

  test('required anti-affinity puts a target launcher pod on another node than its source', async () => {
    await createNodes(readyNode('node-1'), readyNode('node-2'));
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('source', { nodeName: 'node-1', memory: '0', labels: { 'kubevirt.io/created-by': 'vmi-uid' } }) });
    // node-1 is the least loaded (the source asks for no memory) yet must be avoided.
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('filler', { nodeName: 'node-2', memory: '2Gi' }) });
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('target', { spec: antiAffinityTo({ 'kubevirt.io/created-by': 'vmi-uid' }) }) });
    expect(await nodeOf('target')).toBe('node-2');
  });

  test('a pod goes where its memory request fits', async () => {
    await createNodes(readyNode('node-1', { memory: '4Gi' }), readyNode('node-2', { memory: '16Gi' }));
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('big', { memory: '6Gi' }) });
    expect(await nodeOf('big')).toBe('node-2');
  });

  test('an unschedulable pod says why, and is scheduled once a node is uncordoned', async () => {
    await createNodes(readyNode('node-1', { unschedulable: true }), readyNode('node-2'), readyNode('node-3'));
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('a', { nodeName: 'node-2', labels: { app: 'x' } }) });
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('b', { nodeName: 'node-3', labels: { app: 'x' } }) });
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('c', { labels: { app: 'x' }, spec: antiAffinityTo({ app: 'x' }) }) });
    const cond = await eventually(async () => {
      const x = await scheduledCondition('c');
      return x?.status === 'False' ? x : undefined;
    }, 'PodScheduled=False');
    expect(cond).toMatchObject({ reason: 'Unschedulable', message: "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match pod anti-affinity rules." });
    const pending = await c.core.readNamespacedPod({ name: 'c', namespace: 'default' });
    expect(pending.status?.phase).toBe('Pending');
    expect(pending.spec?.nodeName).toBeUndefined();

    await c.core.patchNode({ name: 'node-1', body: { spec: { unschedulable: null } } }, strategic); // what kubectl uncordon sends
    expect(await nodeOf('c')).toBe('node-1');
    expect((await scheduledCondition('c'))?.status).toBe('True');
    await running('c');
  });

  test('a pod bound to a node that does not exist stays Pending until the node appears', async () => {
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('early', { nodeName: 'node-9' }) });
    await new Promise((r) => setTimeout(r, 100));
    expect((await c.core.readNamespacedPod({ name: 'early', namespace: 'default' })).status?.phase).toBe('Pending');
    await createNodes(readyNode('node-9'));
    await running('early');
  });

  test('deleting a running pod is graceful: it is Terminating first, then gone; an unbound pod goes at once', async () => {
    await createNodes(readyNode('node-1'));
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('p') });
    await running('p');
    const deleting = await c.core.deleteNamespacedPod({ name: 'p', namespace: 'default' });
    expect(deleting.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    expect(deleting.metadata?.deletionGracePeriodSeconds).toBe(30);
    await eventually(async () => (await c.core.listNamespacedPod({ namespace: 'default' })).items.length === 0, 'the kubelet to remove the pod');

    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('unbound', { spec: { schedulerName: 'someone-else' } }) });
    await c.core.deleteNamespacedPod({ name: 'unbound', namespace: 'default' });
    expect((await c.core.listNamespacedPod({ namespace: 'default' })).items).toEqual([]);
  });

  test('a forced delete (grace period 0 in the DeleteOptions body, as kubectl --force sends it) removes a running pod at once', async () => {
    await createNodes(readyNode('node-1'));
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('p') });
    await running('p');
    const res = await fetch(`${cluster.url}/api/v1/namespaces/default/pods/p`, {
      method: 'DELETE',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, propagationPolicy: 'Background' }),
    });
    expect(res.status).toBe(200);
    expect(cluster.store.tryGet('pods', 'p', 'default')).toBeUndefined();
  });
});
