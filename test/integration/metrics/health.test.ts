import { connect } from 'nats';
import { Counter, Registry } from 'prom-client';
import { fail, pass, startHealthServer, type HealthServer } from '../../../src/metrics/healthServer.js';
import { controllerReadiness, handlerReadiness, liveness, natsConnectionCheck } from '../../../src/metrics/readiness.js';
import { ControllerMetrics } from '../../../src/metrics/controllerMetrics.js';
import { HandlerMetrics } from '../../../src/metrics/handlerMetrics.js';

let server: HealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function get(url: string) {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), text, json: () => JSON.parse(text) as Record<string, unknown> };
}

describe('/readyz and /healthz', () => {
  test('controller readiness: not ready until its caches sync while leading; a standby is ready; the body names what fails', async () => {
    let leader = false;
    let synced = false;
    let natsUp = true;
    server = await startHealthServer({
      port: 0,
      host: '127.0.0.1',
      checks: {
        healthz: liveness(),
        readyz: controllerReadiness({ nats: () => (natsUp ? pass('connected') : fail('disconnected')), cachesSynced: () => synced, isLeader: () => leader }),
      },
    });
    const standby = await get(`${server.url}/readyz`);
    expect(standby.status).toBe(200);
    expect(standby.type).toBe('application/json');
    expect(standby.json()).toMatchObject({ status: 'ok', failed: [], checks: { leadership: { ok: true, detail: 'standby' } } });

    leader = true;
    const starting = await get(`${server.url}/readyz`);
    expect(starting.status).toBe(503);
    expect(starting.json()).toMatchObject({ status: 'failing', failed: ['caches'], checks: { caches: { ok: false, reason: 'informer caches have not synced yet' } } });

    synced = true;
    expect((await get(`${server.url}/readyz`)).status).toBe(200);

    natsUp = false;
    const cut = await get(`${server.url}/readyz`);
    expect(cut.status).toBe(503);
    expect(cut.json()).toMatchObject({ failed: ['nats'], checks: { nats: { ok: false, reason: 'disconnected' } } });
    // Liveness does not depend on the bus: restarting would not bring NATS back.
    expect((await get(`${server.url}/healthz`)).status).toBe(200);
  });

  test('handler readiness follows its real NATS connection', async () => {
    const nc = await connect({ servers: process.env['NATS_URL'] });
    server = await startHealthServer({ port: 0, host: '127.0.0.1', checks: { readyz: handlerReadiness({ nats: natsConnectionCheck(nc) }) } });
    const up = await get(`${server.url}/readyz`);
    expect(up.status).toBe(200);
    expect(up.json()).toMatchObject({ checks: { nats: { ok: true } } });
    await nc.close();
    const down = await get(`${server.url}/readyz`);
    expect(down.status).toBe(503);
    expect(down.json()).toMatchObject({ failed: ['nats'], checks: { nats: { ok: false, reason: 'NATS connection is closed' } } });
  });

  test('a check that throws fails with its message instead of breaking the endpoint', async () => {
    server = await startHealthServer({
      port: 0,
      host: '127.0.0.1',
      checks: { readyz: { db: () => { throw new Error('boom'); }, ok: () => true } },
    });
    const r = await get(`${server.url}/readyz`);
    expect(r.status).toBe(503);
    expect(r.json()).toEqual({ status: 'failing', failed: ['db'], checks: { db: { ok: false, reason: 'boom' }, ok: { ok: true } } });
  });

  test('unknown paths are 404 and writes are refused', async () => {
    server = await startHealthServer({ port: 0, host: '127.0.0.1' });
    expect((await get(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});

describe('/metrics', () => {
  test('serves the controller and handler registries of one process together', async () => {
    const c = new ControllerMetrics();
    const h = new HandlerMetrics();
    h.attach('node-1', () => ({ activeJobs: 2, jobs: [] }));
    c.setLeader(true);
    server = await startHealthServer({ port: 0, host: '127.0.0.1', registries: [c.registry, h.registry] });
    const r = await get(`${server.url}/metrics`);
    expect(r.text).toMatch(/^ferry_controller_leader 1$/m);
    expect(r.text).toMatch(/^ferry_handler_active_jobs\{node="node-1"\} 2$/m);
  });

  test('refuses to start when two registries would serve the same metric name', async () => {
    const a = new Registry();
    const b = new Registry();
    new Counter({ name: 'ferry_twice_total', help: 'x', registers: [a] });
    new Counter({ name: 'ferry_twice_total', help: 'x', registers: [b] });
    await expect(startHealthServer({ port: 0, host: '127.0.0.1', registries: [a, b] })).rejects.toThrow('ferry_twice_total');
  });
});
