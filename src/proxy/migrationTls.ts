import { createCa, issue, verifyPeer, TlsMaterial, type KeyPairPem } from '../certs/index.js';
import type { Clock } from '../util/clock.js';
import type { Transport } from './transport.js';

import { HANDLER_SERVER_ROLE, MIGRATION_CLIENT_ROLE } from './roles.js';

export { HANDLER_SERVER_ROLE, MIGRATION_CLIENT_ROLE } from './roles.js';

/** Mutual TLS between handlers with these identities; either may be replaced live (TlsMaterial.update). */
export function tlsTransport(server: TlsMaterial, client: TlsMaterial): Transport {
  return {
    kind: 'tls',
    server,
    client,
    clientRole: MIGRATION_CLIENT_ROLE,
    serverRole: HANDLER_SERVER_ROLE,
    check: (socket, role) => verifyPeer(socket, { roles: [role] }),
  };
}

export interface MigrationPki {
  ca: KeyPairPem;
  caPem: string;
  /** A server identity not tied to a node (tests, benchmarks). */
  server: TlsMaterial;
  client: TlsMaterial;
  /** The server identity of one handler (CN ferry:node:<node>:handler), issued on first use and kept. */
  serverFor(node: string): Promise<TlsMaterial>;
}

/**
 * A fresh CA with server identities (one per handler through serverFor) and
 * the client identity, for the embedded dev environment and tests (a real
 * cluster mounts them from the Secrets in migrationCertSecrets.ts).
 */
export async function devMigrationPki(clock: Clock, validityMs = 24 * 3600_000): Promise<MigrationPki> {
  // A distinct CA name per CA: during a rotation the bundle holds two CAs, and
  // OpenSSL finds a certificate's issuer by name.
  const ca = await createCa({ commonName: `ferry-migration-ca-${clock.now()}`, validity: validityMs * 7, clock });
  const server = await issue(ca, { commonName: 'ferry:node:handler', usage: 'server', role: HANDLER_SERVER_ROLE, validity: validityMs, clock, ipAddresses: ['127.0.0.1'] });
  const client = await issue(ca, { commonName: 'ferry:client:migration', usage: 'client', role: MIGRATION_CLIENT_ROLE, validity: validityMs, clock });
  const perNode = new Map<string, Promise<TlsMaterial>>();
  return {
    ca,
    caPem: ca.certPem,
    server: new TlsMaterial({ ...server, caPem: ca.certPem }),
    client: new TlsMaterial({ ...client, caPem: ca.certPem }),
    serverFor(node) {
      let m = perNode.get(node);
      if (!m) {
        // One identity per handler, as each node's own certificate would be: a log or a peer check names the handler.
        m = issue(ca, { commonName: `ferry:node:${node}:handler`, usage: 'server', role: HANDLER_SERVER_ROLE, validity: validityMs, clock, ipAddresses: ['127.0.0.1'] })
          .then((leaf) => new TlsMaterial({ ...leaf, caPem: ca.certPem }));
        perNode.set(node, m);
      }
      return m;
    },
  };
}
