import type { Transport } from '../../src/proxy/transport.js';

/** A transport for benchmarks (TLS material comes from the certs module once merged). */
export async function migrationTransport(kind: 'tcp' | 'tls'): Promise<Transport> {
  if (kind === 'tcp') return { kind: 'tcp' };
  throw new Error('TLS transport needs the certs module');
}
