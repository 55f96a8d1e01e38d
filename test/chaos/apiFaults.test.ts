import { ApiFaults } from '../../src/devcluster/faults.js';
import type { DevCluster } from '../../src/devcluster/index.js';
import { startFastCluster } from '../integration/devcluster/support.js';

/** The embedded API server's fault mode, seen from a client over real HTTP. */
describe('API fault injection', () => {
  let cluster: DevCluster;
  let faults: ApiFaults;
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${cluster.url}${path}`, { ...init, headers: { Authorization: `Bearer ${cluster.token}`, ...(init.headers ?? {}) } });

  beforeAll(async () => {
    faults = new ApiFaults(7);
    cluster = await startFastCluster({ faults });
    cluster.store.create('nodes', { metadata: { name: 'node-1' } });
  });
  afterAll(() => cluster.close());
  afterEach(() => faults.disable());

  it('answers nothing unusual while disabled', async () => {
    const r = await call('/api/v1/nodes/node-1');
    expect(r.status).toBe(200);
  });

  it('turns updates into 409 Conflict with the real wording, and leaves the object untouched', async () => {
    faults.enable({ conflict: 1 });
    const r = await call('/api/v1/nodes/node-1', { method: 'PATCH', headers: { 'Content-Type': 'application/merge-patch+json' }, body: JSON.stringify({ metadata: { labels: { a: 'b' } } }) });
    expect(r.status).toBe(409);
    const body = (await r.json()) as { reason: string; message: string };
    expect(body.reason).toBe('Conflict');
    expect(body.message).toBe('Operation cannot be fulfilled on nodes "node-1": the object has been modified; please apply your changes to the latest version and try again');
    faults.disable();
    const node = (await (await call('/api/v1/nodes/node-1')).json()) as { metadata: { labels?: Record<string, string> } };
    expect(node.metadata.labels?.['a']).toBeUndefined();
    expect(faults.counts.conflict).toBe(1);
  });

  it('throttles with 429 and Retry-After, and fails with 500', async () => {
    faults.enable({ throttle: 1 });
    const t = await call('/api/v1/nodes');
    expect(t.status).toBe(429);
    expect(t.headers.get('retry-after')).toBe('1');
    expect(((await t.json()) as { reason: string }).reason).toBe('TooManyRequests');
    faults.enable({ internal: 1 });
    const i = await call('/api/v1/nodes');
    expect(i.status).toBe(500);
    expect(((await i.json()) as { message: string }).message).toMatch(/^Internal error occurred: /);
  });

  it('slows answers down', async () => {
    faults.enable({ slow: 1, slowMs: [300, 300] });
    const t0 = Date.now();
    expect((await call('/api/v1/nodes')).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('answers a resumed watch with 410 Gone as an ERROR event', async () => {
    faults.enable({ gone: 1 });
    const r = await call('/api/v1/nodes?watch=true&resourceVersion=1');
    const text = await r.text();
    const ev = JSON.parse(text.trim()) as { type: string; object: { code: number; reason: string; message: string } };
    expect(ev.type).toBe('ERROR');
    expect(ev.object.code).toBe(410);
    expect(ev.object.reason).toBe('Expired');
    expect(ev.object.message).toMatch(/^too old resource version: 1/);
  });

  it('closes watch streams under the client, and delays their events in order', async () => {
    faults.enable({ watchClose: 1, watchCloseMs: [900, 900], delayEvents: 1, delayMs: [150, 150] });
    const t0 = Date.now();
    const r = await call('/api/v1/nodes?watch=true');
    cluster.store.create('nodes', { metadata: { name: 'node-2' } });
    cluster.store.create('nodes', { metadata: { name: 'node-3' } });
    const text = await r.text(); // ends when the server closes the stream
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(890);
    expect(elapsed).toBeLessThan(5000);
    const names = text.trim().split('\n').map((l) => (JSON.parse(l) as { object: { metadata: { name: string } } }).object.metadata.name);
    expect(names).toEqual(['node-1', 'node-2', 'node-3']);
  });

  it('never touches discovery, health or Leases', async () => {
    faults.enable({ throttle: 1, internal: 1 });
    expect((await call('/version')).status).toBe(200);
    expect((await call('/api')).status).toBe(200);
    expect((await call('/apis/coordination.k8s.io/v1/namespaces/default/leases')).status).toBe(200);
  });
});

describe('API fault injection: open watches', () => {
  it('closes watches that were open before the faults started', async () => {
    const faults = new ApiFaults(1);
    const cluster = await startFastCluster({ faults });
    try {
      const r = await fetch(`${cluster.url}/api/v1/nodes?watch=true`, { headers: { Authorization: `Bearer ${cluster.token}` } });
      const ended = r.text();
      await new Promise((res) => setTimeout(res, 50));
      expect(faults.closeOpenWatches(1)).toBe(1);
      await expect(ended).resolves.toBe('');
      expect(faults.counts['watch-close']).toBe(1);
    } finally {
      await cluster.close();
    }
  });
});
