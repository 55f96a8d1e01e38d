import { makeInformer, type V1Pod } from '@kubernetes/client-node';
import type { DevCluster } from '../../../src/devcluster/index.js';
import { clientsFor, eventually, podBody, readyNode, startFastCluster } from './support.js';

let cluster: DevCluster;

beforeEach(async () => {
  cluster = await startFastCluster();
});
afterEach(async () => {
  await cluster.close();
});

describe('client-node informers (list, then watch from the list version)', () => {
  test('the cache follows creation, status changes from the kubelet, and deletion', async () => {
    const c = clientsFor(cluster);
    await c.core.createNode({ body: readyNode('node-1') });
    await c.core.createNamespacedPod({ namespace: 'default', body: podBody('before') });
    const informer = makeInformer<V1Pod>(c.kc, '/api/v1/namespaces/default/pods', () => c.core.listNamespacedPod({ namespace: 'default' }));
    const events: string[] = [];
    informer.on('add', (p) => events.push(`add ${p.metadata?.name}`));
    informer.on('delete', (p) => events.push(`delete ${p.metadata?.name}`));
    await informer.start();
    try {
      await c.core.createNamespacedPod({ namespace: 'default', body: podBody('after') });
      await eventually(() => informer.list('default').find((p) => p.metadata?.name === 'after' && p.status?.phase === 'Running'), 'the cache to see the pod running');
      await c.core.deleteNamespacedPod({ name: 'before', namespace: 'default', gracePeriodSeconds: 0 });
      await eventually(() => events.includes('delete before'), 'the delete event');
      expect(events).toEqual(['add before', 'add after', 'delete before']);
      expect(informer.list('default').map((p) => p.metadata?.name)).toEqual(['after']);
    } finally {
      await informer.stop();
    }
  });
});
