import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCa, issue, type KeyPairPem } from '../../../src/certs/index.js';
import { systemClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';
import { startFileServing } from '../../../src/webhook/certificates.js';

/** cert-manager mode: the webhook follows the mounted Secret's files, and never serves a half-written pair. */
describe('serving a mounted certificate', () => {
  const HOUR = 3_600_000;
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-tls-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (leaf: KeyPairPem, ca: KeyPairPem) => {
    writeFileSync(path.join(dir, 'tls.crt'), leaf.certPem);
    writeFileSync(path.join(dir, 'tls.key'), leaf.keyPem);
    writeFileSync(path.join(dir, 'ca.crt'), ca.certPem);
  };
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
    if (!ok()) throw new Error(`timed out waiting for ${what}`);
  };

  test('a renewed certificate written by cert-manager is picked up without a restart; a mismatched pair is not', async () => {
    const ca = await createCa({ commonName: 'cm-ca', validity: HOUR, clock: systemClock });
    const first = await issue(ca, { commonName: 'ferry-webhook', dnsNames: ['ferry-webhook.ferry-system.svc'], usage: 'server', validity: HOUR, clock: systemClock });
    write(first, ca);
    const serving = await startFileServing(dir, silentLogger, 20);
    try {
      expect(serving.material.current.certPem).toBe(first.certPem);
      const second = await issue(ca, { commonName: 'ferry-webhook', dnsNames: ['ferry-webhook.ferry-system.svc'], usage: 'server', validity: HOUR, clock: systemClock });
      write(second, ca);
      await until('the renewed certificate', () => serving.material.generation === 2);
      expect(new X509Certificate(serving.material.current.certPem).serialNumber).toBe(new X509Certificate(second.certPem).serialNumber);

      // Half-way through an update: the new certificate, still the old key.
      const third = await issue(ca, { commonName: 'ferry-webhook', usage: 'server', validity: HOUR, clock: systemClock });
      writeFileSync(path.join(dir, 'tls.crt'), third.certPem);
      await new Promise((r) => setTimeout(r, 100));
      expect(serving.material.generation).toBe(2);
      expect(serving.material.current.certPem).toBe(second.certPem);
    } finally {
      serving.stop();
    }
  });
});
