import { X509Certificate, createPrivateKey } from 'node:crypto';
import { splitPemBundle } from './pem.js';
import { createSecureContext, type SecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';

/**
 * The TLS identity of one Ferry process (certificate, key, trusted CAs), which
 * can be replaced while servers keep running: `update()` swaps the
 * SecureContext of every attached server (tls.Server#setSecureContext), so new
 * handshakes use the new certificate and open connections finish on the old
 * one. Clients ask `secureContext()` per connection and so pick up the change
 * on their next dial. Nothing is restarted, no listener is closed.
 */

export interface TlsFiles {
  certPem: string;
  keyPem: string;
  /** CA bundle used to verify peers (may hold the current and the previous CA during a CA rotation). */
  caPem: string;
}

type Listener = (files: TlsFiles) => void;

export class TlsMaterial {
  private files: TlsFiles;
  private context: SecureContext;
  private readonly servers = new Set<TlsServer>();
  private readonly listeners = new Set<Listener>();
  private generationNo = 1;

  constructor(initial: TlsFiles) {
    this.context = TlsMaterial.build(initial);
    this.files = initial;
  }

  get current(): TlsFiles { return this.files; }
  /** Increments on every update: lets a log or a test tell which material a handshake used. */
  get generation(): number { return this.generationNo; }

  /** Options for tls.createServer / https.createServer, to be followed by attach(server). */
  serverOptions(): SecureContextOptions {
    return { cert: this.files.certPem, key: this.files.keyPem, ca: caList(this.files.caPem) };
  }

  /** The context for a client connection (`tls.connect({ secureContext })`, `https.request({ ... })`). */
  secureContext(): SecureContext { return this.context; }

  /** Makes `server` follow every later update(); returns a function that stops that. */
  attach(server: TlsServer): () => void {
    server.setSecureContext(this.serverOptions());
    this.servers.add(server);
    return () => this.servers.delete(server);
  }

  onUpdate(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Replaces the material. Throws, keeping the old material in place, if the
   * key does not belong to the certificate: a half-written Secret must never
   * take a serving process down.
   */
  update(next: TlsFiles): void {
    if (next.certPem === this.files.certPem && next.keyPem === this.files.keyPem && next.caPem === this.files.caPem) return;
    const ctx = TlsMaterial.build(next);
    this.context = ctx;
    this.files = next;
    this.generationNo++;
    for (const s of this.servers) s.setSecureContext(this.serverOptions());
    for (const fn of this.listeners) fn(next);
  }

  private static build(files: TlsFiles): SecureContext {
    const cert = new X509Certificate(files.certPem);
    if (!cert.checkPrivateKey(createPrivateKey(files.keyPem))) {
      throw new Error(`TLS key does not match certificate ${cert.subject.replace(/\n/g, ', ')}`);
    }
    return createSecureContext({ cert: files.certPem, key: files.keyPem, ca: caList(files.caPem) });
  }
}

/**
 * A CA bundle as a list: OpenSSL, given one PEM string holding two CAs with
 * the same subject (a CA and its successor during rotation), trusts only the
 * first; given a list it trusts both.
 */
function caList(pem: string): string[] {
  const list = splitPemBundle(pem);
  return list.length ? list : [pem];
}
