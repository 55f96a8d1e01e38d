import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { AdmissionregistrationV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { createCa, issue, type KeyPairPem } from '../../../src/certs/index.js';
import type { DevCluster } from '../../../src/devcluster/index.js';
import { systemClock } from '../../../src/util/clock.js';
import { apiFailure, clientsFor, eventually, podBody, readyNode, startFastCluster } from './support.js';

/**
 * The embedded API server calling admission webhooks as kube-apiserver does,
 * against a real HTTPS webhook (certificates from src/certs).
 */

type Review = { request: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
type Answer = { allowed: boolean; status?: { code?: number; message?: string }; patch?: unknown[] } | 'hang';

interface TestWebhook {
  port: number;
  seen: Review['request'][];
  answer: (req: Review['request'], path: string) => Answer;
  close(): Promise<void>;
}

const HOUR = 3_600_000;
let ca: KeyPairPem;
let serving: KeyPairPem;

beforeAll(async () => {
  ca = await createCa({ commonName: 'test-webhook-ca', validity: HOUR, clock: systemClock });
  serving = await issue(ca, { commonName: 'hook', dnsNames: ['hook.hooks.svc'], usage: 'server', validity: HOUR, clock: systemClock });
});

async function startTestWebhook(): Promise<TestWebhook> {
  const hook: TestWebhook = { port: 0, seen: [], answer: () => ({ allowed: true }), close: async () => undefined };
  const server = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += String(c)));
    req.on('end', () => {
      const review = JSON.parse(body) as Review;
      hook.seen.push(review.request);
      const a = hook.answer(review.request, req.url ?? '');
      if (a === 'hang') return;
      const { patch, ...rest } = a;
      const response = { uid: review.request['uid'], ...rest, ...(patch ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}) };
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  hook.port = (server.address() as AddressInfo).port;
  hook.close = async () => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeAllConnections();
    await closed;
  };
  return hook;
}

let cluster: DevCluster;
let c: ReturnType<typeof clientsFor>;
let admission: AdmissionregistrationV1Api;
let hook: TestWebhook;

beforeEach(async () => {
  cluster = await startFastCluster();
  c = clientsFor(cluster);
  admission = c.kc.makeApiClient(AdmissionregistrationV1Api);
  await c.core.createNode({ body: readyNode('node-1') });
  await c.core.createNamespace({ body: { metadata: { name: 'hooks' } } });
  await c.core.createNamespacedService({ namespace: 'hooks', body: { metadata: { name: 'hook' }, spec: { ports: [{ port: 443 }] } } });
  hook = await startTestWebhook();
  cluster.routeService('hooks', 'hook', 443, { host: '127.0.0.1', port: hook.port });
});
afterEach(async () => {
  await hook.close();
  await cluster.close();
});

function webhook(over: Record<string, unknown> = {}) {
  return {
    name: 'check.test.dev',
    clientConfig: { service: { namespace: 'hooks', name: 'hook', path: '/check', port: 443 }, caBundle: Buffer.from(ca.certPem).toString('base64') },
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
    failurePolicy: 'Fail',
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    timeoutSeconds: 5,
    ...over,
  };
}
const validating = (...webhooks: object[]) => admission.createValidatingWebhookConfiguration({ body: { metadata: { name: 'test' }, webhooks: webhooks as never } });
const createPod = (name: string, ns = 'default', labels: Record<string, string> = {}, dryRun?: string) =>
  c.core.createNamespacedPod({ namespace: ns, body: podBody(name, { labels }), ...(dryRun ? { dryRun } : {}) });
const evict = (name: string) => c.core.createNamespacedPodEviction({ name, namespace: 'default', body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: 'default' } } });

describe('validating admission webhooks', () => {
  test('an eviction is sent as an AdmissionReview for pods/eviction, and a denial reaches the client in the API server\'s words', async () => {
    await createPod('virt-launcher-vm-1-abcde');
    await eventually(async () => (await c.core.readNamespacedPod({ name: 'virt-launcher-vm-1-abcde', namespace: 'default' })).status?.phase === 'Running', 'pod to run');
    await validating(webhook({ rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['*'], resources: ['pods/eviction'] }] }));
    hook.answer = () => ({ allowed: false, status: { code: 429, message: 'Eviction triggered evacuation of VMI "default/vm-1"' } });

    const err = await apiFailure(evict('virt-launcher-vm-1-abcde'));
    expect(err).toMatchObject({ httpCode: 429, reason: 'TooManyRequests', message: 'admission webhook "check.test.dev" denied the request: Eviction triggered evacuation of VMI "default/vm-1"' });
    expect(hook.seen).toHaveLength(1);
    expect(hook.seen[0]).toMatchObject({
      kind: { group: 'policy', version: 'v1', kind: 'Eviction' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      subResource: 'eviction',
      name: 'virt-launcher-vm-1-abcde',
      namespace: 'default',
      operation: 'CREATE',
      object: { kind: 'Eviction', metadata: { name: 'virt-launcher-vm-1-abcde' } },
      userInfo: { username: 'ferry-dev-admin' },
    });
    expect((await c.core.readNamespacedPod({ name: 'virt-launcher-vm-1-abcde', namespace: 'default' })).metadata?.deletionTimestamp).toBeUndefined();

    hook.answer = () => ({ allowed: true });
    await evict('virt-launcher-vm-1-abcde');
    expect((await c.core.readNamespacedPod({ name: 'virt-launcher-vm-1-abcde', namespace: 'default' })).metadata?.deletionTimestamp).toBeInstanceOf(Date);
  });

  test('rules tell the resource from its subresources', async () => {
    await validating(webhook({ rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['*'], resources: ['pods'] }] }));
    await createPod('virt-launcher-a');
    expect(hook.seen.map((r) => `${r['operation']} ${r['resource'].resource}${r['subResource'] ? '/' + r['subResource'] : ''}`)).toEqual(['CREATE pods']);
    await c.core.patchNamespacedPodStatus({ name: 'virt-launcher-a', namespace: 'default', body: { status: { reason: 'x' } } }, mergePatch);
    await evict('virt-launcher-a');
    expect(hook.seen).toHaveLength(1);
  });

  test('namespaceSelector and objectSelector choose which requests are sent', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'prod', labels: { env: 'prod' } } } });
    await validating(webhook({ namespaceSelector: { matchLabels: { env: 'prod' } }, objectSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['vm'] }] } }));
    await createPod('a', 'default', { app: 'vm' });
    await createPod('b', 'prod', { app: 'web' });
    await createPod('c', 'prod', { app: 'vm' });
    expect(hook.seen.map((r) => `${r['namespace']}/${r['name']}`)).toEqual(['prod/c']);
  });

  test('matchConditions in CEL: only what they select is sent; an expression error follows the failure policy', async () => {
    await validating(webhook({ matchConditions: [{ name: 'only-launchers', expression: 'object.metadata.name.startsWith("virt-launcher")' }] }));
    await createPod('web-1');
    await createPod('virt-launcher-vm-2-xyz');
    expect(hook.seen.map((r) => r['name'])).toEqual(['virt-launcher-vm-2-xyz']);

    await admission.deleteValidatingWebhookConfiguration({ name: 'test' });
    await validating(webhook({ matchConditions: [{ name: 'broken', expression: 'object.spec.nothing.here == 1' }] }));
    const err = await apiFailure(createPod('p2'));
    expect(err.httpCode).toBe(500);
    expect(err.message).toMatch(/^Internal error occurred: failed calling webhook "check.test.dev": failed to evaluate match conditions: matchCondition "broken" evaluation error: /);
  });

  test('a webhook that cannot be reached: Fail refuses with "failed calling webhook", Ignore lets the request through', async () => {
    await hook.close();
    await validating(webhook());
    const err = await apiFailure(createPod('p1'));
    expect(err).toMatchObject({
      httpCode: 500,
      reason: 'InternalError',
      message: `Internal error occurred: failed calling webhook "check.test.dev": failed to call webhook: Post "https://hook.hooks.svc:443/check?timeout=5s": dial tcp 127.0.0.1:${hook.port}: connect: connection refused`,
    });
    await apiFailure(c.core.readNamespacedPod({ name: 'p1', namespace: 'default' }));

    await admission.patchValidatingWebhookConfiguration({ name: 'test', body: [{ op: 'replace', path: '/webhooks/0/failurePolicy', value: 'Ignore' }] }, jsonPatch());
    await createPod('p2');
    expect((await c.core.readNamespacedPod({ name: 'p2', namespace: 'default' })).metadata?.name).toBe('p2');
  });

  test('no endpoint, a wrong CA, a timeout: each refused with its own reason', async () => {
    await c.core.createNamespacedService({ namespace: 'hooks', body: { metadata: { name: 'nobody' }, spec: { ports: [{ port: 443 }] } } });
    await validating(webhook({ clientConfig: { service: { namespace: 'hooks', name: 'nobody', path: '/check' }, caBundle: Buffer.from(ca.certPem).toString('base64') } }));
    expect((await apiFailure(createPod('a'))).message).toContain('failed to call webhook: Post "https://nobody.hooks.svc:443/check?timeout=5s": no endpoints available for service "nobody"');
    await admission.deleteValidatingWebhookConfiguration({ name: 'test' });

    const other = await createCa({ commonName: 'other', validity: HOUR, clock: systemClock });
    await validating(webhook({ clientConfig: { service: { namespace: 'hooks', name: 'hook', path: '/check' }, caBundle: Buffer.from(other.certPem).toString('base64') } }));
    expect((await apiFailure(createPod('b'))).message).toContain('tls: failed to verify certificate: x509: certificate signed by unknown authority');
    await admission.deleteValidatingWebhookConfiguration({ name: 'test' });

    hook.answer = () => 'hang';
    await validating(webhook({ timeoutSeconds: 1 }));
    const started = Date.now();
    expect((await apiFailure(createPod('c'))).message).toBe('Internal error occurred: failed calling webhook "check.test.dev": failed to call webhook: Post "https://hook.hooks.svc:443/check?timeout=1s": context deadline exceeded');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test('dry run: a webhook with side effects refuses it; a NoneOnDryRun webhook is told, and nothing is stored', async () => {
    await validating(webhook({ sideEffects: 'Some' }));
    expect(await apiFailure(createPod('a', 'default', {}, 'All'))).toMatchObject({ httpCode: 400, message: 'admission webhook "check.test.dev" does not support dry run' });
    await admission.deleteValidatingWebhookConfiguration({ name: 'test' });

    await validating(webhook({ sideEffects: 'NoneOnDryRun' }));
    const answered = await createPod('b', 'default', {}, 'All');
    expect(answered.metadata?.name).toBe('b');
    expect(hook.seen.at(-1)).toMatchObject({ name: 'b', dryRun: true });
    expect((await apiFailure(c.core.readNamespacedPod({ name: 'b', namespace: 'default' }))).httpCode).toBe(404);
  });

  test('updates are sent with the object after the patch and the object before it', async () => {
    await createPod('p', 'default', { v: '1' });
    await validating(webhook({ rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods'] }] }));
    hook.answer = (r) => (r['object'].metadata.labels.v === 'bad' ? { allowed: false, status: { message: 'v may not be bad' } } : { allowed: true });
    await c.core.patchNamespacedPod({ name: 'p', namespace: 'default', body: { metadata: { labels: { v: '2' } } } }, mergePatch);
    expect(hook.seen[0]).toMatchObject({ operation: 'UPDATE', object: { metadata: { labels: { v: '2' } } }, oldObject: { metadata: { labels: { v: '1' } } } });
    const err = await apiFailure(c.core.patchNamespacedPod({ name: 'p', namespace: 'default', body: { metadata: { labels: { v: 'bad' } } } }, mergePatch));
    expect(err).toMatchObject({ httpCode: 403, reason: 'Forbidden', message: 'admission webhook "check.test.dev" denied the request: v may not be bad' });
    expect((await c.core.readNamespacedPod({ name: 'p', namespace: 'default' })).metadata?.labels).toEqual({ v: '2' });
  });

  test('a generated name is chosen before validating webhooks see the object', async () => {
    await validating(webhook());
    const created = await c.core.createNamespacedPod({ namespace: 'default', body: { metadata: { generateName: 'gen-' }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
    expect(hook.seen[0]!['name']).toBe(created.metadata?.name);
    expect(hook.seen[0]!['object'].metadata.name).toBe(created.metadata?.name);
  });
});

describe('mutating admission webhooks', () => {
  test('a JSONPatch from a mutating webhook is applied before validating webhooks run and is what is stored', async () => {
    await admission.createMutatingWebhookConfiguration({ body: { metadata: { name: 'mutate' }, webhooks: [{ ...webhook({ name: 'label.test.dev', clientConfig: { service: { namespace: 'hooks', name: 'hook', path: '/mutate' }, caBundle: Buffer.from(ca.certPem).toString('base64') } }) }] as never } });
    await validating(webhook());
    hook.answer = (_r, path) => (path.startsWith('/mutate') ? { allowed: true, patch: [{ op: 'add', path: '/metadata/labels/injected', value: 'yes' }] } : { allowed: true });
    await createPod('m', 'default', { app: 'x' });
    expect(hook.seen.map((r) => r['object'].metadata.labels)).toEqual([{ app: 'x' }, { app: 'x', injected: 'yes' }]);
    expect((await c.core.readNamespacedPod({ name: 'm', namespace: 'default' })).metadata?.labels).toEqual({ app: 'x', injected: 'yes' });
  });
});

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const jsonPatch = () => setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
