import { dirname, join } from 'node:path';
import { parseObject } from '../api/meta.js';
import { VirtualMachineInstance } from '../api/vmi.js';
import { guestSpecFor } from '../controller/guest.js';
import type { GuestSpec, HypervisorDriver } from '../hypervisor/driver.js';
import { LibvirtDriver } from '../hypervisor/libvirt/driver.js';
import { VMI_RESOURCE, type KubeClient } from '../kube/client.js';
import type { Logger } from '../util/log.js';

/**
 * The dev environment on real hypervisors: every node is a libvirtd (a
 * launcher stand-in, see test/libvirt/launcher.sh) reached over its socket.
 */
export interface LibvirtNodes {
  kind: 'libvirt';
  /** libvirtd socket of each node, keyed `node-1` … `node-N`. */
  sockets: Record<string, string>;
  /** Domain XML for a VMI's guest; default: an idle diskless guest (idleGuestXml). */
  domainTemplate?: (guest: GuestSpec) => string;
  /** The handlers' migration records go to `<stateDir>/<node>`; default: beside each node's socket. */
  stateDir?: string;
  /** Memory of every seeded VMI (and so of its guest); default 64Mi, small enough for TCG. */
  guestMemory?: string;
  /** How often the handlers read a running migration's statistics (libvirt driver default 400 ms). */
  pollIntervalMs?: number;
}

/**
 * A guest's domain XML. Without a disk it boots to nothing: SeaBIOS finds
 * nothing to boot and waits, leaving its memory untouched. With `diskImage` (a
 * raw boot sector image) it runs that program. TCG, so no KVM is needed.
 */
export function guestXml(g: GuestSpec, diskImage?: string): string {
  const disk = diskImage
    ? `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${diskImage}'/><target dev='hda' bus='ide'/></disk>`
    : '';
  return `<domain type='qemu'>
  <name>${g.name}</name>
  <memory unit='KiB'>${Math.round(g.memoryBytes / 1024)}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <clock offset='utc'/>
  <devices>${disk}<memballoon model='none'/></devices>
</domain>`;
}

export const idleGuestXml = (g: GuestSpec): string => guestXml(g);

/** Node names `node-1` … `node-N` the sockets must cover, in order. */
export function libvirtNodeNames(nodes: LibvirtNodes): string[] {
  const names = Object.keys(nodes.sockets);
  const expected = names.map((_, i) => `node-${i + 1}`);
  const missing = expected.filter((n) => !names.includes(n));
  if (names.length < 2 || missing.length > 0) {
    throw new Error(`libvirt dev nodes must be named node-1 … node-N (N ≥ 2); got sockets for ${JSON.stringify(names)}`);
  }
  return expected;
}

export function libvirtStateDir(nodes: LibvirtNodes, node: string): string {
  return nodes.stateDir ? join(nodes.stateDir, node) : join(dirname(nodes.sockets[node]!), `ferry-handler-${node}`);
}

/** The node's driver, after checking its libvirtd answers (a clear error at start beats one at the first migration). */
export async function connectLibvirtNode(nodes: LibvirtNodes, node: string, log: Logger): Promise<HypervisorDriver> {
  const driver = new LibvirtDriver({
    socketPath: nodes.sockets[node]!,
    node,
    domainTemplate: nodes.domainTemplate ?? idleGuestXml,
    log,
    ...(nodes.pollIntervalMs ? { pollIntervalMs: nodes.pollIntervalMs } : {}),
  });
  try {
    await driver.listDomains();
  } catch (err) {
    await driver.close();
    throw new Error(`libvirt node ${node}: ${(err as Error).message}`, { cause: err });
  }
  return driver;
}

/**
 * What KubeVirt's launcher does when its pod starts: boot the VMI's guest.
 * Here every running VMI's guest is booted in its node's libvirtd.
 */
export async function bootGuests(kube: KubeClient, drivers: ReadonlyMap<string, HypervisorDriver>, log: Logger): Promise<string[]> {
  const booted: string[] = [];
  for (const raw of (await kube.listCustom(VMI_RESOURCE)).items) {
    const r = parseObject(VirtualMachineInstance, raw);
    if (!r.ok) continue;
    const node = r.value.status?.nodeName;
    const driver = node ? drivers.get(node) : undefined;
    if (!driver) continue;
    const guest = guestSpecFor(r.value);
    try {
      await driver.ensureRunning(guest);
    } catch (err) {
      throw new Error(`booting ${guest.name} on ${node}: ${(err as Error).message}`, { cause: err });
    }
    log.info({ node, domain: guest.name, memoryBytes: guest.memoryBytes }, 'guest booted');
    booted.push(guest.name);
  }
  return booted;
}
