import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { roleFromSubjectAltName, splitPemBundle } from './pem.js';

/**
 * Deciding whether a TLS peer may talk to us, with the reason when it may not.
 * Node's handshake already checks the chain against the CA we configured; what
 * it does not check is *which* Ferry component the peer is. That is the role
 * in the `spiffe://ferry/<role>` URI SAN written by issue().
 */

export type PeerVerdict = { ok: true; role: string | undefined; subject: string } | { ok: false; reason: string };

/** The role of the peer on an established TLS connection, if it presented a certificate carrying one. */
export function peerRole(socket: TLSSocket): string | undefined {
  const cert = socket.getPeerX509Certificate();
  return cert ? roleFromSubjectAltName(cert.subjectAltName) : undefined;
}

export interface PeerRequirements {
  /** Roles accepted; absent = any certificate the CA signed. */
  roles?: readonly string[];
}

/**
 * Whether the peer on `socket` passed the handshake's chain check and holds one
 * of the accepted roles. Use with `requestCert: true, rejectUnauthorized: false`
 * on a server so that a refused peer gets a reason in our log instead of a bare
 * handshake failure.
 */
export function verifyPeer(socket: TLSSocket, req: PeerRequirements = {}): PeerVerdict {
  const cert = socket.getPeerX509Certificate();
  if (!cert) return { ok: false, reason: 'peer presented no client certificate' };
  const subject = cert.subject.replace(/\n/g, ', ');
  if (!socket.authorized) {
    return { ok: false, reason: `certificate of ${subject} not trusted: ${String(socket.authorizationError ?? 'unknown error')}` };
  }
  return checkRole(cert, subject, req);
}

function checkRole(cert: X509Certificate, subject: string, req: PeerRequirements): PeerVerdict {
  const role = roleFromSubjectAltName(cert.subjectAltName);
  if (req.roles && req.roles.length > 0) {
    if (role === undefined) return { ok: false, reason: `certificate of ${subject} carries no Ferry role (URI SAN spiffe://ferry/<role>); expected one of ${req.roles.join(', ')}` };
    if (!req.roles.includes(role)) return { ok: false, reason: `peer role "${role}" (${subject}) is not allowed here; expected one of ${req.roles.join(', ')}` };
  }
  return { ok: true, role, subject };
}

export interface CertificateCheck extends PeerRequirements {
  /** One or more CA certificates in PEM; the certificate must be signed by one of them. */
  caPem: string;
  now: number;
}

/**
 * The same verdict for a certificate at rest (a Secret, a file): signed by one
 * of the CAs, inside its validity window, holding an accepted role.
 */
export function checkCertificate(certPem: string, check: CertificateCheck): PeerVerdict {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    return { ok: false, reason: `not a PEM certificate: ${(err as Error).message}` };
  }
  const subject = cert.subject.replace(/\n/g, ', ');
  const cas = splitPemBundle(check.caPem).map((p) => new X509Certificate(p));
  if (cas.length === 0) return { ok: false, reason: 'no CA certificate to check against' };
  if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    return { ok: false, reason: `certificate of ${subject} is not signed by the CA (issuer ${cert.issuer.replace(/\n/g, ', ')})` };
  }
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (check.now < from) return { ok: false, reason: `certificate of ${subject} is not valid before ${new Date(from).toISOString()}` };
  if (check.now > to) return { ok: false, reason: `certificate of ${subject} expired at ${new Date(to).toISOString()}` };
  return checkRole(cert, subject, check);
}
