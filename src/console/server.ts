import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { charts } from '../../statecharts/index.js';
import type { KubeClient } from '../kube/client.js';
import { systemClock, type Clock, type TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { clientWithToken, ConsoleActionSchema, runAction, type NodeDrainOps } from './actions.js';
import type { ConsoleSnapshot } from './model.js';
import { nodeDrainOps } from './nodeOps.js';
import { buildSnapshot, type DrainMemory } from './snapshot.js';
import { startClusterWatch, type ClusterWatch } from './watch.js';
import { migrationTraceIds } from '../tracing/ids.js';
import type { TraceStore } from '../tracing/store.js';

/**
 * The web console's server: the page and its assets, one Server-Sent Events
 * stream of snapshots fed by watches (the page never polls), the statecharts,
 * and the actions, made with the user's credentials.
 */

export interface ConsoleOptions {
  kube: KubeClient;
  /** 0 = any free port. */
  port: number;
  /** Default 127.0.0.1: the console acts with the user's credentials, so it is not for the network. */
  host?: string;
  log: Logger;
  clock?: Clock;
  /** The drain taint (KubeVirt's nodeDrainTaintKey). */
  taintKey?: string;
  /** Coalesce watch events into at most one snapshot per this many ms. */
  throttleMs?: number;
  nodeOps?: NodeDrainOps;
  /** Spans of this process's migrations (`ferry dev`), for a migration's span timeline. */
  traces?: TraceStore;
}

export interface ConsoleServer {
  url: string;
  port: number;
  /** The latest snapshot sent (tests). */
  snapshot(): ConsoleSnapshot;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
};

/** dist/console/ beside the bundle (installed CLI), or the build's output seen from the sources. */
function assetDir(): string {
  const candidates = ['../console/', '../../dist/console/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const found = candidates.find((d) => existsSync(path.join(d, 'index.html')));
  if (!found) throw new Error(`the console's page is not built (looked in ${candidates.join(', ')}): run \`npm run build\``);
  return found;
}

const MAX_BODY = 16 * 1024;

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

export async function startConsole(opts: ConsoleOptions): Promise<ConsoleServer> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log.child({ component: 'console' });
  const assets = assetDir();
  const taintKey = opts.taintKey ?? 'kubevirt.io/drain';
  const nodeOps = opts.nodeOps ?? nodeDrainOps(() => clock.now());
  const drains = new Map<string, DrainMemory>();
  const clients = new Set<ServerResponse>();
  const server = opts.kube.kc.getCurrentCluster()?.server ?? '';
  let current: ConsoleSnapshot = { at: new Date(clock.now()).toISOString(), server, nodes: [], migrations: [], drains: [], runbooks: [] };
  let currentJson = '';
  let pending: TimerHandle | undefined;
  let closed = false;

  let watch: ClusterWatch | undefined;
  const publish = () => {
    pending = undefined;
    if (closed || !watch) return;
    current = buildSnapshot(watch.objects(), { now: clock.now(), server, taintKey, drains });
    // `at` changes every time; send only when something else did.
    const body = JSON.stringify({ ...current, at: '' });
    if (body === currentJson) return;
    currentJson = body;
    const frame = `event: snapshot\ndata: ${JSON.stringify(current)}\n\n`;
    for (const c of clients) c.write(frame);
  };
  const changed = () => {
    if (pending === undefined && !closed) pending = clock.setTimeout(publish, opts.throttleMs ?? 200);
  };
  watch = await startClusterWatch(opts.kube, log, changed);
  const cluster = watch;
  publish();
  // Predicted ends move with the clock even when no object changes.
  let tick: TimerHandle | undefined;
  const ticker = () => {
    changed();
    tick = clock.setTimeout(ticker, 5000);
  };
  tick = clock.setTimeout(ticker, 5000);

  const http = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.warn({ err: String(err), url: req.url }, 'console request failed');
      if (!res.headersSent) json(res, 500, { ok: false, status: 500, message: String((err as Error).message ?? err) });
      else res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    if (req.method === 'GET' && url.pathname === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(current)}\n\n`);
      const unavailable = cluster.unavailable();
      if (unavailable.length > 0) res.write(`event: unavailable\ndata: ${JSON.stringify(unavailable)}\n\n`);
      clients.add(res);
      // A comment now and then keeps port-forwards and proxies from closing an idle stream.
      const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      req.once('close', () => {
        clearInterval(keepAlive);
        clients.delete(res);
      });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/api/statecharts') {
      json(res, 200, charts.map((c) => ({ name: c.name, title: c.title, chart: c.describe() })));
      return;
    }
    const traceOf = /^\/api\/traces\/([A-Za-z0-9-]{1,64})$/.exec(url.pathname);
    if (req.method === 'GET' && traceOf) {
      // Only `ferry dev` keeps spans in-process; elsewhere they are in the OTLP backend.
      if (!opts.traces) return json(res, 404, { ok: false, status: 404, message: 'this console keeps no traces (spans go to the OTLP collector)' });
      return json(res, 200, opts.traces.spans(migrationTraceIds(traceOf[1]!).traceId));
    }
    if (url.pathname.startsWith('/api/actions')) {
      if (req.method !== 'POST') return json(res, 405, { ok: false, status: 405, message: 'POST only' });
      // Another site open in the same browser must not be able to act with the user's credentials:
      // a JSON body forces a CORS preflight (which this server never grants), and the Origin must be this page's.
      const origin = req.headers.origin;
      if (!/^application\/json\b/.test(req.headers['content-type'] ?? '') || (origin !== undefined && origin !== `http://${req.headers.host}`)) {
        return json(res, 403, { ok: false, status: 403, message: 'cross-site request refused' });
      }
      let parsedBody: unknown;
      try {
        parsedBody = JSON.parse(await readBody(req));
      } catch (err) {
        return json(res, 400, { ok: false, status: 400, message: `bad request: ${(err as Error).message}` });
      }
      const a = ConsoleActionSchema.safeParse(parsedBody);
      if (!a.success) return json(res, 400, { ok: false, status: 400, message: `bad action: ${a.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` });
      const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const kube = bearer ? clientWithToken(opts.kube, bearer) : opts.kube;
      const result = await runAction(kube, a.data, nodeOps);
      log.info({ action: a.data, ok: result.ok, ...(result.ok ? {} : { status: result.status, refusal: result.message }) }, result.ok ? 'console action done' : 'console action refused');
      return json(res, result.ok ? 200 : result.status, result);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { ok: false, status: 405, message: 'GET only' });
    const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname.slice(1));
    const file = path.resolve(assets, rel);
    if (!file.startsWith(assets) || !existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(await readFile(file));
  }

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    port,
    snapshot: () => current,
    async close() {
      closed = true;
      if (pending !== undefined) clock.clearTimeout(pending);
      if (tick !== undefined) clock.clearTimeout(tick);
      for (const c of clients) c.end();
      clients.clear();
      await cluster.stop();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
    },
  };
}
