import https from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { ServiceRouter } from './services.js';

/**
 * One HTTPS call to an admission webhook, as kube-apiserver makes it: POST of
 * an AdmissionReview to `clientConfig.url` or to the Service's
 * `https://<name>.<namespace>.svc:<port><path>`, verifying the server against
 * `caBundle` and the Service's DNS name, with `?timeout=<n>s`. Failures are
 * worded as the Go client words them, since operators search for those words.
 */

export interface ClientConfig {
  url?: string;
  service?: { namespace: string; name: string; path?: string; port?: number };
  /** Base64 of one or more PEM CA certificates. */
  caBundle?: string;
}

export class CallError extends Error {}

export interface Endpoint { url: string; connectHost: string; connectPort: number; servername: string }

export function resolveEndpoint(cfg: ClientConfig, timeoutSeconds: number, router: ServiceRouter): Endpoint {
  const q = `?timeout=${timeoutSeconds}s`;
  if (cfg.url) {
    const u = new URL(cfg.url);
    if (u.protocol !== 'https:') throw new CallError(`failed to call webhook: webhook URL ${cfg.url} must use https`);
    const port = Number(u.port || 443);
    return { url: `${cfg.url}${q}`, connectHost: u.hostname.replace(/^\[|\]$/g, ''), connectPort: port, servername: u.hostname };
  }
  const svc = cfg.service;
  if (!svc) throw new CallError('failed to call webhook: clientConfig has neither url nor service');
  const port = svc.port ?? 443;
  const host = `${svc.name}.${svc.namespace}.svc`;
  const url = `https://${host}:${port}${svc.path ?? ''}${q}`;
  const target = router.resolve(svc.namespace, svc.name, port);
  if ('error' in target) throw new CallError(`failed to call webhook: Post "${url}": ${target.error}`);
  return { url, connectHost: target.host, connectPort: target.port, servername: host };
}

/** Node's TLS/socket errors in the words of Go's net/http and crypto/x509. */
function describe(err: NodeJS.ErrnoException, ep: Endpoint): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return `dial tcp ${ep.connectHost}:${ep.connectPort}: connect: connection refused`;
    case 'ECONNRESET':
      return 'read: connection reset by peer';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return 'tls: failed to verify certificate: x509: certificate signed by unknown authority';
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return 'tls: failed to verify certificate: x509: certificate has expired or is not yet valid';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `tls: failed to verify certificate: x509: certificate is not valid for ${ep.servername}`;
    default:
      return err.message;
  }
}

/** POSTs the review; resolves to the parsed JSON answer, rejects with a CallError worded for the API server's message. */
export function postReview(ep: Endpoint, caBundle: string | undefined, review: unknown, timeoutSeconds: number): Promise<unknown> {
  const body = JSON.stringify(review);
  // One entry per certificate: OpenSSL, given two CAs with the same subject in one PEM string
  // (a CA and its successor during rotation), keeps only the first; as a list it keeps both.
  const ca = caBundle ? splitPem(Buffer.from(caBundle, 'base64').toString('utf8')) : undefined;
  const path = ep.url.replace(/^https:\/\/[^/]+/, '') || '/';
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (msg: string) => {
      if (done) return;
      done = true;
      reject(new CallError(`failed to call webhook: Post "${ep.url}": ${msg}`));
    };
    const req = https.request(
      {
        host: ep.connectHost,
        port: ep.connectPort,
        servername: ep.servername,
        method: 'POST',
        path,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Content-Length': Buffer.byteLength(body) },
        ...(ca ? { ca } : {}),
        // Each call negotiates afresh: a rotated serving certificate is seen at once.
        agent: false,
        // The hostname checked is the Service's DNS name (servername), not the address dialled.
        checkServerIdentity: (_host, cert) => tlsCheck(ep.servername, cert),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (done) return;
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) > 299) return fail(`an error on the server ("${text.slice(0, 200)}") has prevented the request from succeeding`);
          try {
            done = true;
            resolve(JSON.parse(text));
          } catch (err) {
            done = false;
            fail(`received invalid webhook response: ${(err as Error).message}`);
          }
        });
        res.on('error', (err) => fail(describe(err as NodeJS.ErrnoException, ep)));
      },
    );
    req.setTimeout(timeoutSeconds * 1000, () => {
      fail('context deadline exceeded');
      req.destroy();
    });
    req.on('error', (err) => fail(describe(err as NodeJS.ErrnoException, ep)));
    req.end(body);
  });
}

function tlsCheck(servername: string, cert: PeerCertificate): Error | undefined {
  return checkServerIdentity(servername, cert);
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [pem];
}
