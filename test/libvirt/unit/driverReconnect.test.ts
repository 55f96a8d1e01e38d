import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LibvirtDriver } from '../../../src/hypervisor/libvirt/driver.js';
import { Proc, writeDomain } from '../../../src/hypervisor/libvirt/protocol.js';
import { FakeLibvirtd, ok } from './fakeLibvirtd.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('while libvirtd is unreachable the driver spaces its reconnects out, and reconnects once it is back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-reconnect-'));
  const socketPath = join(dir, 'libvirt-sock');
  const driver = new LibvirtDriver({ socketPath, node: 'node-a' });
  let fake: FakeLibvirtd | undefined;
  try {
    await expect(driver.listDomains()).rejects.toThrow(/cannot reach libvirtd of node-a at .*libvirt-sock/);
    // Asked again at once: the same error without knocking on the socket, saying when the next attempt is.
    await expect(driver.listDomains()).rejects.toThrow(/\(next attempt in \d+ ms\)/);

    fake = await FakeLibvirtd.start(socketPath);
    fake.on(Proc.CONNECT_LIST_ALL_DOMAINS, () => ok((w) => { w.array([], writeDomain); w.uint(0); }));
    await sleep(150); // past the first back-off (100 ms)
    expect(await driver.listDomains()).toEqual([]);
    expect(fake.calls).toContain(Proc.CONNECT_OPEN);
  } finally {
    await driver.close();
    await fake?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
