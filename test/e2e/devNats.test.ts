import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { devReadiness } from '../../src/cli/commands/dev.js';
import { startHealthServer, type HealthServer } from '../../src/metrics/index.js';
import { connectBus, closeBus } from '../../src/bus/connection.js';
import { requestCommand } from '../../src/bus/rpc.js';
import { recordingLogger, waitFor } from '../integration/bus/helpers.js';

describe('ferry dev keeps its nats-server alive', () => {
  let env: DevEnvironment;
  let health: HealthServer;
  const log = recordingLogger();
  beforeAll(async () => {
    // Its own nats-server (no natsUrl), as `ferry dev` runs it.
    env = await startDevEnvironment({ nodes: 2, vms: 1, log });
    health = await startHealthServer({ port: 0, checks: { readyz: devReadiness(env) } });
  });
  afterAll(async () => {
    await health?.close();
    await env?.stop();
  });

  const readyz = async () => {
    const res = await fetch(`http://127.0.0.1:${health.port}/readyz`);
    return { code: res.status, body: (await res.json()) as { failed: string[]; checks: Record<string, { ok: boolean; reason?: string; detail?: string }> } };
  };

  test('a nats-server killed with -9 is noticed by /readyz, restarted on its port and store, and the handlers answer again', async () => {
    await waitFor(async () => (await readyz()).code === 200, '/readyz to pass at start');
    expect((await readyz()).body.checks['nats']).toMatchObject({ ok: true, detail: expect.stringMatching(/nats-server running .*controller connected/) });
    const pid = env.natsServer!.pid!;
    process.kill(pid, 'SIGKILL');

    const down = await waitFor(async () => {
      const r = await readyz();
      return r.code === 503 ? r : undefined;
    }, '/readyz to fail', 5000);
    expect(down.body.failed).toContain('nats');
    expect(down.body.checks['nats']?.reason).toMatch(/exited on SIGKILL|disconnected from NATS/);
    expect(log.find('nats-server exited; restarting it')[0]?.fields).toMatchObject({ signal: 'SIGKILL' });

    await waitFor(async () => (await readyz()).code === 200, '/readyz to pass after the restart', 15_000);
    expect(env.natsServer!.restarts).toBe(1);
    expect(env.natsServer!.pid).not.toBe(pid);
    const nc = await connectBus({ servers: env.natsUrl, name: 'probe', log: recordingLogger() });
    try {
      await waitFor(async () => (await requestCommand(nc, 'node-1', 'list-jobs', {}).catch(() => undefined))?.node === 'node-1', 'node-1 to answer over the restarted server', 15_000);
    } finally {
      await closeBus(nc);
    }
  }, 60_000);
});
