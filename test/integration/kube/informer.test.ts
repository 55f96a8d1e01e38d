import type { V1Namespace, KubernetesListObject } from '@kubernetes/client-node';
import type { DevCluster } from '../../../src/devcluster/index.js';
import { startInformer } from '../../../src/kube/informer.js';
import { clientsFor, eventually, startFastCluster } from '../devcluster/support.js';
import { recordingLogger } from '../bus/helpers.js';

let cluster: DevCluster;
beforeEach(async () => { cluster = await startFastCluster(); });
afterEach(async () => { await cluster.close(); });

test('an informer whose list fails is not synced until a restart lists successfully, with one restart at a time', async () => {
  const c = clientsFor(cluster);
  let calls = 0;
  let failing = 2;
  const list = async () => {
    calls++;
    if (failing > 0) {
      failing--;
      throw Object.assign(new Error('apiserver is restarting'), { code: 503 });
    }
    return c.core.listNamespace() as Promise<KubernetesListObject<V1Namespace>>;
  };
  const log = recordingLogger();
  const inf = startInformer<V1Namespace>({ kc: c.kc, path: '/api/v1/namespaces', list, onChange: () => undefined, log, restartDelayMs: 100 });
  try {
    await inf.start();
    expect(inf.synced()).toBe(false);
    await eventually(() => inf.synced() || undefined, 'the informer to sync after the list recovers', 5000);
    expect(calls).toBe(3);
    expect(log.find('watch failed; restarting informer')).toHaveLength(2);
    expect(inf.list().map((n) => n.metadata?.name)).toContain('default');
  } finally {
    await inf.stop();
  }
  expect(inf.synced()).toBe(false);
});

test('a synced informer whose watch breaks (API server gone) reports not synced', async () => {
  const c = clientsFor(cluster);
  const log = recordingLogger();
  const inf = startInformer<V1Namespace>({
    kc: c.kc, path: '/api/v1/namespaces', list: () => c.core.listNamespace() as Promise<KubernetesListObject<V1Namespace>>,
    onChange: () => undefined, log, restartDelayMs: 100,
  });
  try {
    await inf.start();
    expect(inf.synced()).toBe(true);
    await cluster.close();
    await eventually(() => !inf.synced() || undefined, 'the informer to notice', 5000);
    expect(log.find('watch failed; restarting informer').length).toBeGreaterThan(0);
  } finally {
    await inf.stop();
  }
});
