/**
 * The handlers' migration certificates in Secrets, issued and rotated by the
 * controller (`--migration-certs self-managed`), against the dev cluster's
 * API server; then used as handlers use them: a stream through the mutual-TLS
 * proxy, with identities read from the Secrets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { roleOf, splitPemBundle, TlsMaterial, type TlsFiles } from '../../../src/certs/index.js';
import { startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import { KubeClient } from '../../../src/kube/client.js';
import { HANDLER_SERVER_SECRET, MIGRATION_CA_SECRET, MIGRATION_CLIENT_SECRET, reconcileMigrationCerts } from '../../../src/proxy/migrationCertSecrets.js';
import { SourceProxy, TargetProxy } from '../../../src/proxy/migrationProxy.js';
import { tlsTransport } from '../../../src/proxy/migrationTls.js';
import { ManualClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';

const DAY = 86_400_000;
const NS = 'ferry-system';

let cluster: DevCluster;
let kube: KubeClient;
let dir: string;

beforeAll(async () => {
  cluster = await startDevCluster();
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeConfigYaml());
  kube = new KubeClient(kc);
  await kube.core.createNamespace({ body: { metadata: { name: NS } } });
});
afterAll(() => cluster.close());
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ferry-mcerts-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A Secret as a handler's mounted directory holds it: tls.crt, tls.key, ca.crt. */
async function mounted(name: string, namespace = NS): Promise<TlsFiles> {
  const s = await kube.core.readNamespacedSecret({ namespace, name });
  const f = (k: string) => Buffer.from(s.data?.[k] ?? '', 'base64').toString('utf8');
  expect(s.type).toBe('kubernetes.io/tls');
  return { certPem: f('tls.crt'), keyPem: f('tls.key'), caPem: f('ca.crt') };
}

/** 1 MiB from a source-side unix socket through both proxies into a sink; resolves with what arrived. */
async function carry(server: TlsFiles, client: TlsFiles, targetServer = server): Promise<number> {
  let received = 0;
  const sinkPath = join(dir, `sink-${Math.random().toString(36).slice(2)}.sock`);
  const sink = net.createServer((s) => s.on('data', (d: Buffer) => { received += d.length; }));
  await new Promise<void>((r) => sink.listen(sinkPath, () => r()));
  const target = await TargetProxy.start({ migrationUid: 'm1', transport: tlsTransport(new TlsMaterial(targetServer), new TlsMaterial(client)), host: '127.0.0.1', deliverTo: { 49152: sinkPath }, log: silentLogger });
  const source = await SourceProxy.start({ migrationUid: 'm1', transport: tlsTransport(new TlsMaterial(server), new TlsMaterial(client)), kubevirtDir: join(dir, 'kv'), targetHost: '127.0.0.1', targetPorts: target.ports, log: silentLogger });
  try {
    const c = net.connect({ path: join(dir, 'kv', 'migrationproxy', 'm1-49152-source.sock') });
    c.on('error', () => undefined);
    c.end(Buffer.alloc(1024 * 1024, 3));
    const deadline = Date.now() + 10_000;
    while (received < 1024 * 1024 && Date.now() < deadline && !c.destroyed) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 50));
    return received;
  } finally {
    await source.close({ cut: true });
    await target.close({ cut: true });
    sink.close();
  }
}

test('the controller issues the CA, the handlers\' server identity and the migration client identity into Secrets that carry a migration', async () => {
  const clock = new ManualClock(Date.now());
  const first = await reconcileMigrationCerts({ kube, clock, log: silentLogger, namespace: NS });
  const again = await reconcileMigrationCerts({ kube, clock, log: silentLogger, namespace: NS });
  // Idempotent: a second pass (or a second replica) changes nothing.
  expect(again.server.leaf.certPem).toBe(first.server.leaf.certPem);
  expect(again.client.leaf.certPem).toBe(first.client.leaf.certPem);

  const ca = await kube.core.readNamespacedSecret({ namespace: NS, name: MIGRATION_CA_SECRET });
  expect(ca.data?.['tls.key']).toBeDefined();
  const server = await mounted(HANDLER_SERVER_SECRET);
  const client = await mounted(MIGRATION_CLIENT_SECRET);
  expect(roleOf(server.certPem)).toBe('handler');
  expect(roleOf(client.certPem)).toBe('migration');
  // Neither Secret a handler mounts holds the CA's key.
  expect(server.keyPem).not.toContain(Buffer.from(ca.data!['tls.key']!, 'base64').toString('utf8').trim());

  expect(await carry(server, client)).toBe(1024 * 1024);
});

test('a CA rotation goes in two steps (bundle first, new leaves after the propagation time): handlers on either side of each step keep talking', async () => {
  // TLS checks validity against the real time, so the story is told in the past and ends now:
  // a 10-day CA (due at 8 days), 3-day leaves (due at 2.4 days).
  const ns = 'ferry-rotation';
  await kube.core.createNamespace({ body: { metadata: { name: ns } } });
  const clock = new ManualClock(Date.now() - 8.5 * DAY);
  const opts = { kube, clock, log: silentLogger, namespace: ns, caValidityMs: 10 * DAY, certValidityMs: 3 * DAY };
  await reconcileMigrationCerts(opts);
  clock.advance(6.2 * DAY); // leaves renewed from the same CA
  await reconcileMigrationCerts(opts);
  const oldServer = await mounted(HANDLER_SERVER_SECRET, ns);
  const oldClient = await mounted(MIGRATION_CLIENT_SECRET, ns);
  expect(splitPemBundle(oldServer.caPem)).toHaveLength(1);
  clock.advance(2.25 * DAY); // the CA is due; the leaves are not
  // Step one of the rotation: the new bundle beside the old leaves.
  await reconcileMigrationCerts(opts);
  const bundled = await mounted(HANDLER_SERVER_SECRET, ns);
  const bundledClient = await mounted(MIGRATION_CLIENT_SECRET, ns);
  expect(bundled.certPem).toBe(oldServer.certPem);
  expect(bundledClient.certPem).toBe(oldClient.certPem);
  expect(splitPemBundle(bundled.caPem)).toHaveLength(2);
  // A handler that re-read its Secret and one that has not yet still talk, both ways.
  expect(await carry(oldServer, oldClient, bundled)).toBe(1024 * 1024);
  expect(await carry(bundled, bundledClient, oldServer)).toBe(1024 * 1024);

  // Step two, once the bundle has reached every handler: leaves from the new CA.
  clock.advance(11 * 60_000);
  await reconcileMigrationCerts(opts);
  const newServer = await mounted(HANDLER_SERVER_SECRET, ns);
  const newClient = await mounted(MIGRATION_CLIENT_SECRET, ns);
  expect(newServer.certPem).not.toBe(oldServer.certPem);
  expect(newClient.certPem).not.toBe(oldClient.certPem);
  // A handler still on the old leaves (with the new bundle) and one on the new leaves talk, both ways.
  expect(await carry(bundled, bundledClient, newServer)).toBe(1024 * 1024);
  expect(await carry(newServer, newClient, bundled)).toBe(1024 * 1024);
  // Without step one it would not: a peer holding only the old CA refuses a leaf from the new one.
  expect(await carry(oldServer, oldClient, newServer)).toBe(0);
});
