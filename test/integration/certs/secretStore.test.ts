import { X509Certificate } from 'node:crypto';
import { SelfManagedCerts, splitPemBundle, checkCertificate, type CertState } from '../../../src/certs/index.js';
import { startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import { KubeClient } from '../../../src/kube/client.js';
import { ManualClock } from '../../../src/util/clock.js';
import { KubeConfig } from '@kubernetes/client-node';

const DAY = 86_400_000;

describe('self-managed certificates in Secrets', () => {
  let cluster: DevCluster;
  let kube: KubeClient;
  beforeAll(async () => {
    cluster = await startDevCluster();
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeConfigYaml());
    kube = new KubeClient(kc);
    await kube.core.createNamespace({ body: { metadata: { name: 'ferry-system' } } });
  });
  afterAll(() => cluster.close());

  function certs(clock: ManualClock, published: string[], secretPrefix: string) {
    return new SelfManagedCerts({
      client: kube,
      clock,
      namespace: 'ferry-system',
      ca: { secretName: `${secretPrefix}-ca`, commonName: 'ferry-webhook-ca', validity: 100 * DAY },
      leaf: { secretName: `${secretPrefix}-tls`, commonName: 'ferry-webhook', dnsNames: ['ferry-webhook.ferry-system.svc'], usage: 'server', role: 'webhook', validity: 10 * DAY },
      publishCaBundle: async (b) => { published.push(b); },
    });
  }
  const serial = (pem: string) => new X509Certificate(pem).serialNumber;

  it('creates a CA and a serving certificate once, and a second replica reads the same ones', async () => {
    const clock = new ManualClock(Date.now());
    const published: string[] = [];
    const first = await certs(clock, published, 'a').reconcile();
    const second = await certs(clock, published, 'a').reconcile();
    expect(serial(second.leaf.certPem)).toBe(serial(first.leaf.certPem));
    expect(second.caBundle).toBe(first.caBundle);
    const secret = await kube.core.readNamespacedSecret({ namespace: 'ferry-system', name: 'a-tls' });
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Buffer.from(secret.data!['tls.crt']!, 'base64').toString()).toBe(first.leaf.certPem);
    expect(Buffer.from(secret.data!['ca.crt']!, 'base64').toString()).toBe(first.caBundle);
    expect(published).toEqual([first.caBundle, first.caBundle]);
  });

  it('renews the leaf at 20 % of its lifetime left, signed by the same CA', async () => {
    const clock = new ManualClock(Date.now());
    const published: string[] = [];
    const store = certs(clock, published, 'b');
    const first = await store.reconcile();
    clock.advance(7 * DAY);
    expect(serial((await store.reconcile()).leaf.certPem)).toBe(serial(first.leaf.certPem));
    clock.advance(1 * DAY + 1000);
    const renewed = await store.reconcile();
    expect(serial(renewed.leaf.certPem)).not.toBe(serial(first.leaf.certPem));
    expect(serial(renewed.ca.certPem)).toBe(serial(first.ca.certPem));
  });

  it('rotates the CA keeping the old one in the bundle, and publishes the bundle before the new leaf is stored', async () => {
    const clock = new ManualClock(Date.now());
    const published: string[] = [];
    const store = certs(clock, published, 'c');
    const first = await store.reconcile();
    let leafAtPublish: string | undefined;
    const watching = new SelfManagedCerts({
      client: kube, clock, namespace: 'ferry-system',
      ca: { secretName: 'c-ca', commonName: 'ferry-webhook-ca', validity: 100 * DAY },
      leaf: { secretName: 'c-tls', commonName: 'ferry-webhook', dnsNames: ['ferry-webhook.ferry-system.svc'], usage: 'server', role: 'webhook', validity: 10 * DAY },
      publishCaBundle: async () => {
        const s = await kube.core.readNamespacedSecret({ namespace: 'ferry-system', name: 'c-tls' });
        leafAtPublish = Buffer.from(s.data!['tls.crt']!, 'base64').toString();
      },
    });
    clock.advance(81 * DAY);
    const rotated: CertState = await watching.reconcile();
    expect(serial(rotated.ca.certPem)).not.toBe(serial(first.ca.certPem));
    expect(splitPemBundle(rotated.caBundle).map(serial)).toEqual([serial(rotated.ca.certPem), serial(first.ca.certPem)]);
    // When the bundle went out, the stored leaf was still the old one: nobody saw a leaf from an unknown CA.
    expect(leafAtPublish).toBe(first.leaf.certPem);
    expect(checkCertificate(rotated.leaf.certPem, { caPem: rotated.ca.certPem, now: clock.now() }).ok).toBe(true);
  });
});
