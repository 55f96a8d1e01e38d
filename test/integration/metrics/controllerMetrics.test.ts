import { connect, type NatsConnection } from 'nats';
import { ManualClock } from '../../../src/util/clock.js';
import { requestCommand, CommandError } from '../../../src/bus/rpc.js';
import { watchHeartbeats } from '../../../src/bus/heartbeat.js';
import { startHandler, type RunningHandler } from '../../../src/handler/handler.js';
import { SimDriver } from '../../../src/hypervisor/sim.js';
import { ControllerMetrics, type ControllerSnapshot, type MigrationView } from '../../../src/metrics/controllerMetrics.js';
import { startHealthServer, type HealthServer } from '../../../src/metrics/healthServer.js';
import { waitingReasonClass } from '../../../src/metrics/admissionReason.js';
import * as why from '../../../src/limits/reasons.js';
import { silentLogger } from '../../../src/util/log.js';
import { parseExposition } from '../../unit/metrics/promText.js';

let server: HealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function scrape(url: string) {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

const m = (name: string, phase: MigrationView['phase'], extra: Partial<MigrationView> = {}): MigrationView => ({ namespace: 'default', name, vmi: `vm-${name}`, phase, ...extra });

function cluster(migrations: MigrationView[]): ControllerSnapshot {
  return {
    migrations,
    limits: { parallelMigrationsPerCluster: 5, parallelOutboundMigrationsPerNode: 2, parallelInboundMigrationsPerNode: 3, bandwidthBudget: 2e9 },
    nodes: [
      { name: 'node-1', nicCapacity: 1.25e9 },
      { name: 'node-2', nicCapacity: 1.25e9 },
      { name: 'node-3', nicCapacity: 2.5e9 },
    ],
  };
}

describe('controller /metrics', () => {
  test('phase counts, per-VMIM outcomes, queue, limits and bandwidth follow the state at each scrape', async () => {
    const metrics = new ControllerMetrics();
    let state = cluster([
      m('a', ''),
      m('b', 'Pending', { priority: 'user' }),
      m('c', 'Pending', { priority: 'evacuation' }),
      m('d', 'Scheduling', { priority: 'user', sourceNode: 'node-1', targetNode: 'node-2', bandwidth: 3e8 }),
      m('e', 'PreparingTarget', { priority: 'user', sourceNode: 'node-1', targetNode: 'node-3', bandwidth: 4e8 }),
      m('f', 'Running', { priority: 'user', sourceNode: 'node-2', targetNode: 'node-3', bandwidth: 5e8, startTimestamp: '2025-06-01T10:00:00Z' }),
      m('g', 'Succeeded', { sourceNode: 'node-1', targetNode: 'node-2', startTimestamp: '2025-06-01T09:00:00Z', endTimestamp: '2025-06-01T09:01:40Z' }),
      m('h', 'Failed', { sourceNode: 'node-3', targetNode: 'node-1', endTimestamp: '2025-06-01T09:30:00Z' }),
    ]);
    let takes = 0;
    metrics.setSnapshotProvider(() => {
      takes++;
      return state;
    });
    server = await startHealthServer({ port: 0, host: '127.0.0.1', registries: [metrics.registry] });

    const x = await scrape(server.url);
    expect(takes).toBe(1); // one snapshot per scrape: the gauges agree with each other
    expect(x.value('kubevirt_vmi_migrations_in_unset_phase')).toBe(1);
    expect(x.value('kubevirt_vmi_migrations_in_pending_phase')).toBe(2);
    expect(x.value('kubevirt_vmi_migrations_in_scheduling_phase')).toBe(1);
    expect(x.value('kubevirt_vmi_migrations_in_running_phase')).toBe(2); // PreparingTarget + Running
    expect(x.find('kubevirt_vmi_migration_succeeded')).toEqual([{ name: 'kubevirt_vmi_migration_succeeded', labels: { vmi: 'vm-g', vmim: 'g', namespace: 'default' }, value: 1 }]);
    expect(x.find('kubevirt_vmi_migration_failed')).toEqual([{ name: 'kubevirt_vmi_migration_failed', labels: { vmi: 'vm-h', vmim: 'h', namespace: 'default' }, value: 1 }]);
    expect(x.value('kubevirt_vmi_migration_start_time_seconds', { migration_name: 'f', name: 'vm-f', node: 'node-2' })).toBe(Date.parse('2025-06-01T10:00:00Z') / 1000);
    expect(x.value('kubevirt_vmi_migration_end_time_seconds', { migration_name: 'g', status: 'succeeded', node: 'node-2' })).toBe(Date.parse('2025-06-01T09:01:40Z') / 1000);
    expect(x.value('kubevirt_vmi_migration_end_time_seconds', { migration_name: 'h', status: 'failed', node: 'node-3' })).toBe(Date.parse('2025-06-01T09:30:00Z') / 1000);

    expect(x.value('ferry_migration_queue_length', { priority: 'evacuation' })).toBe(1);
    expect(x.value('ferry_migration_queue_length', { priority: 'user' })).toBe(1);
    expect(x.value('ferry_migration_queue_length', { priority: 'background' })).toBe(0);

    expect(x.value('ferry_cluster_migrations_active')).toBe(3);
    expect(x.value('ferry_cluster_migrations_limit')).toBe(5);
    expect(x.value('ferry_node_migrations_active', { node: 'node-1', direction: 'outbound' })).toBe(2);
    expect(x.value('ferry_node_migrations_active', { node: 'node-3', direction: 'inbound' })).toBe(2);
    expect(x.value('ferry_node_migrations_active', { node: 'node-1', direction: 'inbound' })).toBe(0); // h is finished
    expect(x.value('ferry_node_migrations_limit', { direction: 'outbound' })).toBe(2);
    expect(x.value('ferry_node_migrations_limit', { direction: 'inbound' })).toBe(3);
    expect(x.value('ferry_node_bandwidth_allocated_bytes_per_second', { node: 'node-1', direction: 'outbound' })).toBe(7e8);
    expect(x.value('ferry_node_bandwidth_allocated_bytes_per_second', { node: 'node-3', direction: 'inbound' })).toBe(9e8);
    expect(x.value('ferry_node_nic_capacity_bytes_per_second', { node: 'node-3' })).toBe(2.5e9);
    expect(x.value('ferry_cluster_bandwidth_allocated_bytes_per_second')).toBe(1.2e9);
    expect(x.value('ferry_cluster_bandwidth_budget_bytes_per_second')).toBe(2e9);

    // The Succeeded VMIM is deleted and f finishes: their series follow.
    state = cluster([m('f', 'Succeeded', { sourceNode: 'node-2', targetNode: 'node-3', endTimestamp: '2025-06-01T10:02:00Z' }), m('h', 'Failed')]);
    const y = await scrape(server.url);
    expect(takes).toBe(2);
    expect(y.find('kubevirt_vmi_migration_succeeded').map((s) => s.labels['vmim'])).toEqual(['f']);
    expect(y.value('kubevirt_vmi_migrations_in_running_phase')).toBe(0);
    expect(y.value('ferry_cluster_bandwidth_allocated_bytes_per_second')).toBe(0);
    expect(y.value('ferry_node_migrations_active', { node: 'node-2', direction: 'outbound' })).toBe(0);
  });

  test('a replica without a snapshot (standby) serves no per-object series', async () => {
    const metrics = new ControllerMetrics();
    metrics.setSnapshotProvider(() => undefined);
    server = await startHealthServer({ port: 0, host: '127.0.0.1', registries: [metrics.registry] });
    const x = await scrape(server.url);
    expect(x.find('kubevirt_vmi_migration_failed')).toEqual([]);
    expect(x.find('ferry_node_migrations_active')).toEqual([]);
    expect(x.value('ferry_controller_leader')).toBe(0);
  });

  test('events: phase transitions, admissions, reconcile errors and leadership', async () => {
    const metrics = new ControllerMetrics();
    server = await startHealthServer({ port: 0, host: '127.0.0.1', registries: [metrics.registry] });
    metrics.phaseTransition('prod', 'db-0', 'Scheduling', 0.2);
    metrics.phaseTransition('prod', 'db-0', 'Running', 3);
    metrics.phaseTransition('prod', 'db-0', 'Succeeded', 42);
    metrics.admission('started', 'admitted');
    metrics.admission('queued', waitingReasonClass(why.outboundLimit('node-1', 2, 2)));
    metrics.admission('queued', waitingReasonClass(why.outboundLimit('node-2', 2, 2)));
    metrics.reconcileError();
    metrics.setLeader(true);

    const x = await scrape(server.url);
    const h = 'kubevirt_vmi_migration_phase_transition_time_from_creation_seconds';
    expect(x.types.get(h)).toBe('histogram');
    expect(x.value(`${h}_count`, { namespace: 'prod', vmi: 'db-0', phase: 'Succeeded' })).toBe(1);
    expect(x.value(`${h}_sum`, { namespace: 'prod', vmi: 'db-0', phase: 'Succeeded' })).toBe(42);
    expect(x.value(`${h}_bucket`, { phase: 'Running', le: '2.5' })).toBe(0);
    expect(x.value(`${h}_bucket`, { phase: 'Running', le: '5' })).toBe(1);
    expect(x.value('ferry_admission_decisions_total', { result: 'started', reason: 'admitted' })).toBe(1);
    expect(x.value('ferry_admission_decisions_total', { result: 'queued', reason: 'outbound-limit' })).toBe(2);
    expect(x.types.get('ferry_reconcile_errors_total')).toBe('counter');
    expect(x.value('ferry_reconcile_errors_total')).toBe(1);
    expect(x.value('ferry_controller_leader')).toBe(1);

    metrics.setLeader(false);
    expect((await scrape(server.url)).value('ferry_controller_leader')).toBe(0);
  });
});

describe('controller /metrics with a real bus', () => {
  let nc: NatsConnection;
  let handler: RunningHandler | undefined;
  let driver: SimDriver | undefined;
  beforeAll(async () => {
    nc = await connect({ servers: process.env['NATS_URL'] });
  });
  afterEach(async () => {
    await handler?.stop();
    await driver?.close();
    handler = undefined;
  });
  afterAll(async () => {
    await nc.drain();
  });

  test('command round trips are timed by command and outcome, as passed to requestCommand', async () => {
    const metrics = new ControllerMetrics();
    server = await startHealthServer({ port: 0, host: '127.0.0.1', registries: [metrics.registry] });
    const node = `metrics-rt-${process.pid}-${Date.now()}`;
    driver = new SimDriver({ node });
    handler = startHandler({ nc, node, driver, log: silentLogger, heartbeatIntervalMs: 60_000 });

    await requestCommand(nc, node, 'list-jobs', {}, { onRoundTrip: metrics.natsRoundTrip });
    await requestCommand(nc, node, 'list-jobs', {}, { onRoundTrip: metrics.natsRoundTrip });
    await expect(requestCommand(nc, `${node}-absent`, 'list-jobs', {}, { onRoundTrip: metrics.natsRoundTrip, timeoutMs: 500 })).rejects.toBeInstanceOf(CommandError);

    const x = await scrape(server.url);
    expect(x.types.get('ferry_nats_command_duration_seconds')).toBe('histogram');
    expect(x.value('ferry_nats_command_duration_seconds_count', { command: 'list-jobs', outcome: 'ok' })).toBe(2);
    expect(x.value('ferry_nats_command_duration_seconds_count', { command: 'list-jobs', outcome: 'error' })).toBe(1);
    const sum = x.value('ferry_nats_command_duration_seconds_sum', { command: 'list-jobs', outcome: 'ok' });
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(2);
  });

  test("a handler's heartbeat age grows while it is silent and is only reported for nodes in the cluster", async () => {
    const clock = new ManualClock(1_000_000);
    const metrics = new ControllerMetrics({ clock });
    metrics.setSnapshotProvider(() => cluster([]));
    server = await startHealthServer({ port: 0, host: '127.0.0.1', registries: [metrics.registry] });
    // The wiring the controller uses: every heartbeat on the bus, stamped on receipt.
    const sub = watchHeartbeats(nc, (b) => metrics.heartbeat(b.node));
    driver = new SimDriver({ node: 'node-2' });
    handler = startHandler({ nc, node: 'node-2', driver, log: silentLogger, heartbeatIntervalMs: 60_000 });
    try {
      for (let i = 0; i < 100 && (await scrape(server.url)).find('ferry_handler_heartbeat_age_seconds').length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect((await scrape(server.url)).value('ferry_handler_heartbeat_age_seconds', { node: 'node-2' })).toBe(0);
      clock.advance(7_500);
      expect((await scrape(server.url)).value('ferry_handler_heartbeat_age_seconds', { node: 'node-2' })).toBe(7.5);
      metrics.heartbeat('node-gone');
      expect((await scrape(server.url)).find('ferry_handler_heartbeat_age_seconds', { node: 'node-gone' })).toEqual([]);
    } finally {
      sub.unsubscribe();
    }
  });
});
