import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import type { NatsConnection } from 'nats';
import { closeBus, connectBus } from '../../src/bus/connection.js';
import { defaultFerryConfig } from '../../src/config/ferryConfig.js';
import { MigrationController } from '../../src/controller/controller.js';
import { seedDemo, startDevCluster, type DevCluster } from '../../src/devcluster/index.js';
import { startHandler, type RunningHandler } from '../../src/handler/handler.js';
import { SimDriver } from '../../src/hypervisor/sim.js';
import { describeApiError, KubeClient, statusCode, VMIM_RESOURCE } from '../../src/kube/client.js';
import { LeaderElector } from '../../src/kube/leaderElection.js';
import { silentLogger } from '../../src/util/log.js';
import { createVmim, getVmi, waitForPhase } from '../support/cluster.js';
import { render, type K8sObject } from './render.js';

/**
 * The RBAC rules in deploy/ are exactly what the controller needs: the real
 * controller, authenticated as the ferry-controller ServiceAccount of an
 * RBAC-enforcing dev cluster loaded with the rendered manifests, carries a
 * migration to the end; requests outside the rules are refused.
 */
const RBAC_KINDS = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
const NODES = ['node-1', 'node-2', 'node-3'];

function kubeFor(yaml: string): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromString(yaml);
  return new KubeClient(kc);
}

async function refusal(call: () => Promise<unknown>): Promise<{ code: number | undefined; message: string }> {
  try {
    await call();
  } catch (err) {
    return { code: statusCode(err), message: describeApiError(err) };
  }
  throw new Error('the request was allowed');
}

describe('the deploy/ RBAC rules on an RBAC-enforcing cluster', () => {
  let cluster: DevCluster;
  let admin: KubeClient;
  let controllerKube: KubeClient;
  let handlerKube: KubeClient;
  const requests: string[] = [];
  const buses: NatsConnection[] = [];
  const handlers: Array<{ handler: RunningHandler; driver: SimDriver }> = [];
  let controller: MigrationController | undefined;

  beforeAll(async () => {
    cluster = await startDevCluster({ rbac: true, podStartDelayMs: 50, schedulerIntervalMs: 100, log: (line) => requests.push(line) });
    const rbac = render('overlays/standalone').filter((o) => RBAC_KINDS.has(o.kind));
    for (const o of [...rbac].sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'))) {
      const type = cluster.store.registry.byKind(o.apiVersion, o.kind);
      if (!type) throw new Error(`the dev cluster does not serve ${o.apiVersion} ${o.kind}`);
      cluster.store.create(type, o as K8sObject & { metadata: Record<string, unknown> });
    }
    await seedDemo(cluster, { nodes: NODES.length, vms: 2 });
    admin = kubeFor(cluster.kubeConfigYaml());
    controllerKube = kubeFor(cluster.auth!.serviceAccountKubeconfig('ferry-system', 'ferry-controller'));
    handlerKube = kubeFor(cluster.auth!.serviceAccountKubeconfig('ferry-system', 'ferry-handler'));
    for (const node of NODES) {
      const nc = await connectBus({ servers: process.env['NATS_URL']!, name: `rbac-test-handler-${node}`, log: silentLogger });
      buses.push(nc);
      const driver = new SimDriver({ node, timeScale: 20 });
      handlers.push({ driver, handler: startHandler({ nc, node, driver, log: silentLogger, progressIntervalMs: 100 }) });
    }
  });

  afterAll(async () => {
    await controller?.stop();
    for (const { handler, driver } of handlers) {
      await handler.stop();
      await driver.close();
    }
    for (const nc of buses) await closeBus(nc);
    await cluster?.close();
  });

  test('the controller, as its ServiceAccount, migrates a VMI to Succeeded without a single refused request', async () => {
    const nc = await connectBus({ servers: process.env['NATS_URL']!, name: 'rbac-test-controller', log: silentLogger });
    buses.push(nc);
    controller = new MigrationController({ kube: controllerKube, nc, log: silentLogger, config: defaultFerryConfig, progressWriteIntervalMs: 100 });
    await controller.start();
    expect(controller.ready()).toBe(true);

    const before = await getVmi(admin, 'vm-1');
    const name = await createVmim(admin, 'vm-1');
    const done = await waitForPhase(admin, name, ['Succeeded', 'Failed']);
    expect(done.status?.phase).toBe('Succeeded');
    const after = await getVmi(admin, 'vm-1');
    expect(after.status?.nodeName).not.toBe(before.status?.nodeName);

    // Events are best effort in the controller, so a refusal would not fail the migration: check they landed.
    const events = await admin.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${name}` });
    expect(events.items.map((e) => e.reason)).toContain('Migrated');
    expect(requests.filter((r) => / 40[13] /.test(r))).toEqual([]);
  });

  test('the controller ServiceAccount holds the leader Lease in ferry-system and no other', async () => {
    const api = controllerKube.kc.makeApiClient(CoordinationV1Api);
    const elector = new LeaderElector({ api, namespace: 'ferry-system', name: 'ferry-controller', identity: 'rbac-test', retryPeriodMs: 50, renewDeadlineMs: 500, leaseDurationMs: 1000 });
    elector.start();
    try {
      const deadline = Date.now() + 5000;
      while (!elector.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(elector.isLeader()).toBe(true);
    } finally {
      await elector.stop();
    }
    const other = await refusal(() => api.readNamespacedLease({ namespace: 'ferry-system', name: 'someone-else' }));
    expect(other).toEqual({
      code: 403,
      message:
        '403: leases.coordination.k8s.io "someone-else" is forbidden: User "system:serviceaccount:ferry-system:ferry-controller" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "ferry-system"',
    });
  });

  test('the controller may not delete nodes, evict pods or touch Secrets', async () => {
    expect(await refusal(() => controllerKube.core.deleteNode({ name: 'node-1' }))).toEqual({
      code: 403,
      message: '403: nodes "node-1" is forbidden: User "system:serviceaccount:ferry-system:ferry-controller" cannot delete resource "nodes" in API group "" at the cluster scope',
    });
    const [pod] = (await admin.core.listNamespacedPod({ namespace: 'default' })).items;
    const eviction = await refusal(() =>
      controllerKube.core.createNamespacedPodEviction({ namespace: 'default', name: pod!.metadata!.name!, body: { metadata: { name: pod!.metadata!.name!, namespace: 'default' } } }),
    );
    expect(eviction.code).toBe(403);
    expect(eviction.message).toContain('cannot create resource "pods/eviction" in API group "" in the namespace "default"');
    expect((await refusal(() => controllerKube.core.listSecretForAllNamespaces())).code).toBe(403);
    // Still there: the refusals changed nothing.
    expect((await admin.core.readNode({ name: 'node-1' })).metadata?.name).toBe('node-1');
  });

  test('the handler ServiceAccount may not list pods, nor read the migrations', async () => {
    expect(await refusal(() => handlerKube.core.listPodForAllNamespaces())).toEqual({
      code: 403,
      message: '403: pods is forbidden: User "system:serviceaccount:ferry-system:ferry-handler" cannot list resource "pods" in API group "" at the cluster scope',
    });
    expect((await refusal(() => handlerKube.listCustom(VMIM_RESOURCE, 'default'))).message).toContain(
      'cannot list resource "virtualmachineinstancemigrations" in API group "kubevirt.io" in the namespace "default"',
    );
  });

  test('discovery is open to every authenticated user, closed to anonymous ones; unknown tokens get 401', async () => {
    const get = (path: string, token?: string) => fetch(`${cluster.url}${path}`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
    const handlerToken = cluster.auth!.serviceAccountToken('ferry-system', 'ferry-handler');
    expect((await get('/apis/kubevirt.io/v1', handlerToken)).status).toBe(200);
    expect((await get('/version')).status).toBe(200);
    const anonymous = await get('/apis');
    expect(anonymous.status).toBe(403);
    expect(await anonymous.json()).toMatchObject({ kind: 'Status', reason: 'Forbidden', message: 'forbidden: User "system:anonymous" cannot get path "/apis"' });
    expect((await get('/api/v1/pods', 'not-a-token')).status).toBe(401);
  });

  test('a ServiceAccount token stops working when the ServiceAccount is deleted', async () => {
    cluster.store.create('serviceaccounts', { metadata: { name: 'short-lived', namespace: 'ferry-system' } });
    const token = cluster.auth!.serviceAccountToken('ferry-system', 'short-lived');
    const get = () => fetch(`${cluster.url}/apis`, { headers: { Authorization: `Bearer ${token}` } });
    expect((await get()).status).toBe(200);
    cluster.store.delete('serviceaccounts', 'short-lived', { namespace: 'ferry-system' });
    expect((await get()).status).toBe(401);
  });
});
