/**
 * The handlers' migration proxy over real sockets: a unix socket standing for
 * the source launcher's, the source proxy, TCP with mutual TLS, the target
 * proxy and a unix socket standing for the target launcher's (an echo server
 * that also records everything it received).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issue, TlsMaterial } from '../../../src/certs/index.js';
import { SourceProxy, TargetProxy } from '../../../src/proxy/migrationProxy.js';
import { devMigrationPki, MIGRATION_CLIENT_ROLE, tlsTransport, type MigrationPki } from '../../../src/proxy/migrationTls.js';
import type { Transport } from '../../../src/proxy/transport.js';
import { ProxyHost } from '../../../src/proxy/workerProxy.js';
import { systemClock } from '../../../src/util/clock.js';
import { createLogger } from '../../../src/util/log.js';
import { waitFor } from '../../support/wait.js';

const UID = '0f1e2d3c-aaaa-bbbb-cccc-000000000001';
let dir: string;
let pki: MigrationPki;
const lines: Array<Record<string, unknown>> = [];
const log = createLogger({ name: 'proxy-test', level: 'debug', destination: { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>); return true; } } as unknown as NodeJS.WritableStream });
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  pki = await devMigrationPki(systemClock);
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-proxy-'));
  lines.length = 0;
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** The target launcher's socket: echoes every byte back and counts what it got. */
async function launcherSocket(name: string): Promise<{ path: string; received: () => number; connections: () => number }> {
  const path = join(dir, name);
  let received = 0;
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.on('data', (d: Buffer) => { received += d.length; s.write(d); });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { path, received: () => received, connections: () => connections };
}

/**
 * A launcher socket on the far side of a one-way stream: `sink` counts what
 * arrives until its peer ends (the destination QEMU reading the memory
 * stream); `talker` writes `bytes` to whoever connects and ends (libvirt
 * answering, then hanging up).
 */
async function oneWaySocket(name: string, mode: { sink: true } | { talker: number }): Promise<{ path: string; received: () => number; ended: () => boolean }> {
  const path = join(dir, name);
  let received = 0;
  let ended = false;
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    if ('talker' in mode) {
      s.resume();
      s.end(Buffer.alloc(mode.talker, 6));
      return;
    }
    s.on('data', (d: Buffer) => { received += d.length; });
    s.once('end', () => { ended = true; });
  });
  await new Promise<void>((r) => server.listen(path, () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { path, received: () => received, ended: () => ended };
}

/** Where the proxy sides run: in this thread, or in two handlers' proxy worker threads (as the launcher driver runs them). */
let hosts: { source: ProxyHost; target: ProxyHost } | undefined;

async function proxies(sourceTransport: Transport, targetTransport: Transport, deliver: Record<number, string>) {
  const target = await (hosts ? hosts.target.startTarget.bind(hosts.target) : TargetProxy.start)({ migrationUid: UID, transport: targetTransport, host: '127.0.0.1', deliverTo: deliver, log });
  cleanups.push(() => target.close({ cut: true }));
  const source = await (hosts ? hosts.source.startSource.bind(hosts.source) : SourceProxy.start)({ migrationUid: UID, transport: sourceTransport, kubevirtDir: join(dir, 'kubevirt'), targetHost: '127.0.0.1', targetPorts: target.ports, log });
  cleanups.push(() => source.close({ cut: true }));
  return { target, source };
}

/** Writes `payload` into the source-side socket and collects what comes back until `expect` bytes arrived or the peer closed. */
async function roundTrip(path: string, payload: Buffer, expect = payload.length): Promise<{ back: Buffer; closed: boolean }> {
  const c = net.connect({ path });
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    c.once('error', reject);
    c.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= expect) { c.destroy(); resolve({ back: Buffer.concat(chunks), closed: false }); }
    });
    c.once('close', () => resolve({ back: Buffer.concat(chunks), closed: true }));
    c.write(payload);
  });
}

const sourceSocket = (port: number) => join(dir, 'kubevirt', 'migrationproxy', port === 0 ? `${UID}-source.sock` : `${UID}-${port}-source.sock`);

describe.each([
  ['in the handler\'s thread', false],
  ['each side in its own worker thread', true],
])('migration proxy %s', (_where, worker) => {
  beforeAll(() => {
    if (worker) hosts = { source: new ProxyHost(log), target: new ProxyHost(log) };
  });
  afterAll(async () => {
    await hosts?.source.shutDown();
    await hosts?.target.shutDown();
    hosts = undefined;
  });

  test('KubeVirt\'s socket names; both streams reach their own target socket over mutual TLS, byte for byte, both ways', async () => {
    const libvirt = await launcherSocket('libvirt-sock');
    const memory = await launcherSocket('memory.sock');
    const transport = tlsTransport(pki.server, pki.client);
    const { target, source } = await proxies(transport, transport, { 0: libvirt.path, 49152: memory.path });
    expect(Object.values(target.ports).sort()).toEqual([0, 49152]);

    const rpc = Buffer.from('libvirt RPC hello');
    const ram = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < ram.length; i += 4096) ram.writeUInt32LE(i, i);
    const [a, b] = await Promise.all([roundTrip(sourceSocket(0), rpc), roundTrip(sourceSocket(49152), ram)]);
    expect(a.back.equals(rpc)).toBe(true);
    expect(b.back.equals(ram)).toBe(true);
    expect(libvirt.received()).toBe(rpc.length);
    expect(memory.received()).toBe(ram.length);
    // Counters are live (a worker publishes them every 200 ms): wait for both directions.
    await waitFor('counters to include the closed connections', async () => (source.counters.bytesForward === rpc.length + ram.length && source.counters.bytesBack === rpc.length + ram.length) || undefined);
    expect(source.counters).toMatchObject({ connections: 2, bytesBack: rpc.length + ram.length, refused: 0 });
  });

  /** The target launcher's libvirt socket: echoes, and counts connections accepted and still open. */
  async function countingSocket(name: string) {
    const path = join(dir, name);
    const seen = { accepted: 0, open: 0, received: 0 };
    const server = net.createServer((s) => {
      seen.accepted++;
      seen.open++;
      s.on('data', (d: Buffer) => { seen.received += d.length; s.write(d); });
      s.on('error', () => undefined);
      s.once('close', () => seen.open--);
    });
    await new Promise<void>((r) => server.listen(path, () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    return { path, seen };
  }

  test('libvirt\'s connection is dialled and verified when the source proxy starts: the first connection finds it and carries its bytes on it', async () => {
    const libvirt = await countingSocket('libvirt-sock');
    const transport = tlsTransport(pki.server, pki.client);
    const { source } = await proxies(transport, transport, { 0: libvirt.path });
    // Before anything connects on the source side, the target launcher already has it.
    await waitFor('the spare connection to reach the target launcher', async () => libvirt.seen.accepted === 1 || undefined);
    const rpc = Buffer.from('libvirt RPC hello');
    expect((await roundTrip(sourceSocket(0), rpc)).back.equals(rpc)).toBe(true);
    expect(libvirt.seen).toMatchObject({ accepted: 1, received: rpc.length });
    // A second connection dials on its own.
    expect((await roundTrip(sourceSocket(0), rpc)).back.equals(rpc)).toBe(true);
    expect(libvirt.seen.accepted).toBe(2);
    await waitFor('the source counters', async () => source.counters.connections === 2 || undefined);
  });

  test('an unused spare connection goes with the source proxy: the target launcher sees it close', async () => {
    const libvirt = await countingSocket('libvirt-sock');
    const transport = tlsTransport(pki.server, pki.client);
    const { source } = await proxies(transport, transport, { 0: libvirt.path });
    await waitFor('the spare connection to reach the target launcher', async () => libvirt.seen.open === 1 || undefined);
    await source.close();
    await waitFor('the spare connection to close', async () => libvirt.seen.open === 0 || undefined);
    expect(libvirt.seen).toMatchObject({ accepted: 1, received: 0 });
  });

  test('parallel connections on one listener are proxied each on its own', async () => {
    const memory = await launcherSocket('memory.sock');
    const transport = tlsTransport(pki.server, pki.client);
    await proxies(transport, transport, { 0: memory.path });
    const payloads = [0, 1, 2, 3].map((i) => Buffer.alloc(512 * 1024, i + 1));
    const results = await Promise.all(payloads.map((p) => roundTrip(sourceSocket(0), p)));
    results.forEach((r, i) => expect(r.back.equals(payloads[i]!)).toBe(true));
    expect(memory.connections()).toBe(4);
  });

  test('a source presenting a certificate from another CA is refused with the reason logged, before anything reaches the target launcher', async () => {
    const memory = await launcherSocket('memory.sock');
    const rogueCa = await createCa({ commonName: 'rogue-ca', validity: 86_400_000, clock: systemClock });
    const rogue = await issue(rogueCa, { commonName: 'ferry:client:migration', usage: 'client', role: MIGRATION_CLIENT_ROLE, validity: 3_600_000, clock: systemClock });
    const rogueClient = new TlsMaterial({ ...rogue, caPem: pki.caPem });
    const { target } = await proxies(tlsTransport(pki.server, rogueClient), tlsTransport(pki.server, pki.client), { 49152: memory.path });

    const r = await roundTrip(sourceSocket(49152), Buffer.alloc(64 * 1024, 9));
    expect(r.closed).toBe(true);
    expect(r.back.length).toBe(0);
    // The count first: a worker's log line from the test before may still arrive after the log was cleared.
    await waitFor('the target to count the refusal', async () => target.counters.refused >= 1 || undefined);
    await waitFor('the refusal to be logged', async () => lines.find((l) => l['msg'] === 'migration connection refused' && /not trusted|certificate/.test(String(l['reason']))));
    expect(memory.connections()).toBe(0);
    expect(memory.received()).toBe(0);
  });

  test('a client certificate with the wrong role (a handler\'s server identity) is refused; so is a client without any certificate', async () => {
    const memory = await launcherSocket('memory.sock');
    const transport = tlsTransport(pki.server, pki.client);
    const wrong = await issue(pki.ca, { commonName: 'ferry:node:handler', usage: 'client', role: 'handler', validity: 3_600_000, clock: systemClock });
    const { target } = await proxies(tlsTransport(pki.server, new TlsMaterial({ ...wrong, caPem: pki.caPem })), transport, { 49152: memory.path });
    const r = await roundTrip(sourceSocket(49152), Buffer.alloc(1024, 1));
    expect(r.back.length).toBe(0);
    await waitFor('the role refusal', async () => lines.find((l) => l['msg'] === 'migration connection refused' && /role "handler"/.test(String(l['reason']))));

    // No certificate at all: a bare TLS client against the target listener.
    const port = Number(Object.keys(target.ports)[0]);
    const tls = await import('node:tls');
    const bare = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem, checkServerIdentity: () => undefined });
    await new Promise<void>((resolve) => { bare.on('close', () => resolve()); bare.on('error', () => undefined); bare.write('x'); });
    await waitFor('the missing-certificate refusal', async () => lines.find((l) => l['msg'] === 'migration connection refused' && /no client certificate/.test(String(l['reason']))));
    expect(memory.connections()).toBe(0);
  });

  test('a target with a server certificate from another CA is refused by the source', async () => {
    const memory = await launcherSocket('memory.sock');
    const rogueCa = await createCa({ commonName: 'rogue-ca', validity: 86_400_000, clock: systemClock });
    const rogue = await issue(rogueCa, { commonName: 'ferry:node:handler', usage: 'server', role: 'handler', validity: 3_600_000, clock: systemClock, ipAddresses: ['127.0.0.1'] });
    const rogueServer = new TlsMaterial({ ...rogue, caPem: pki.caPem });
    const { source } = await proxies(tlsTransport(pki.server, pki.client), tlsTransport(rogueServer, pki.client), { 49152: memory.path });
    const r = await roundTrip(sourceSocket(49152), Buffer.alloc(1024, 1));
    expect(r.back.length).toBe(0);
    await waitFor('the source to count the refusal', async () => source.counters.refused >= 1 || undefined);
    await waitFor('the source to log the refusal', async () => lines.find((l) => l['msg'] === 'migration connection to the target refused'));
    expect(source.counters.refused).toBe(1);
    expect(memory.received()).toBe(0);
  });

  test('rotating the certificates keeps an open connection going; new connections use the new material', async () => {
    const memory = await launcherSocket('memory.sock');
    const server = new TlsMaterial(pki.server.current);
    const client = new TlsMaterial(pki.client.current);
    const transport = tlsTransport(server, client);
    await proxies(transport, transport, { 49152: memory.path });
    const c = net.connect({ path: sourceSocket(49152) });
    let back = 0;
    c.on('data', (d: Buffer) => { back += d.length; });
    c.write(Buffer.alloc(1000, 1));
    await waitFor('first bytes echoed', async () => back === 1000 || undefined);

    // A new CA and new leaves, as a CA rotation with a bundle holding both CAs.
    const next = await devMigrationPki(systemClock);
    const bundle = `${next.caPem.trim()}\n${pki.caPem.trim()}\n`;
    server.update({ ...next.server.current, caPem: bundle });
    client.update({ ...next.client.current, caPem: bundle });

    c.write(Buffer.alloc(1000, 2));
    await waitFor('the open connection to keep working', async () => back === 2000 || undefined);
    const fresh = await roundTrip(sourceSocket(49152), Buffer.alloc(4096, 3));
    expect(fresh.back.length).toBe(4096);
    c.destroy();
  });

  test.each([['mutual TLS', true], ['plain TCP', false]])('over %s, a stream that one side ends arrives whole, both ways: the connection closes only after its last byte', async (_t, useTls) => {
    // Big enough that the proxy still holds a queue when the sender ends: the tail used to be cut.
    const total = 48 * 1024 * 1024;
    const memory = await oneWaySocket('memory.sock', { sink: true });
    const libvirt = await oneWaySocket('libvirt-sock', { talker: total });
    const transport: Transport = useTls ? tlsTransport(pki.server, pki.client) : { kind: 'tcp' };
    await proxies(transport, transport, { 0: libvirt.path, 49152: memory.path });

    // Forward, as QEMU's memory stream: written, then ended by the source.
    const qemu = net.connect({ path: sourceSocket(49152) });
    qemu.on('error', () => undefined);
    const chunk = Buffer.alloc(256 * 1024, 3);
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!qemu.write(chunk)) await new Promise((r) => qemu.once('drain', r));
    }
    qemu.end();
    await waitFor('the target launcher to see the stream end', async () => memory.ended() || undefined, { timeoutMs: 30_000 });
    expect(memory.received()).toBe(total);

    // Back, as libvirt's reply: the target side writes and ends.
    const client = net.connect({ path: sourceSocket(0) });
    let back = 0;
    client.on('data', (d: Buffer) => { back += d.length; });
    await new Promise<void>((resolve, reject) => { client.once('end', () => resolve()); client.once('error', reject); });
    expect(back).toBe(total);
    client.destroy();
  }, 60_000);

  test('plain TCP when TLS is disabled (migrations.disableTLS)', async () => {
    const memory = await launcherSocket('memory.sock');
    await proxies({ kind: 'tcp' }, { kind: 'tcp' }, { 49152: memory.path });
    const r = await roundTrip(sourceSocket(49152), Buffer.alloc(100_000, 5));
    expect(r.back.length).toBe(100_000);
  });

  test('closing with cut ends open connections at once (what a dying handler does to its streams)', async () => {
    const memory = await launcherSocket('memory.sock');
    const transport = tlsTransport(pki.server, pki.client);
    const { source } = await proxies(transport, transport, { 49152: memory.path });
    const c = net.connect({ path: sourceSocket(49152) });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.on('error', () => undefined);
    c.resume();
    c.write(Buffer.alloc(10, 1));
    await waitFor('the connection to be proxied', async () => memory.received() === 10 || undefined, { timeoutMs: 5000 });
    await source.close({ cut: true });
    await closed;
    expect(source.counters.connections).toBe(1);
  });
});
