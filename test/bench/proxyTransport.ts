import { devMigrationPki, tlsTransport } from '../../src/proxy/migrationTls.js';
import type { Transport } from '../../src/proxy/transport.js';
import { systemClock } from '../../src/util/clock.js';

/** A transport for benchmarks: plain TCP, or mutual TLS with a fresh dev CA. */
export async function migrationTransport(kind: 'tcp' | 'tls'): Promise<Transport> {
  if (kind === 'tcp') return { kind: 'tcp' };
  const pki = await devMigrationPki(systemClock);
  return tlsTransport(pki.server, pki.client);
}
