/**
 * A write the API server refuses with 409 changed nothing, so no watch event
 * will bring the object back: the controller must retry it, never take it as
 * done (chaos seed 13: VMIMs created during an API fault window were never
 * adopted, never got a phase, and their drain never ended). Real dev cluster
 * over HTTP with its fault injection limited to VMIMs.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { adopt, adopted } from '../../../src/controller/finalizer.js';
import { ApiFaults } from '../../../src/devcluster/faults.js';
import { startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import { KubeClient, VMIM_RESOURCE } from '../../../src/kube/client.js';

let cluster: DevCluster;
let kube: KubeClient;
const faults = new ApiFaults(3);

beforeAll(async () => {
  cluster = await startDevCluster({ faults });
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeConfigYaml());
  kube = new KubeClient(kc);
});
afterAll(async () => {
  await cluster?.close();
});

const read = async (name: string) => {
  const r = VirtualMachineInstanceMigration.safeParse(await kube.getCustom(VMIM_RESOURCE, 'default', name));
  if (!r.success) throw new Error(`VMIM ${name} does not parse`);
  return r.data;
};

test('adopting a VMIM whose write is refused with 409 fails (so the queue retries it), and the retry adopts it', async () => {
  await kube.createCustom(VMIM_RESOURCE, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'refused', namespace: 'default' }, spec: { vmiName: 'vm-a' } });
  const before = await read('refused');
  faults.enable({ conflict: 1, paths: 'virtualmachineinstancemigrations' });
  try {
    await expect(adopt(kube, before)).rejects.toMatchObject({ code: 409 });
  } finally {
    faults.disable();
  }
  expect(faults.counts.conflict).toBe(1);
  const unchanged = await read('refused');
  expect(unchanged.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  expect(adopted(unchanged)).toBe(false);

  await adopt(kube, unchanged);
  expect(adopted(await read('refused'))).toBe(true);
});

test('a stale copy (the object changed since) is left to the watch: no error, nothing written', async () => {
  await kube.createCustom(VMIM_RESOURCE, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'stale', namespace: 'default' }, spec: { vmiName: 'vm-b' } });
  const old = await read('stale');
  await kube.patchCustom(VMIM_RESOURCE, 'default', 'stale', { metadata: { annotations: { touched: 'yes' } } });
  await expect(adopt(kube, old)).resolves.toBeUndefined();
  expect(adopted(await read('stale'))).toBe(false);
});
