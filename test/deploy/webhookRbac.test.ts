import { AdmissionregistrationV1Api, KubeConfig } from '@kubernetes/client-node';
import { seedDemo, startDevCluster, type DevCluster } from '../../src/devcluster/index.js';
import { describeApiError, KubeClient, VMI_RESOURCE, VMIM_RESOURCE } from '../../src/kube/client.js';
import { systemClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { startSelfManagedServing, type ServingCertificates } from '../../src/webhook/certificates.js';
import { WebhookNames, WEBHOOK_NAMESPACE, WEBHOOK_SERVICE, WEBHOOK_SERVICE_PORT } from '../../src/webhook/registration.js';
import { startWebhookServer, type WebhookServer } from '../../src/webhook/server.js';
import { render, type K8sObject } from './render.js';

/**
 * The webhook's RBAC in deploy/ is what it needs: on an RBAC-enforcing dev
 * cluster loaded with the rendered manifests (RBAC, Service, webhook
 * configuration), the webhook authenticated as the ferry-webhook
 * ServiceAccount creates its certificates, injects the CA bundle and decides
 * evictions and VMIM creates — no request of its own refused.
 */
const KINDS = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Service', 'ValidatingWebhookConfiguration']);

function kubeFor(yaml: string): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromString(yaml);
  return new KubeClient(kc);
}

describe('the deploy/ RBAC rules of the admission webhook', () => {
  let cluster: DevCluster;
  let admin: KubeClient;
  let certs: ServingCertificates;
  let server: WebhookServer;
  const requests: string[] = [];

  beforeAll(async () => {
    cluster = await startDevCluster({ rbac: true, podStartDelayMs: 50, schedulerIntervalMs: 100, log: (line) => requests.push(line) });
    const objects = render('overlays/standalone').filter((o) => KINDS.has(o.kind));
    for (const o of [...objects].sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'))) {
      const type = cluster.store.registry.byKind(o.apiVersion, o.kind);
      if (!type) throw new Error(`the dev cluster does not serve ${o.apiVersion} ${o.kind}`);
      cluster.store.create(type, o as K8sObject & { metadata: Record<string, unknown> });
    }
    await seedDemo(cluster, { nodes: 2, vms: 2 });
    admin = kubeFor(cluster.kubeConfigYaml());
    const webhookKube = kubeFor(cluster.auth!.serviceAccountKubeconfig(WEBHOOK_NAMESPACE, 'ferry-webhook'));
    requests.length = 0;
    certs = await startSelfManagedServing({ kube: webhookKube, clock: systemClock, log: silentLogger, namespace: WEBHOOK_NAMESPACE });
    server = await startWebhookServer({ kube: webhookKube, material: certs.material, log: silentLogger, port: 0, host: '127.0.0.1' });
    cluster.routeService(WEBHOOK_NAMESPACE, WEBHOOK_SERVICE, WEBHOOK_SERVICE_PORT, { host: '127.0.0.1', port: server.port });
  });
  afterAll(async () => {
    certs?.stop();
    await server?.close();
    await cluster?.close();
  });

  test('certificates are created and the CA bundle injected with the webhook\'s own permissions', async () => {
    const secrets = await admin.core.listNamespacedSecret({ namespace: WEBHOOK_NAMESPACE });
    expect(secrets.items.map((s) => s.metadata?.name).sort()).toEqual(['ferry-webhook-ca', 'ferry-webhook-tls']);
    const config = await admin.kc.makeApiClient(AdmissionregistrationV1Api).readValidatingWebhookConfiguration({ name: 'ferry-admission' });
    expect(new Set(config.webhooks!.map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString()))).toEqual(new Set([certs.current().caBundle]));
  });

  test('an eviction of a launcher pod is decided (VMI marked, 429) and a bad VMIM refused, with no request of the webhook\'s refused', async () => {
    const pods = await admin.core.listNamespacedPod({ namespace: 'default', labelSelector: 'kubevirt.io=virt-launcher' });
    const pod = pods.items[0]!;
    const err = await admin.core.createNamespacedPodEviction({ name: pod.metadata!.name!, namespace: 'default', body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.metadata!.name! } } }).then(() => 'evicted', describeApiError);
    const vmiName = pod.metadata!.annotations!['kubevirt.io/domain']!;
    expect(err).toBe(`429: admission webhook "${WebhookNames.eviction}" denied the request: Eviction triggered evacuation of VMI "default/${vmiName}"`);
    const vmi = (await admin.getCustom(VMI_RESOURCE, 'default', vmiName)) as { status?: { evacuationNodeName?: string } };
    expect(vmi.status?.evacuationNodeName).toBe(pod.spec!.nodeName);

    const refused = await admin.createCustom(VMIM_RESOURCE, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'x' }, spec: { vmiName: 'nope' } }).then(() => 'created', describeApiError);
    expect(refused).toBe(`403: admission webhook "${WebhookNames.migration}" denied the request: VMI default/nope does not exist`);
    // The only 403 is the refusal of the admin's VMIM: none of the webhook's own reads and writes was refused.
    expect(requests.filter((r) => / (401|403) /.test(r))).toEqual([expect.stringMatching(/^POST \/apis\/kubevirt.io\/v1\/namespaces\/default\/virtualmachineinstancemigrations 403 /)]);
  });
});
