import fc from 'fast-check';
import type { DevCluster } from '../../src/devcluster/index.js';
import { exceedsDepth, MAX_NESTING_DEPTH } from '../../src/devcluster/jsonDepth.js';
import { startFastCluster } from '../integration/devcluster/support.js';

/**
 * The embedded API server's HTTP layer under hostile bodies: huge, truncated,
 * not JSON, deeply nested, and bad patches. Every answer is a 2xx or a 4xx
 * Status with the real server's reason, never a 5xx, and the server keeps
 * serving. fast-check prints the seed and the shrunk input of any failure.
 */
interface Status { kind: string; status: string; reason: string; message: string; code: number }

const PATHS = [
  { method: 'POST', path: '/api/v1/namespaces/default/events' },
  { method: 'PUT', path: '/api/v1/namespaces/default/events/fuzz' },
  { method: 'POST', path: '/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations' },
  { method: 'POST', path: '/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies' },
  { method: 'POST', path: '/apis/ferry.dev/v1alpha1/maintenancewindows' },
  { method: 'DELETE', path: '/api/v1/namespaces/default/events/fuzz' },
] as const;
const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml', 'text/plain'];

const nested = (depth: number) => `{"metadata":{"name":"deep"},"data":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
const body: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
  fc.jsonValue({ maxDepth: 5 }).chain((v) => { const t = JSON.stringify(v); return fc.integer({ min: 0, max: t.length }).map((n) => t.slice(0, n)); }),
  fc.record({ metadata: fc.record({ name: fc.string(), namespace: fc.string(), labels: fc.dictionary(fc.string(), fc.jsonValue()) }, { requiredKeys: [] }), spec: fc.jsonValue({ maxDepth: 3 }), data: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }).map((o) => JSON.stringify({ apiVersion: 'v1', kind: 'Event', ...o })),
  fc.integer({ min: 1, max: 60_000 }).map(nested),
  fc.array(fc.record({ op: fc.constantFrom('add', 'remove', 'replace', 'move', 'copy', 'test', 'bogus'), path: fc.string(), from: fc.string(), value: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }), { maxLength: 6 }).map((ops) => JSON.stringify(ops)),
);

describe('dev API server HTTP layer under hostile bodies', () => {
  let cluster: DevCluster;
  const call = (method: string, path: string, data: string | Buffer, contentType = 'application/json') =>
    fetch(`${cluster.url}${path}`, { method, body: data, headers: { Authorization: `Bearer ${cluster.token}`, 'Content-Type': contentType } });
  const expectClientError = async (r: Response) => {
    const text = await r.text();
    if (r.status >= 500) throw new Error(`${r.status}: ${text.slice(0, 300)}`);
    if (r.status >= 400) {
      const s = JSON.parse(text) as Status;
      expect(s.kind).toBe('Status');
      expect(s.code).toBe(r.status);
      expect(s.message.length).toBeGreaterThan(0);
    }
    return r.status;
  };

  beforeAll(async () => {
    cluster = await startFastCluster();
    await call('POST', '/api/v1/namespaces/default/events', JSON.stringify({ metadata: { name: 'target' }, data: { a: 'b' } }));
  });
  afterAll(() => cluster.close());

  it('answers any body on any write path with 2xx or a 4xx Status', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom(...PATHS), body, fc.constantFrom('application/json', 'application/yaml'), async (p, b, ct) => {
      await expectClientError(await call(p.method, p.path, b, ct));
    }), { numRuns: 150 });
  });

  it('answers any patch, of any patch type, with 2xx or a 4xx Status', async () => {
    await fc.assert(fc.asyncProperty(body, fc.constantFrom(...PATCH_TYPES), async (b, ct) => {
      await expectClientError(await call('PATCH', '/api/v1/namespaces/default/events/target', b, ct));
    }), { numRuns: 150 });
  });

  it('refuses a body nested deeper than its limit as the real server does (400, exceeded max depth)', async () => {
    const r = await call('POST', '/api/v1/namespaces/default/events', nested(100_000));
    expect(r.status).toBe(400);
    const s = (await r.json()) as Status;
    expect(s.reason).toBe('BadRequest');
    expect(s.message).toBe("the request body is not valid JSON: invalid character '[' exceeded max depth");
    expect(exceedsDepth(nested(MAX_NESTING_DEPTH - 5))).toBeUndefined();
    expect(exceedsDepth('{"a":"[[[[[[\\"[[["}', 2)).toBeUndefined();
  });

  it('refuses a body over 3 MiB with 413, and a JSON patch of more than 10000 operations with 413', async () => {
    const big = await call('POST', '/api/v1/namespaces/default/events', Buffer.alloc(3 * 1024 * 1024 + 10, 0x20));
    expect(big.status).toBe(413);
    expect(((await big.json()) as Status).message).toBe('Request entity too large: limit is 3145728');
    const ops = JSON.stringify(Array.from({ length: 10_001 }, () => ({ op: 'test', path: '/kind', value: 'Event' })));
    const r = await call('PATCH', '/api/v1/namespaces/default/events/target', ops, 'application/json-patch+json');
    expect(r.status).toBe(413);
    const s = (await r.json()) as Status;
    expect(s.reason).toBe('RequestEntityTooLarge');
    expect(s.message).toBe('Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001');
  });

  it('is still up and answering afterwards', async () => {
    const r = await fetch(`${cluster.url}/api/v1/namespaces/default/events/target`, { headers: { Authorization: `Bearer ${cluster.token}` } });
    expect(r.status).toBe(200);
    expect((await fetch(`${cluster.url}/readyz`)).status).toBe(200);
  });
});
