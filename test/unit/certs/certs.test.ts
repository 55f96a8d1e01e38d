import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { ManualClock } from '../../../src/util/clock.js';
import { checkCertificate, createCa, issue, needsRenewal, roleOf, TlsMaterial, verifyPeer, type PeerVerdict } from '../../../src/certs/index.js';

const DAY = 86_400_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

async function pki(clock = new ManualClock(T0)) {
  const ca = await createCa({ commonName: 'ferry-ca', validity: 365 * DAY, clock });
  const server = await issue(ca, { commonName: 'ferry-webhook', dnsNames: ['localhost', 'ferry-webhook.ferry-system.svc'], ipAddresses: ['127.0.0.1'], usage: 'server', role: 'webhook', validity: 30 * DAY, clock });
  const client = await issue(ca, { commonName: 'ferry-handler', usage: 'client', role: 'handler', validity: 30 * DAY, clock });
  return { clock, ca, server, client };
}

/** A TLS server that asks for a client certificate and answers each connection with its verdict. */
async function verdictServer(material: TlsMaterial, roles: string[]) {
  const server = tls.createServer({ ...material.serverOptions(), requestCert: true, rejectUnauthorized: false }, (sock) => {
    sock.end(JSON.stringify(verifyPeer(sock, { roles })));
  });
  material.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

async function dial(port: number, opts: tls.ConnectionOptions): Promise<{ verdict: PeerVerdict; serverSerial: string }> {
  const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
  await once(sock, 'secureConnect');
  const serverSerial = sock.getPeerX509Certificate()!.serialNumber;
  let body = '';
  sock.on('data', (d) => (body += String(d)));
  await once(sock, 'end');
  sock.destroy();
  return { verdict: JSON.parse(body) as PeerVerdict, serverSerial };
}

describe('certificates', () => {
  it('issues a leaf that its CA verifies, with the names, usage and role asked for', async () => {
    const { ca, server, clock } = await pki();
    const cert = new X509Certificate(server.certPem);
    expect(cert.subjectAltName).toContain('DNS:ferry-webhook.ferry-system.svc');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(cert.subject).toContain('OU=webhook');
    expect(cert.ca).toBe(false);
    expect(new X509Certificate(ca.certPem).ca).toBe(true);
    expect(roleOf(server.certPem)).toBe('webhook');
    expect(checkCertificate(server.certPem, { caPem: ca.certPem, now: clock.now(), roles: ['webhook'] })).toMatchObject({ ok: true, role: 'webhook' });
  });

  it('says why a certificate at rest is refused: wrong CA, expired, wrong role', async () => {
    const { ca, server, clock } = await pki();
    const other = await createCa({ commonName: 'someone-else', validity: DAY, clock });
    expect(checkCertificate(server.certPem, { caPem: other.certPem, now: clock.now() })).toEqual({ ok: false, reason: expect.stringContaining('not signed by the CA') });
    expect(checkCertificate(server.certPem, { caPem: ca.certPem, now: clock.now() + 31 * DAY })).toEqual({ ok: false, reason: expect.stringContaining('expired at') });
    expect(checkCertificate(server.certPem, { caPem: ca.certPem, now: clock.now(), roles: ['proxy'] })).toEqual({ ok: false, reason: expect.stringContaining('peer role "webhook"') });
    // A bundle of old + new CA accepts leaves of either.
    expect(checkCertificate(server.certPem, { caPem: other.certPem + ca.certPem, now: clock.now() }).ok).toBe(true);
  });

  it('is due for renewal once 20 % of the lifetime is left, as KubeVirt renews', async () => {
    const { server } = await pki();
    expect(needsRenewal(server.certPem, T0 + 23 * DAY)).toBe(false);
    expect(needsRenewal(server.certPem, T0 + 24 * DAY)).toBe(true);
    expect(needsRenewal(server.certPem, T0 + 40 * DAY)).toBe(true);
    expect(needsRenewal(server.certPem, T0 + 10 * DAY, 0.7)).toBe(true);
  });

  it('never issues a leaf that outlives its CA', async () => {
    const clock = new ManualClock(T0);
    const ca = await createCa({ commonName: 'short', validity: 2 * DAY, clock });
    const leaf = await issue(ca, { commonName: 'x', usage: 'both', validity: 30 * DAY, clock });
    expect(Date.parse(new X509Certificate(leaf.certPem).validTo)).toBe(T0 + 2 * DAY);
  });

  it('a TLS server accepts a client of an allowed role and tells others why not', async () => {
    const { clock, ca, server, client } = await pki(new ManualClock(Date.now()));
    const material = new TlsMaterial({ ...server, caPem: ca.certPem });
    const { server: srv, port } = await verdictServer(material, ['handler']);
    try {
      const ok = await dial(port, { ca: ca.certPem, cert: client.certPem, key: client.keyPem });
      expect(ok.verdict).toMatchObject({ ok: true, role: 'handler' });

      const wrongRole = await issue(ca, { commonName: 'intruder', usage: 'client', role: 'proxy', validity: DAY, clock });
      expect((await dial(port, { ca: ca.certPem, cert: wrongRole.certPem, key: wrongRole.keyPem })).verdict).toEqual({ ok: false, reason: expect.stringContaining('peer role "proxy"') });

      const foreignCa = await createCa({ commonName: 'foreign', validity: DAY, clock });
      const foreign = await issue(foreignCa, { commonName: 'foreigner', usage: 'client', role: 'handler', validity: DAY, clock });
      expect((await dial(port, { ca: ca.certPem, cert: foreign.certPem, key: foreign.keyPem })).verdict).toEqual({ ok: false, reason: expect.stringMatching(/not trusted: .*(UNABLE_TO_VERIFY|unable to verify)/i) });

      expect((await dial(port, { ca: ca.certPem })).verdict).toEqual({ ok: false, reason: 'peer presented no client certificate' });
    } finally {
      srv.close();
    }
  });

  it('swaps the serving certificate of a running server without restarting it', async () => {
    const { clock, ca, server } = await pki(new ManualClock(Date.now()));
    const material = new TlsMaterial({ ...server, caPem: ca.certPem });
    const { server: srv, port } = await verdictServer(material, []);
    let listening = 0;
    srv.on('listening', () => listening++);
    try {
      const before = await dial(port, { ca: ca.certPem });
      expect(before.serverSerial).toBe(new X509Certificate(server.certPem).serialNumber);

      const renewed = await issue(ca, { commonName: 'ferry-webhook', dnsNames: ['localhost'], usage: 'server', role: 'webhook', validity: DAY, clock });
      material.update({ ...renewed, caPem: ca.certPem });
      const after = await dial(port, { ca: ca.certPem });
      expect(after.serverSerial).toBe(new X509Certificate(renewed.certPem).serialNumber);
      expect(material.generation).toBe(2);
      expect(listening).toBe(0);
    } finally {
      srv.close();
    }
  });

  it('a client trusting the old and the new CA (same name, as during a rotation) accepts servers of either', async () => {
    const clock = new ManualClock(Date.now());
    const oldCa = await createCa({ commonName: 'ferry-ca', validity: DAY, clock });
    const newCa = await createCa({ commonName: 'ferry-ca', validity: DAY, clock });
    const client = await issue(newCa, { commonName: 'client', usage: 'client', validity: DAY, clock });
    const clientMaterial = new TlsMaterial({ ...client, caPem: newCa.certPem + oldCa.certPem });
    for (const ca of [oldCa, newCa]) {
      const leaf = await issue(ca, { commonName: 'ferry-webhook', dnsNames: ['localhost'], usage: 'server', validity: DAY, clock });
      const { server: srv, port } = await verdictServer(new TlsMaterial({ ...leaf, caPem: ca.certPem }), []);
      try {
        const r = await dial(port, { secureContext: clientMaterial.secureContext() });
        expect(r.serverSerial).toBe(new X509Certificate(leaf.certPem).serialNumber);
      } finally {
        srv.close();
      }
    }
  });

  it('refuses material whose key is not the certificate\'s, and keeps serving the old one', async () => {
    const { ca, server, client } = await pki();
    const material = new TlsMaterial({ ...server, caPem: ca.certPem });
    expect(() => material.update({ certPem: server.certPem, keyPem: client.keyPem, caPem: ca.certPem })).toThrow(/does not match certificate/);
    expect(material.current.keyPem).toBe(server.keyPem);
    expect(material.generation).toBe(1);
  });
});
