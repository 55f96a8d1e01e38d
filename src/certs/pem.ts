/**
 * The small certificate helpers that every TLS user needs, without the X.509
 * library pki.ts issues certificates with. The migration proxy's worker thread
 * imports these (through peer.ts and tlsMaterial.ts): loading @peculiar/x509
 * there made its heap several times larger, and every garbage collection the
 * stream's read buffers force (one every few dozen MiB) marked all of it,
 * about a third of the proxy's CPU per GiB.
 */

export const ROLE_URI_PREFIX = 'spiffe://ferry/';

/** The certificates in a PEM bundle (a CA bundle may hold the current and the previous CA). */
export function splitPemBundle(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => c + '\n') ?? [];
}

/** Node prints SANs as `DNS:a, IP Address:1.2.3.4, URI:spiffe://ferry/webhook`. */
export function roleFromSubjectAltName(san: string | undefined): string | undefined {
  for (const part of (san ?? '').split(/,\s*/)) {
    const m = /^URI:(.*)$/.exec(part.trim());
    if (m?.[1]?.startsWith(ROLE_URI_PREFIX)) return m[1].slice(ROLE_URI_PREFIX.length);
  }
  return undefined;
}
