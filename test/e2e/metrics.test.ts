import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { ControllerMetrics, HandlerMetrics, liveness, startHealthServer, type HealthServer } from '../../src/metrics/index.js';
import { createVmim, waitForPhase } from '../support/cluster.js';

describe('metrics of a migration through the whole system', () => {
  let env: DevEnvironment;
  let health: HealthServer;
  const metrics = { controller: new ControllerMetrics(), handlers: new HandlerMetrics() };
  beforeAll(async () => {
    env = await startDevEnvironment({ nodes: 3, vms: 3, natsUrl: process.env['NATS_URL']!, metrics, timeScale: 4 });
    health = await startHealthServer({ port: 0, registries: [metrics.controller.registry, metrics.handlers.registry], checks: { healthz: liveness() } });
  });
  afterAll(async () => {
    await health?.close();
    await env?.stop();
  });

  test('a succeeded migration shows up under KubeVirt\'s metric names, with Ferry\'s own beside them', async () => {
    const name = await createVmim(env.kube, 'vm-1');
    await waitForPhase(env.kube, name, ['Succeeded']);
    const text = await (await fetch(`http://127.0.0.1:${health.port}/metrics`)).text();
    expect(text).toMatch(new RegExp(`kubevirt_vmi_migration_succeeded\\{[^}]*vmim="${name}"[^}]*\\} 1`));
    expect(text).toMatch(/kubevirt_vmi_migration_phase_transition_time_from_creation_seconds_count\{[^}]*phase="Succeeded"[^}]*\} 1/);
    expect(text).toMatch(/kubevirt_vmi_migrations_in_running_phase 0/);
    expect(text).toMatch(/ferry_nats_command_duration_seconds_count\{[^}]*command="start-source"[^}]*\} 1/);
    expect(text).toMatch(/ferry_controller_leader 1/);
  });
});
