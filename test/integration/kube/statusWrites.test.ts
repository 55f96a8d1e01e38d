import { KubeConfig } from '@kubernetes/client-node';
import { startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import { KubeClient } from '../../../src/kube/client.js';

describe('status writes follow discovery', () => {
  let cluster: DevCluster;
  let kube: KubeClient;
  beforeAll(async () => {
    cluster = await startDevCluster();
    // Like KubeVirt's own VMI CRD: no status subresource, status is written with the object.
    cluster.registerResource({ group: 'example.ferry.dev', version: 'v1', kind: 'Gadget', plural: 'gadgets', namespaced: true, hasStatus: false });
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeConfigYaml());
    kube = new KubeClient(kc);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  test('a resource without a status subresource gets its status through the object itself', async () => {
    const r = { group: 'example.ferry.dev', version: 'v1', plural: 'gadgets' };
    await kube.createCustom(r, 'default', { apiVersion: 'example.ferry.dev/v1', kind: 'Gadget', metadata: { name: 'g1' }, spec: {} });
    expect(await kube.hasStatusSubresource(r)).toBe(false);
    await kube.patchCustomStatus(r, 'default', 'g1', { status: { nodeName: 'node-2' } });
    expect(((await kube.getCustom(r, 'default', 'g1')) as { status?: { nodeName?: string } }).status?.nodeName).toBe('node-2');
  });

  test('a resource with one (VMIs here) is written through /status, which ignores spec changes', async () => {
    const r = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances' };
    expect(await kube.hasStatusSubresource(r)).toBe(true);
    await kube.createCustom(r, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name: 'v1' }, spec: { domain: {} } });
    await kube.patchCustomStatus(r, 'default', 'v1', { spec: { evictionStrategy: 'None' }, status: { phase: 'Running' } });
    const got = (await kube.getCustom(r, 'default', 'v1')) as { spec?: { evictionStrategy?: string }; status?: { phase?: string } };
    expect(got.status?.phase).toBe('Running');
    expect(got.spec?.evictionStrategy).toBeUndefined();
  });
});
