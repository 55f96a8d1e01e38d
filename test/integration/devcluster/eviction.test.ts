import type { DevCluster } from '../../../src/devcluster/index.js';
import { apiFailure, clientsFor, eventually, podBody, readyNode, startFastCluster } from './support.js';

let cluster: DevCluster;
let c: ReturnType<typeof clientsFor>;

beforeEach(async () => {
  cluster = await startFastCluster();
  c = clientsFor(cluster);
  await c.core.createNode({ body: readyNode('node-1') });
});
afterEach(async () => {
  await cluster.close();
});

async function runningPod(name: string, labels: Record<string, string>): Promise<void> {
  await c.core.createNamespacedPod({ namespace: 'default', body: podBody(name, { labels }) });
  await eventually(async () => (await c.core.readNamespacedPod({ name, namespace: 'default' })).status?.phase === 'Running', `${name} to run`);
}

const evict = (name: string) =>
  c.core.createNamespacedPodEviction({ name, namespace: 'default', body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: 'default' } } });

async function pdb(name: string, selector: Record<string, string>, spec: Record<string, unknown>) {
  await c.policy.createNamespacedPodDisruptionBudget({ namespace: 'default', body: { metadata: { name }, spec: { selector: { matchLabels: selector }, ...spec } } });
}

describe('pods/eviction', () => {
  test('without a disruption budget the pod is evicted (201) and terminates', async () => {
    await runningPod('p', { app: 'a' });
    const res = await fetch(`${cluster.url}/api/v1/namespaces/default/pods/p/eviction`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'p' } }),
    });
    expect(res.status).toBe(201);
    await eventually(async () => (await c.core.listNamespacedPod({ namespace: 'default' })).items.length === 0, 'the evicted pod to be gone');
  });

  test('a budget that would be violated answers 429 and leaves the pod alone', async () => {
    await runningPod('launcher', { 'kubevirt.io/created-by': 'vmi-1' });
    await pdb('kubevirt-disruption-budget-vmi-1', { 'kubevirt.io/created-by': 'vmi-1' }, { minAvailable: 1 });
    const err = await apiFailure(evict('launcher'));
    expect(err).toMatchObject({
      httpCode: 429,
      reason: 'TooManyRequests',
      message: "Cannot evict pod as it would violate the pod's disruption budget.",
      details: { causes: [{ reason: 'DisruptionBudget', message: 'The disruption budget kubevirt-disruption-budget-vmi-1 needs 1 healthy pods and has 1 currently' }] },
    });
    const pod = await c.core.readNamespacedPod({ name: 'launcher', namespace: 'default' });
    expect(pod.metadata?.deletionTimestamp).toBeUndefined();
    const budget = await c.policy.readNamespacedPodDisruptionBudget({ name: 'kubevirt-disruption-budget-vmi-1', namespace: 'default' });
    expect(budget.status).toMatchObject({ currentHealthy: 1, desiredHealthy: 1, disruptionsAllowed: 0, expectedPods: 1 });
  });

  test('a budget allowing one disruption lets exactly one eviction through', async () => {
    await runningPod('a', { app: 'web' });
    await runningPod('b', { app: 'web' });
    await pdb('web', { app: 'web' }, { maxUnavailable: 1 });
    await evict('a');
    expect((await apiFailure(evict('b'))).httpCode).toBe(429);
  });
});
