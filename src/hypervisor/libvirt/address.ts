/**
 * The address a target hands to the source for a peer-to-peer migration.
 *
 * Format: `libvirt-p2p:?dest=<libvirt URI>&migrate=<QEMU migration URI>`
 * (URL query encoding), e.g.
 *   libvirt-p2p:?dest=qemu%2Bunix%3A%2F%2F%2Fsystem%3Fsocket%3D%2Fl%2Fb%2Frun%2Flibvirt-sock&migrate=tcp%3A%2F%2F127.0.0.1%3A49152
 * - `dest`: how the source libvirtd reaches the target libvirtd (it runs the
 *   whole migration itself: prepare, perform, finish, confirm);
 * - `migrate`: where the target QEMU listens for the memory stream.
 */
export interface IncomingAddress {
  destUri: string;
  migrateUri: string;
}

const PREFIX = 'libvirt-p2p:?';

export function formatAddress(a: IncomingAddress): string {
  return PREFIX + new URLSearchParams({ dest: a.destUri, migrate: a.migrateUri }).toString();
}

export function parseAddress(address: string): IncomingAddress {
  if (!address.startsWith(PREFIX)) {
    throw new Error(`not a libvirt peer-to-peer address (expected "${PREFIX}dest=...&migrate=..."): ${JSON.stringify(address)}`);
  }
  const q = new URLSearchParams(address.slice(PREFIX.length));
  const destUri = q.get('dest');
  const migrateUri = q.get('migrate');
  if (!destUri || !/^[a-z0-9+]+:\/\//i.test(destUri)) throw new Error(`libvirt address ${JSON.stringify(address)} has no usable dest URI`);
  if (!migrateUri || !/^(tcp|unix|rdma):/.test(migrateUri)) throw new Error(`libvirt address ${JSON.stringify(address)} has no usable migrate URI`);
  return { destUri, migrateUri };
}

/** The libvirt URI of a daemon listening on a unix socket. */
export function unixSocketUri(socketPath: string, driverUri = 'qemu:///system'): string {
  const sep = driverUri.includes('?') ? '&' : '?';
  const base = driverUri.replace(/^([a-z0-9]+):/i, '$1+unix:');
  return `${base}${sep}socket=${socketPath.replace(/[^A-Za-z0-9/._~-]/g, (c) => encodeURIComponent(c))}`;
}
