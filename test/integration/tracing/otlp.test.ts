import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { migrationTraceIds } from '../../../src/tracing/ids.js';
import { MigrationTrace } from '../../../src/tracing/migration.js';
import { otlpTracesUrl, startTracing } from '../../../src/tracing/setup.js';

describe('OTLP export', () => {
  test('the endpoint comes from the flag, else the signal or base environment variable', () => {
    expect(otlpTracesUrl(undefined, {})).toBeUndefined();
    expect(otlpTracesUrl('http://collector:4318', {})).toBe('http://collector:4318/v1/traces');
    expect(otlpTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' })).toBe('http://c:4318/v1/traces');
    expect(otlpTracesUrl(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:9/traces', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe('http://t:9/traces');
    expect(startTracing({ service: 'x' })).toBeUndefined();
  });

  test('a migration\'s spans are POSTed to the collector over OTLP/HTTP', async () => {
    const bodies: string[] = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        bodies.push(`${req.method} ${req.url} ${req.headers['content-type']} ${body}`);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const tracing = startTracing({ service: 'ferry-controller', otlpEndpoint: url })!;
    try {
      const t0 = Date.now();
      const m = new MigrationTrace({ uid: 'uid-otlp', namespace: 'prod', name: 'db-0-migration-x', vmi: 'db-0', createdMs: t0 }, t0);
      m.phase('Pending', t0);
      m.phase('Running', t0 + 10);
      m.end('Failed', t0 + 20, 'target node went away');
    } finally {
      await tracing.shutdown();
      await new Promise<void>((r) => server.close(() => r()));
    }
    const all = bodies.join('\n');
    expect(all).toMatch(/^POST \/v1\/traces application\/json/m);
    expect(all).toContain(migrationTraceIds('uid-otlp').traceId);
    expect(all).toContain('migration prod/db-0');
    expect(all).toContain('target node went away');
    expect(all).toContain('ferry-controller');
  });
});
