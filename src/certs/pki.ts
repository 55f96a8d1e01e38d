// @peculiar/x509 resolves its algorithm registry through tsyringe, which needs a Reflect polyfill.
import 'reflect-metadata';
import { webcrypto, X509Certificate as NodeX509, createPrivateKey } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import * as x509 from '@peculiar/x509';
import type { Clock } from '../util/clock.js';
import { ROLE_URI_PREFIX, roleFromSubjectAltName, splitPemBundle } from './pem.js';

export { ROLE_URI_PREFIX, roleFromSubjectAltName, splitPemBundle };

/**
 * Issuing X.509 material for every TLS need in Ferry (admission webhook,
 * migration proxy, bus): a CA and leaves signed by it. All encoding is done by
 * @peculiar/x509 over Node's WebCrypto; nothing here writes ASN.1 by hand.
 *
 * Keys are ECDSA P-256: generating one takes a millisecond, so rotating in a
 * test or at start-up costs nothing, and every TLS stack Ferry talks to accepts it.
 * A leaf's role (which Ferry component it is) is written twice: as the subject's
 * OU for humans reading `openssl x509 -text`, and as the URI SAN
 * `spiffe://ferry/<role>`, which is what peers check (SANs are what modern
 * verifiers read; the subject is not).
 */

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export type Usage = 'server' | 'client' | 'both';

export interface CaOptions {
  commonName: string;
  /** Lifetime in milliseconds from clock.now(). */
  validity: number;
  clock: Clock;
}

export interface LeafOptions {
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: Usage;
  /** Which Ferry component holds the certificate ("webhook", "proxy", "handler"); see peerRole(). */
  role?: string;
  /** Lifetime in milliseconds from clock.now(); capped at the CA's own expiry. */
  validity: number;
  clock: Clock;
}

const ROLE_PATTERN = /^[a-z0-9][a-z0-9-]*$/;

const KEY_ALG: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN_ALG: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';

/** X.509 times have one-second resolution; round down so "valid from now" holds at now. */
const toCertTime = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f; // serials are positive integers
  if (bytes[0] === 0) bytes[0] = 1; // and DER forbids a leading zero byte
  return Buffer.from(bytes).toString('hex');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importSigningKey(keyPem: string): Promise<CryptoKey> {
  // Normalise whatever PEM we were given (PKCS#8 or SEC1 "EC PRIVATE KEY") to PKCS#8 first.
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, KEY_ALG, false, ['sign']) as Promise<CryptoKey>;
}

/** A self-signed CA that may sign leaves only (path length 0). */
export async function createCa(opts: CaOptions): Promise<KeyPairPem> {
  if (!(opts.validity > 0)) throw new Error(`createCa: validity must be a positive number of milliseconds, got ${opts.validity}`);
  const keys = await newKeys();
  const now = opts.clock.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: new x509.Name([{ CN: [opts.commonName] }]),
    notBefore: toCertTime(now),
    notAfter: toCertTime(now + opts.validity),
    signingAlgorithm: SIGN_ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

/** A leaf certificate signed by `ca`, for a server, a client or both. */
export async function issue(ca: KeyPairPem, opts: LeafOptions): Promise<KeyPairPem> {
  if (!(opts.validity > 0)) throw new Error(`issue: validity must be a positive number of milliseconds, got ${opts.validity}`);
  if (opts.role !== undefined && !ROLE_PATTERN.test(opts.role)) throw new Error(`issue: role "${opts.role}" must be lower-case letters, digits and dashes`);
  const caCert = new x509.X509Certificate(ca.certPem);
  const signingKey = await importSigningKey(ca.keyPem);
  const keys = await newKeys();
  const now = opts.clock.now();
  // A leaf never outlives its CA: a verifier would refuse it from that moment anyway.
  const notAfter = Math.min(now + opts.validity, caCert.notAfter.getTime());

  const names: x509.JsonGeneralName[] = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(opts.role ? [{ type: 'url' as const, value: ROLE_URI_PREFIX + opts.role }] : []),
  ];
  const eku = opts.usage === 'server' ? [EKU_SERVER] : opts.usage === 'client' ? [EKU_CLIENT] : [EKU_SERVER, EKU_CLIENT];
  const subject: x509.JsonNameParams = [{ CN: [opts.commonName] }];
  if (opts.role) subject.push({ OU: [opts.role] });

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: new x509.Name(subject),
    issuer: caCert.subjectName,
    notBefore: toCertTime(now),
    notAfter: toCertTime(notAfter),
    signingAlgorithm: SIGN_ALG,
    publicKey: keys.publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

/** Validity window of a certificate, in epoch milliseconds. */
export function validity(certPem: string): { notBefore: number; notAfter: number } {
  const c = new NodeX509(certPem);
  return { notBefore: Date.parse(c.validFrom), notAfter: Date.parse(c.validTo) };
}

/**
 * Whether a certificate is due for renewal: at most `fractionLeft` of its
 * lifetime remains (KubeVirt renews at 20 % left), or it is already expired.
 */
export function needsRenewal(certPem: string, now: number, fractionLeft = 0.2): boolean {
  const { notBefore, notAfter } = validity(certPem);
  return notAfter - now <= (notAfter - notBefore) * fractionLeft;
}

/** The role written into a certificate by issue(), if any. */
export function roleOf(certPem: string | NodeX509): string | undefined {
  const c = typeof certPem === 'string' ? new NodeX509(certPem) : certPem;
  return roleFromSubjectAltName(c.subjectAltName);
}

