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

  test('a discovery failure is not remembered: once the resource is served, its status is written', async () => {
    const r = { group: 'late.ferry.dev', version: 'v1', plural: 'widgets' };
    await expect(kube.hasStatusSubresource(r)).rejects.toThrow(/cannot tell whether widgets.late.ferry.dev\/v1 has a status subresource: discovery failed \(404/);
    cluster.registerResource({ group: 'late.ferry.dev', version: 'v1', kind: 'Widget', plural: 'widgets', namespaced: true, hasStatus: true });
    expect(await kube.hasStatusSubresource(r)).toBe(true);
    await kube.createCustom(r, 'default', { apiVersion: 'late.ferry.dev/v1', kind: 'Widget', metadata: { name: 'w1' }, spec: {} });
    await kube.patchCustomStatus(r, 'default', 'w1', { status: { ready: true } });
    expect(((await kube.getCustom(r, 'default', 'w1')) as { status?: { ready?: boolean } }).status?.ready).toBe(true);
  });

  test('a 404 from /status after the CRD dropped its status subresource makes the client discover again and write through the object', async () => {
    const type = cluster.registerResource({ group: 'changing.ferry.dev', version: 'v1', kind: 'Thing', plural: 'things', namespaced: true, hasStatus: true });
    const r = { group: 'changing.ferry.dev', version: 'v1', plural: 'things' };
    await kube.createCustom(r, 'default', { apiVersion: 'changing.ferry.dev/v1', kind: 'Thing', metadata: { name: 't1' }, spec: {} });
    expect(await kube.hasStatusSubresource(r)).toBe(true);
    type.hasStatus = false; // the CRD is updated without the status subresource
    await kube.patchCustomStatus(r, 'default', 't1', { status: { phase: 'Moved' } });
    expect(((await kube.getCustom(r, 'default', 't1')) as { status?: { phase?: string } }).status?.phase).toBe('Moved');
    expect(await kube.hasStatusSubresource(r)).toBe(false);
    // A 404 about the object itself stays a 404.
    await expect(kube.patchCustomStatus(r, 'default', 'missing', { status: { phase: 'x' } })).rejects.toMatchObject({ code: 404 });
  });
});
