import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launcherRef } from '../../../src/controller/launcherRef.js';
import { findLauncher, LauncherNotFound } from '../../../src/launcher/findLauncher.js';
import { migrationSocket, podVolumeDir, proxyKey } from '../../../src/launcher/layout.js';
import { LauncherLocator } from '../../../src/launcher/locator.js';
import { formatProxyAddress, parseProxyAddress } from '../../../src/launcher/proxyAddress.js';
import type { Pod } from '../../../src/api/core.js';
import type { VirtualMachineInstance } from '../../../src/api/vmi.js';

const sockets = (present: string[]) => (uid: string) => (present.includes(uid) ? `/pods/${uid}/sock` : undefined);

describe('finding a VMI\'s launcher by pod UID (KubeVirt\'s FindSocket)', () => {
  test('the one active pod on this node with a socket', () => {
    expect(findLauncher({ vmi: 'default/vm-1', node: 'node-1', activePods: { a: 'node-1', b: 'node-2' }, socketOf: sockets(['a', 'b']) })).toEqual({ podUID: 'a', socket: '/pods/a/sock' });
    // A pod on this node without a socket (being torn down) does not count.
    expect(findLauncher({ vmi: 'default/vm-1', node: 'node-1', activePods: { a: 'node-1', c: 'node-1' }, socketOf: sockets(['c']) }).podUID).toBe('c');
  });

  test('clear errors: no active pods, none on this node, no socket, more than one', () => {
    const err = (activePods: Record<string, string> | undefined, present: string[]) => {
      try {
        findLauncher({ vmi: 'default/vm-1', node: 'node-1', activePods, socketOf: sockets(present) });
      } catch (e) {
        expect(e).toBeInstanceOf(LauncherNotFound);
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(err(undefined, [])).toBe('VMI default/vm-1 lists no active pods (status.activePods is empty), so its launcher on node-1 cannot be found');
    expect(err({ a: 'node-2' }, ['a'])).toBe('none of VMI default/vm-1\'s active pods is on node-1 (they are on node-2)');
    expect(err({ a: 'node-1' }, [])).toMatch(/pod a on node-1 has no libvirt socket/);
    expect(err({ a: 'node-1', b: 'node-1' }, ['a', 'b'])).toMatch(/has 2 launchers with a libvirt socket on node-1 \(pods a, b\); expected exactly one/);
  });
});

test('KubeVirt\'s socket names and kubelet layout', () => {
  expect(proxyKey('uid', 0)).toBe('uid');
  expect(proxyKey('uid', 49152)).toBe('uid-49152');
  expect(migrationSocket('/run/kubevirt', 'uid', 49152)).toBe('/run/kubevirt/migrationproxy/uid-49152-source.sock');
  expect(podVolumeDir('/pods', 'p', 'libvirt-runtime')).toBe('/pods/p/volumes/kubernetes.io~empty-dir/libvirt-runtime');
});

test('the proxy address round-trips what the target publishes, and refuses garbage', () => {
  const published = { targetNodeAddress: '10.244.2.7', targetDirectMigrationNodePorts: { '41234': 0, '41235': 49152 } };
  expect(parseProxyAddress(formatProxyAddress(published))).toEqual(published);
  expect(() => parseProxyAddress('libvirt-p2p:?dest=x')).toThrow(/not a migration proxy address/);
  expect(() => parseProxyAddress('ferry-proxy:?host=1.2.3.4&ports=1:49152')).toThrow(/no libvirt \(key 0\) port/);
  expect(() => parseProxyAddress('ferry-proxy:?host=1.2.3.4&ports=x:0')).toThrow(/bad port pair/);
});

test('the controller sends the VMI\'s active pods plus its running target pod, never a deleted or pending one', () => {
  const vmi = { metadata: { name: 'vm-1', uid: 'v' }, spec: {}, status: { activePods: { src: 'node-1' } } } as VirtualMachineInstance;
  const pod = (uid: string, node: string, phase: string, deleting = false) => ({ metadata: { name: uid, uid, ...(deleting ? { deletionTimestamp: 'x' } : {}) }, spec: { nodeName: node }, status: { phase } }) as unknown as Pod;
  expect(launcherRef(vmi, [pod('tgt', 'node-2', 'Running'), pod('pending', 'node-3', 'Pending'), pod('gone', 'node-3', 'Running', true)], false))
    .toEqual({ activePods: { src: 'node-1', tgt: 'node-2' } });
  expect(launcherRef(vmi, [], true)).toEqual({ activePods: { src: 'node-1' }, disableTLS: true });
});

test('the locator finds the process serving a pod\'s socket by inode (here: this test process)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-locator-'));
  try {
    // A fake /proc: <dir>/proc/<pid>/root/run/libvirt/libvirt-sock is the pod's socket, hard-linked.
    const runtime = podVolumeDir(join(dir, 'pods'), 'pod-1', 'libvirt-runtime');
    mkdirSync(runtime, { recursive: true });
    const sock = join(runtime, 'libvirt-sock');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(sock, () => r()));
    const locator = new LauncherLocator(join(dir, 'pods'), 'node-1');
    expect(locator.socketOf('pod-1')).toBe(sock);
    expect(locator.socketOf('pod-2')).toBeUndefined();
    const { launcherPid } = await import('../../../src/launcher/locator.js');
    mkdirSync(join(dir, 'proc', '4242', 'root', 'run', 'libvirt'), { recursive: true });
    mkdirSync(join(dir, 'proc', '17', 'root', 'run', 'libvirt'), { recursive: true });
    const { linkSync } = await import('node:fs');
    linkSync(sock, join(dir, 'proc', '4242', 'root', 'run', 'libvirt', 'libvirt-sock'));
    expect(launcherPid(sock, '/run/libvirt/libvirt-sock', join(dir, 'proc'))).toBe(4242);
    server.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
