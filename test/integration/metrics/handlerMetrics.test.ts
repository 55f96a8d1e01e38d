import { connect, type NatsConnection } from 'nats';
import { ensureResultsStream } from '../../../src/bus/results.js';
import { requestCommand } from '../../../src/bus/rpc.js';
import { startHandler, type RunningHandler } from '../../../src/handler/handler.js';
import { SimDriver, simAddress } from '../../../src/hypervisor/sim.js';
import { HandlerMetrics } from '../../../src/metrics/handlerMetrics.js';
import { startHealthServer, type HealthServer } from '../../../src/metrics/healthServer.js';
import { silentLogger } from '../../../src/util/log.js';
import { parseExposition } from '../../unit/metrics/promText.js';

let nc: NatsConnection;
let server: HealthServer;
const metrics = new HandlerMetrics();
const handlers: RunningHandler[] = [];
const drivers: SimDriver[] = [];

beforeAll(async () => {
  nc = await connect({ servers: process.env['NATS_URL'] });
  await ensureResultsStream(await nc.jetstreamManager());
  server = await startHealthServer({ port: 0, host: '127.0.0.1', registries: [metrics.registry] });
});
afterAll(async () => {
  for (const h of handlers) await h.stop();
  for (const d of drivers) await d.close();
  await server.close();
  await nc.drain();
});

const unique = (p: string) => `${p}-${process.pid}-${Date.now().toString(36)}`;

async function scrape() {
  const res = await fetch(`${server.url}/metrics`);
  return parseExposition(await res.text());
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test("a running sim migration shows up in KubeVirt's per-VMI migration gauges, labelled with node, namespace and VMI, and leaves them when it ends", async () => {
  const node = unique('src');
  const driver = new SimDriver({ node, tickMs: 20 });
  drivers.push(driver);
  handlers.push(startHandler({ nc, node, driver, log: silentLogger, progressIntervalMs: 50, heartbeatIntervalMs: 60_000, metrics }));
  const uid = unique('uid');
  const ref = { migrationUid: uid, attempt: 1, vmi: 'prod/db-0' };
  const guest = { name: 'prod_db-0', memoryBytes: 2 ** 30, dirtyRate: 8 * 2 ** 20, workingSet: 2 ** 27, zeroFraction: 0 };
  // 1 MiB/s: the guest is still migrating when the test looks.
  await requestCommand(nc, node, 'start-source', {
    ...ref,
    guest,
    targetNode: 'node-dst',
    targetAddress: simAddress('node-dst', uid),
    controls: { bandwidth: 2 ** 20, maxDowntimeMs: 300, autoConverge: false, postCopy: false },
  });

  const labels = { node, namespace: 'prod', name: 'db-0' };
  const x = await until('job statistics in /metrics', async () => {
    const e = await scrape();
    return e.find('kubevirt_vmi_migration_data_processed_bytes', labels)[0]?.value ? e : undefined;
  });
  expect(x.value('kubevirt_vmi_migration_data_total_bytes', labels)).toBeGreaterThan(0);
  const processed = x.value('kubevirt_vmi_migration_data_processed_bytes', labels);
  expect(x.value('kubevirt_vmi_migration_data_remaining_bytes', labels)).toBeGreaterThan(0);
  expect(x.value('kubevirt_vmi_migration_dirty_memory_rate_bytes', labels)).toBe(8 * 2 ** 20);
  expect(x.value('kubevirt_vmi_migration_memory_transfer_rate_bytes', labels)).toBeGreaterThan(0);
  expect(x.value('kubevirt_vmi_migration_memory_transfer_rate_bytes', labels)).toBeLessThanOrEqual(2 ** 20);
  expect(x.value('ferry_handler_active_jobs', { node })).toBe(1);

  // Progress moves the gauges forward.
  await until('more data processed', async () => ((await scrape()).value('kubevirt_vmi_migration_data_processed_bytes', labels) > processed ? true : undefined));

  await requestCommand(nc, node, 'abort', { ...ref, reason: 'test over' });
  const after = await until('the aborted job to leave /metrics', async () => {
    const e = await scrape();
    return e.find('kubevirt_vmi_migration_data_remaining_bytes', labels).length === 0 ? e : undefined;
  });
  expect(after.value('ferry_handler_active_jobs', { node })).toBe(0);
});

test('a stopped handler stops being reported, and its node can be attached again', async () => {
  const node = unique('gone');
  const driver = new SimDriver({ node });
  drivers.push(driver);
  const h = startHandler({ nc, node, driver, log: silentLogger, heartbeatIntervalMs: 60_000, metrics });
  expect((await scrape()).value('ferry_handler_active_jobs', { node })).toBe(0);
  await h.stop();
  expect((await scrape()).find('ferry_handler_active_jobs', { node })).toEqual([]);
  handlers.push(startHandler({ nc, node, driver, log: silentLogger, heartbeatIntervalMs: 60_000, metrics }));
  expect((await scrape()).value('ferry_handler_active_jobs', { node })).toBe(0);
});
