import { webhookConfiguration, webhookDnsNames, webhookService, WebhookNames, WEBHOOK_TLS_SECRET } from '../../src/webhook/registration.js';
import { schemaErrors } from './kubeSchemas.js';
import { find, render, type K8sObject } from './render.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const json = (v: unknown) => JSON.parse(JSON.stringify(v)) as Obj;
const container = (d: K8sObject): Obj => (d as Obj)['spec']['template']['spec']['containers'][0];
const argAfter = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

describe.each(['overlays/standalone', 'overlays/with-kubevirt'])('deploy/%s: the admission webhook', (dir) => {
  test('is registered exactly as `ferry dev` registers it (src/webhook/registration.ts)', () => {
    const rendered = json(find(render(dir), 'ValidatingWebhookConfiguration', 'ferry-admission'));
    // Beside KubeVirt, virt-api's own eviction interceptor does the eviction part.
    const expected = (json(webhookConfiguration())['webhooks'] as Obj[]).filter((w) => dir === 'overlays/standalone' || w['name'] !== WebhookNames.eviction);
    expect(rendered['webhooks']).toEqual(expected);
    const svc = json(find(render(dir), 'Service', 'ferry-webhook'));
    expect(svc['spec']).toEqual(json(webhookService())['spec']);
  });

  test('eviction fails closed (standalone; beside KubeVirt virt-api intercepts evictions); the KubeVirt CR check fails open', () => {
    const hooks = json(find(render(dir), 'ValidatingWebhookConfiguration', 'ferry-admission'))['webhooks'] as Obj[];
    const policy = (name: string) => hooks.find((w) => w['name'] === name)?.['failurePolicy'];
    expect(policy(WebhookNames.eviction)).toBe(dir === 'overlays/standalone' ? 'Fail' : undefined);
    expect(policy(WebhookNames.migration)).toBe('Fail');
    expect(policy(WebhookNames.kubevirt)).toBe('Ignore');
  });

  test('runs as two replicas on different nodes, a budget keeps one up, the Service reaches the HTTPS port', () => {
    const objects = render(dir);
    const d = find(objects, 'Deployment', 'ferry-webhook') as Obj;
    expect(d['spec']['replicas']).toBe(2);
    expect(d['spec']['template']['spec']['affinity']['podAntiAffinity']['requiredDuringSchedulingIgnoredDuringExecution'][0]['topologyKey']).toBe('kubernetes.io/hostname');
    const c = container(d as K8sObject);
    expect(c['args'][0]).toBe('webhook');
    const https = (c['ports'] as Obj[]).find((p) => p['name'] === 'https')!;
    expect(String(https['containerPort'])).toBe(argAfter(c['args'], '--port'));
    expect((find(objects, 'Service', 'ferry-webhook') as Obj)['spec']['ports'][0]['targetPort']).toBe('https');
    const pdb = find(objects, 'PodDisruptionBudget', 'ferry-webhook') as Obj;
    expect(pdb['spec']).toEqual({ minAvailable: 1, selector: { matchLabels: d['spec']['selector']['matchLabels'] } });
  });

  test('may write only its own certificate Secrets and the caBundle of its own configuration', () => {
    const objects = render(dir);
    const role = find(objects, 'Role', 'ferry-webhook-certificates') as Obj;
    expect(role['rules']).toContainEqual({ apiGroups: [''], resources: ['secrets'], resourceNames: ['ferry-webhook-ca', 'ferry-webhook-tls'], verbs: ['get', 'update'] });
    const cr = find(objects, 'ClusterRole', 'ferry-webhook') as Obj;
    expect(cr['rules']).toContainEqual({ apiGroups: ['admissionregistration.k8s.io'], resources: ['validatingwebhookconfigurations'], resourceNames: ['ferry-admission'], verbs: ['get', 'update'] });
  });
});

describe('deploy/overlays/cert-manager', () => {
  const objects = () => render('overlays/cert-manager');

  test('renders; everything but cert-manager\'s own kinds validates against the Kubernetes schemas', async () => {
    const errors: string[] = [];
    for (const o of objects().filter((x) => !x.apiVersion.startsWith('cert-manager.io/'))) {
      const e = await schemaErrors(o);
      if (e) errors.push(`${o.kind}/${o.metadata.name}: ${e}`);
    }
    expect(errors).toEqual([]);
  });

  test('the webhook serves the mounted cert-manager certificate, for the Service\'s names, and cainjector fills caBundle', () => {
    const c = container(find(objects(), 'Deployment', 'ferry-webhook'));
    const dir = argAfter(c['args'], '--cert-dir')!;
    const mount = (c['volumeMounts'] as Obj[]).find((m) => m['mountPath'] === dir)!;
    const volume = ((find(objects(), 'Deployment', 'ferry-webhook') as Obj)['spec']['template']['spec']['volumes'] as Obj[]).find((v) => v['name'] === mount['name'])!;
    expect(volume['secret']['secretName']).toBe(WEBHOOK_TLS_SECRET);
    const cert = find(objects(), 'Certificate', 'ferry-webhook-tls') as Obj;
    expect(cert['spec']['secretName']).toBe(WEBHOOK_TLS_SECRET);
    expect(cert['spec']['dnsNames']).toEqual(webhookDnsNames());
    const hooks = find(objects(), 'ValidatingWebhookConfiguration', 'ferry-admission');
    expect(hooks.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe('ferry-system/ferry-webhook-tls');
  });
});
