import type { PublishedTarget } from '../hypervisor/driver.js';

/**
 * The address a target handler hands to the source when migrations go
 * through the handlers' proxy: the target handler's address and its listener
 * ports (TCP port → KubeVirt key port: 0 libvirt, 49152 memory), exactly what
 * it publishes as targetNodeAddress / targetDirectMigrationNodePorts.
 *
 * Format: `ferry-proxy:?host=<ip>&ports=<tcp>:<key>,<tcp>:<key>`.
 */
const PREFIX = 'ferry-proxy:?';

export function formatProxyAddress(t: PublishedTarget): string {
  const ports = Object.entries(t.targetDirectMigrationNodePorts).map(([tcp, key]) => `${tcp}:${key}`).join(',');
  return PREFIX + new URLSearchParams({ host: t.targetNodeAddress, ports }).toString();
}

export function parseProxyAddress(address: string): PublishedTarget {
  if (!address.startsWith(PREFIX)) throw new Error(`not a migration proxy address (expected "${PREFIX}host=...&ports=..."): ${JSON.stringify(address)}`);
  const q = new URLSearchParams(address.slice(PREFIX.length));
  const host = q.get('host');
  if (!host) throw new Error(`migration proxy address ${JSON.stringify(address)} names no host`);
  const ports: Record<string, number> = {};
  for (const pair of (q.get('ports') ?? '').split(',').filter(Boolean)) {
    const m = /^(\d{1,5}):(\d{1,5})$/.exec(pair);
    if (!m) throw new Error(`migration proxy address ${JSON.stringify(address)} has a bad port pair ${JSON.stringify(pair)}`);
    ports[m[1]!] = Number(m[2]);
  }
  if (!Object.values(ports).includes(0)) throw new Error(`migration proxy address ${JSON.stringify(address)} has no libvirt (key 0) port`);
  return { targetNodeAddress: host, targetDirectMigrationNodePorts: ports };
}
