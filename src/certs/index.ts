/**
 * Ferry's one certificate module. Every TLS need (admission webhook, migration
 * proxy, bus) goes through it:
 *
 * - pki.ts: createCa(), issue() a leaf with a role, needsRenewal() at 20 % left.
 * - peer.ts: peerRole(), verifyPeer() and checkCertificate() — a verdict with the reason a peer is refused.
 * - tlsMaterial.ts: TlsMaterial — a server/client identity replaced without restarting the server.
 * - secretStore.ts: SelfManagedCerts — CA + leaf in Secrets, rotated, with the CA bundle published first.
 */
export * from './pki.js';
export * from './peer.js';
export * from './tlsMaterial.js';
export * from './secretStore.js';
