import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { silentLogger, type Logger } from '../util/log.js';

/** What one check found: passing (with an optional note) or failing (with why). */
export type CheckResult = { ok: true; detail?: string } | { ok: false; reason: string };
/** A named probe; a boolean is shorthand, a throw counts as failing. */
export type Check = () => CheckResult | boolean | Promise<CheckResult | boolean>;
export type Checks = Record<string, Check>;

export const pass = (detail?: string): CheckResult => (detail === undefined ? { ok: true } : { ok: true, detail });
export const fail = (reason: string): CheckResult => ({ ok: false, reason });

export interface HealthServerOptions {
  /** 0 = any free port. */
  port: number;
  /** Default 0.0.0.0 (Prometheus and the kubelet probe from outside the pod). */
  host?: string;
  /** Served together on /metrics; no two may share a metric name. */
  registries?: Registry[];
  checks?: { healthz?: Checks; readyz?: Checks };
  log?: Logger;
}

export interface HealthServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The JSON body of /healthz and /readyz. */
export interface ProbeReport {
  status: 'ok' | 'failing';
  /** Names of the failing checks, so the answer says at a glance what is wrong. */
  failed: string[];
  checks: Record<string, CheckResult>;
}

async function runCheck(check: Check): Promise<CheckResult> {
  try {
    const r = await check();
    if (r === true) return pass();
    if (r === false) return fail('check failed');
    return r;
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
}

/** Runs every check (all of them, so the report names every failure). */
export async function probe(checks: Checks): Promise<ProbeReport> {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((n) => runCheck(checks[n]!)));
  const report: ProbeReport = { status: 'ok', failed: [], checks: {} };
  names.forEach((n, i) => {
    const r = results[i]!;
    report.checks[n] = r;
    if (!r.ok) report.failed.push(n);
  });
  if (report.failed.length) report.status = 'failing';
  return report;
}

function assertDistinct(registries: Registry[]): void {
  const seen = new Set<string>();
  for (const r of registries) {
    for (const m of r.getMetricsAsArray()) {
      const name = (m as unknown as { name: string }).name;
      if (seen.has(name)) throw new Error(`metric ${name} is registered in two registries served on one /metrics`);
      seen.add(name);
    }
  }
}

/**
 * The small HTTP server every Ferry process runs for Prometheus and the
 * kubelet: /metrics in the Prometheus text format, /healthz (liveness) and
 * /readyz (readiness), each 200 or 503 with a JSON report of its checks.
 */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const registries = opts.registries ?? [];
  assertDistinct(registries);
  const log = opts.log ?? silentLogger;
  const probes: Record<string, Checks> = { '/healthz': opts.checks?.healthz ?? {}, '/readyz': opts.checks?.readyz ?? {} };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    if (path === '/metrics') {
      const texts = await Promise.all(registries.map((r) => r.metrics()));
      return send(200, Registry.PROMETHEUS_CONTENT_TYPE, texts.filter((t) => t.trim()).join('\n'));
    }
    const checks = path ? probes[path] : undefined;
    if (checks) {
      const report = await probe(checks);
      return send(report.status === 'ok' ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`);
    }
    return send(404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ url: req.url, err: (err as Error).message }, 'health endpoint failed');
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`internal error: ${(err as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '0.0.0.0';
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  log.info({ port, host }, 'serving /metrics, /healthz and /readyz');
  return {
    url: `http://${shown}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
