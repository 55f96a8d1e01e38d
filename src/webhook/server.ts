import { once } from 'node:events';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TlsMaterial } from '../certs/index.js';
import { zodReason } from '../bus/zodReason.js';
import { describeApiError, type KubeClient } from '../kube/client.js';
import type { Logger } from '../util/log.js';
import { admitEviction } from './evictionAdmitter.js';
import { WebhookMetrics } from './metrics.js';
import { admitMigration } from './migrationAdmitter.js';
import { admitResource } from './resourceAdmitter.js';
import { AdmissionReview, reviewResponse, type AdmissionRequest, type Verdict } from './review.js';
import { WebhookPaths } from './registration.js';

/**
 * Ferry's admission webhook server: HTTPS (the API server calls nothing
 * else), one path per webhook, stateless — every decision reads the cluster
 * afresh, so any number of replicas answer alike. The serving certificate
 * comes from a TlsMaterial and is swapped without a restart.
 */

export interface WebhookServerOptions {
  kube: KubeClient;
  material: TlsMaterial;
  log: Logger;
  /** Default 8443; 0 = any free port. */
  port?: number;
  /** Default 0.0.0.0. */
  host?: string;
  metrics?: WebhookMetrics;
}

export interface WebhookServer {
  port: number;
  metrics: WebhookMetrics;
  close(): Promise<void>;
}

const BODY_LIMIT = 3 * 1024 * 1024;

type Admitter = (req: AdmissionRequest) => Promise<Verdict>;

export async function startWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  const metrics = o.metrics ?? new WebhookMetrics();
  const admitters: Record<string, Admitter> = {
    [WebhookPaths.eviction]: (r) => admitEviction(r, o.kube, o.log),
    [WebhookPaths.migration]: (r) => admitMigration(r, o.kube),
    [WebhookPaths.resources]: async (r) => admitResource(r),
  };
  const server = https.createServer(o.material.serverOptions(), (req, res) => void handle(req, res));
  const detach = o.material.attach(server);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://localhost').pathname;
    if (req.method === 'GET' && (path === '/healthz' || path === '/readyz')) return reply(res, 200, 'ok');
    const admitter = admitters[path];
    if (!admitter || req.method !== 'POST') return reply(res, 404, `no admission webhook at ${req.method} ${path}`);
    const timer = metrics.duration.startTimer({ webhook: path });
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      metrics.requests.inc({ webhook: path, result: 'error' });
      timer();
      return reply(res, 400, `not an AdmissionReview: ${(err as Error).message}`);
    }
    const review = AdmissionReview.safeParse(body);
    if (!review.success) {
      metrics.requests.inc({ webhook: path, result: 'error' });
      timer();
      return reply(res, 400, `not an AdmissionReview v1: ${zodReason(review.error)}`);
    }
    const r = review.data.request;
    try {
      const verdict = await admitter(r);
      metrics.requests.inc({ webhook: path, result: verdict.allowed ? 'allowed' : 'denied' });
      if (!verdict.allowed) {
        o.log.info({ webhook: path, uid: r.uid, operation: r.operation, resource: `${r.resource.resource}${r.subResource ? '/' + r.subResource : ''}`, object: `${r.namespace ?? ''}/${r.name ?? ''}`, code: verdict.code }, verdict.message);
      }
      reply(res, 200, reviewResponse(r.uid, verdict));
    } catch (err) {
      // No answer is better than a wrong one: the API server applies the webhook's failurePolicy.
      metrics.requests.inc({ webhook: path, result: 'error' });
      o.log.error({ webhook: path, uid: r.uid, err: describeApiError(err) }, 'admission webhook could not decide');
      reply(res, 500, `admission webhook could not decide: ${describeApiError(err)}`);
    } finally {
      timer();
    }
  }

  server.listen(o.port ?? 8443, o.host ?? '0.0.0.0');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  o.log.info({ port }, 'admission webhook server listening (HTTPS)');
  return {
    port,
    metrics,
    async close() {
      detach();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > BODY_LIMIT) throw new Error(`request body larger than ${BODY_LIMIT} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}
