import { KubeConfig, CustomObjectsApi, CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { DevCluster } from '../../../src/devcluster/index.js';
import { render } from '../../deploy/render.js';
import { apiFailure, clientsFor, podBody, readyNode, startFastCluster, VMIM } from './support.js';

/**
 * ValidatingAdmissionPolicies evaluated in CEL by the embedded API server:
 * the coexistence policies of deploy/overlays/with-kubevirt, applied as
 * rendered, deny what they say they deny — and only that.
 */

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const KUBEVIRT_CONTROLLER = 'system:serviceaccount:kubevirt:kubevirt-controller';

let cluster: DevCluster;
let admin: ReturnType<typeof clientsFor>;

function clientsAs(token: string) {
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeConfigYaml());
  const user = kc.getCurrentUser()!;
  (user as { token?: string }).token = token;
  return { custom: kc.makeApiClient(CustomObjectsApi), core: kc.makeApiClient(CoreV1Api) };
}

function vmim(name: string, labels: Record<string, string> = {}) {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name, labels }, spec: { vmiName: 'vm-1' } };
}

beforeAll(async () => {
  cluster = await startFastCluster({ rbac: true });
  admin = clientsFor(cluster);
  await admin.core.createNode({ body: readyNode('node-1') });
  const policies = render('overlays/with-kubevirt').filter((o) => o.kind === 'ValidatingAdmissionPolicy' || o.kind === 'ValidatingAdmissionPolicyBinding');
  expect(policies).toHaveLength(4);
  for (const o of policies) {
    const plural = o.kind === 'ValidatingAdmissionPolicy' ? 'validatingadmissionpolicies' : 'validatingadmissionpolicybindings';
    await admin.custom.createClusterCustomObject({ group: 'admissionregistration.k8s.io', version: 'v1', plural, body: o });
  }
  await admin.custom.createNamespacedCustomObject({ ...VMIM, namespace: 'default', body: vmim('ferry-owned', { 'ferry.dev/migration-controller': 'ferry' }) });
  await admin.custom.createNamespacedCustomObject({ ...VMIM, namespace: 'default', body: vmim('kubevirt-owned') });
});
afterAll(() => cluster.close());

/** Tokens for KubeVirt's controller and for Ferry's: both may do anything RBAC-wise, so only the policies decide. */
async function tokens() {
  await admin.core.createNamespace({ body: { metadata: { name: 'kubevirt' } } }).catch(() => undefined);
  const kubevirt = cluster.auth!.tokenFor({ name: KUBEVIRT_CONTROLLER, groups: ['system:masters'] });
  const ferry = cluster.auth!.tokenFor({ name: 'system:serviceaccount:ferry-system:ferry-controller', groups: ['system:masters'] });
  return { kubevirt: clientsAs(kubevirt), ferry: clientsAs(ferry) };
}

describe('deploy/overlays/with-kubevirt admission policies in the embedded cluster', () => {
  test('KubeVirt\'s controller may not write a Ferry-owned migration, nor its status', async () => {
    const { kubevirt } = await tokens();
    const write = kubevirt.custom.patchNamespacedCustomObject({ ...VMIM, namespace: 'default', name: 'ferry-owned', body: { metadata: { annotations: { touched: 'yes' } } } }, mergePatch);
    expect(await apiFailure(write)).toMatchObject({
      httpCode: 403,
      reason: 'Forbidden',
      message: "ValidatingAdmissionPolicy 'ferry.dev-kubevirt-leaves-ferry-migrations' with binding 'ferry.dev-kubevirt-leaves-ferry-migrations' denied request: this migration is run by Ferry (label ferry.dev/migration-controller=ferry); KubeVirt's controller leaves it alone",
    });
    const status = kubevirt.custom.patchNamespacedCustomObjectStatus({ ...VMIM, namespace: 'default', name: 'ferry-owned', body: { status: { phase: 'Failed' } } }, mergePatch);
    expect((await apiFailure(status)).httpCode).toBe(403);
    const stored = (await admin.custom.getNamespacedCustomObject({ ...VMIM, namespace: 'default', name: 'ferry-owned' })) as { metadata: { annotations?: object }; status?: { phase?: string } };
    expect(stored.metadata.annotations).toBeUndefined();
    expect(stored.status?.phase).not.toBe('Failed');
  });

  test('KubeVirt\'s controller still writes its own migrations, and Ferry writes Ferry\'s', async () => {
    const { kubevirt, ferry } = await tokens();
    await kubevirt.custom.patchNamespacedCustomObject({ ...VMIM, namespace: 'default', name: 'kubevirt-owned', body: { metadata: { annotations: { touched: 'yes' } } } }, mergePatch);
    await ferry.custom.patchNamespacedCustomObject({ ...VMIM, namespace: 'default', name: 'ferry-owned', body: { metadata: { annotations: { ferry: 'yes' } } } }, mergePatch);
  });

  test('KubeVirt\'s controller may not create a target pod for a Ferry-owned migration, but may for its own', async () => {
    const { kubevirt, ferry } = await tokens();
    const targetPod = (name: string, job: string) => ({ ...podBody(name), metadata: { name, annotations: { 'kubevirt.io/migrationJobName': job } } });
    expect(await apiFailure(kubevirt.core.createNamespacedPod({ namespace: 'default', body: targetPod('virt-launcher-x', 'ferry-owned') }))).toMatchObject({
      httpCode: 403,
      message: "ValidatingAdmissionPolicy 'ferry.dev-kubevirt-creates-no-target-pods-for-ferry' with binding 'ferry.dev-kubevirt-creates-no-target-pods-for-ferry' denied request: the migration is run by Ferry, which creates its target pod itself",
    });
    await kubevirt.core.createNamespacedPod({ namespace: 'default', body: targetPod('virt-launcher-y', 'kubevirt-owned') });
    await ferry.core.createNamespacedPod({ namespace: 'default', body: targetPod('virt-launcher-z', 'ferry-owned') });
  });
});
