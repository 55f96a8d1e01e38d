import { connect } from 'nats';
import { watchHeartbeats } from '../../src/bus/heartbeat.js';
import { publishResult, consumeResults } from '../../src/bus/results.js';
import { ensureResultsReplicas } from '../../src/bus/resultsReplicas.js';
import { handlerQueue, requestCommand } from '../../src/bus/rpc.js';
import { subjects } from '../../src/bus/subjects.js';
import type { ResultMessage } from '../../src/bus/protocol.js';
import { startHandler, type RunningHandler } from '../../src/handler/handler.js';
import { SimDriver } from '../../src/hypervisor/sim.js';
import { silentLogger } from '../../src/util/log.js';
import { useDeployedNats, type DeployedNats } from './deployedNats.js';
import { existingSeeds, natsAuthSecrets, planNatsAuth, SECRET_NAMES, type NatsAuthPlan } from '../../scripts/lib/natsAuth.js';

/**
 * The NATS server as deployed (the rendered nats.conf ConfigMap plus the
 * generated users) enforces the per-role permissions: the controller drives a
 * node's handler and consumes results; a handler only serves and speaks for
 * its own node.
 */
describe('NATS per-role users', () => {
  const deployed = useDeployedNats(['node-1', 'node-2']);
  let nats: DeployedNats;
  let plan: NatsAuthPlan;
  let url: string;
  const asUser = (seed: string, name: string) => nats.asUser(seed, name);
  const handlerSeed = (node: string) => deployed.handlerSeed(node);

  beforeAll(() => {
    nats = deployed.nats;
    plan = nats.plan;
    url = nats.urls[0]!;
  });

  test('a client without credentials is refused', async () => {
    await expect(connect({ servers: url, reconnect: false, tls: { caFile: nats.caFile } })).rejects.toThrow(/Authorization Violation/i);
    // Nor does a client that does not trust the servers' CA (TLS is required on every client connection).
    await expect(connect({ servers: url, reconnect: false })).rejects.toThrow(/certificate/i);
  });

  test('the controller commands a node\'s handler, which only serves its own node', async () => {
    const controller = await asUser(plan.controller.seed, 'controller');
    const h1 = await asUser(handlerSeed('node-1'), 'handler-node-1');
    const driver = new SimDriver({ node: 'node-1' });
    let handler: RunningHandler | undefined;
    try {
      handler = startHandler({ nc: h1, node: 'node-1', driver, log: silentLogger, heartbeatIntervalMs: 50 });
      await h1.flush();
      const reply = await requestCommand(controller, 'node-1', 'list-jobs', {}, { timeoutMs: 2000 });
      expect(reply).toMatchObject({ ok: true, node: 'node-1', jobs: [] });
    } finally {
      await handler?.stop();
      await driver.close();
    }

    // With node-1's credentials, taking node-2's commands is refused by the server: nobody answers node-2.
    const impostor = h1.subscribe(subjects.nodeCommands('node-2'), { queue: handlerQueue('node-2') });
    const refused = (async () => {
      try {
        for await (const m of impostor) m.respond(new TextEncoder().encode('{}'));
        return 'subscription ended without an error';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    await h1.flush().catch(() => undefined);
    await expect(requestCommand(controller, 'node-2', 'list-jobs', {}, { timeoutMs: 500 })).rejects.toMatchObject({ code: 'unreachable' });
    expect(await refused).toMatch(/Permissions Violation for Subscription to "ferry\.v1\.node\.node-2\.>"/);
  });

  test('a handler\'s heartbeat speaks for its node only', async () => {
    const controller = await asUser(plan.controller.seed, 'controller-beats');
    const h2 = await asUser(handlerSeed('node-2'), 'handler-node-2');
    const heard: string[] = [];
    const sub = watchHeartbeats(controller, (b) => heard.push(b.node), silentLogger);
    await controller.flush();
    const beat = (node: string) => h2.publish(`ferry.v1.heartbeat.${node}`, new TextEncoder().encode(JSON.stringify({ node, driver: 'sim', activeJobs: 0, at: new Date().toISOString() })));
    beat('node-1'); // forged: dropped by the server
    beat('node-2');
    await h2.flush();
    await new Promise((r) => setTimeout(r, 100));
    sub.unsubscribe();
    expect(heard.every((n) => n === 'node-2')).toBe(true);
    expect(heard.length).toBeGreaterThan(0);
  });

  test('the controller keeps the results stream at three replicas on the three servers (--results-replicas 3)', async () => {
    const controller = await asUser(plan.controller.seed, 'controller-replicas');
    expect(await ensureResultsReplicas(await controller.jetstreamManager(), 3)).toBe(3);
    const info = await (await controller.jetstreamManager()).streams.info('FERRY_RESULTS');
    expect(info.config.num_replicas).toBe(3);
    expect([info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)].sort()).toEqual(['ferry-nats-0', 'ferry-nats-1', 'ferry-nats-2']);
  });

  test('a handler publishes a result through JetStream and the controller consumes and acknowledges it', async () => {
    const controller = await asUser(plan.controller.seed, 'controller-results');
    const h1 = await asUser(handlerSeed('node-1'), 'handler-node-1-results');
    const got: ResultMessage[] = [];
    const consumer = await consumeResults(controller, { log: silentLogger, onResult: async (m) => { got.push(m); } });
    try {
      const result: ResultMessage = {
        migrationUid: '7d1c2a54-0b7e-4a55-9d0e-0c7f1f2e3a4b', attempt: 1, vmi: 'default/vm-1', node: 'node-1', outcome: 'completed', mode: 'PreCopy', downtimeMs: 12,
        stats: { phase: 'completed', mode: 'PreCopy', elapsedMs: 5, dataTotal: 10, dataProcessed: 10, dataRemaining: 0, memoryBandwidth: 0, dirtyRate: 0, iteration: 1, autoConvergeThrottle: 0, bandwidthLimit: 0, downtimeMs: 12 },
        at: new Date().toISOString(),
      };
      const ack = await publishResult(h1.jetstream(), result, { ackTimeoutMs: 2000, maxBackoffMs: 200 });
      expect(ack.stream).toBe('FERRY_RESULTS');
      const deadline = Date.now() + 5000;
      while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(got.map((m) => m.migrationUid)).toEqual([result.migrationUid]);
    } finally {
      await consumer.stop();
    }
    // A restarted controller finds its durable consumer and updates it: allowed too.
    const again = await consumeResults(controller, { log: silentLogger, onResult: async (m) => { got.push(m); } });
    await again.stop();
    expect(got).toHaveLength(1);
  });
});

describe('gen-nats-auth', () => {
  test('re-running with the previous Secrets keeps the keys of the nodes still there', () => {
    const first = planNatsAuth(['node-a', 'node-b']);
    const secrets = JSON.parse(JSON.stringify(natsAuthSecrets(first, 'ferry-system'))) as unknown[];
    const second = planNatsAuth(['node-b', 'node-c'], existingSeeds(secrets));
    expect(second.controller.publicKey).toBe(first.controller.publicKey);
    expect(second.handlers.find((h) => h.node === 'node-b')!.seed).toBe(first.handlers.find((h) => h.node === 'node-b')!.seed);
    expect(second.handlers.map((h) => h.node)).toEqual(['node-b', 'node-c']);
    expect(second.handlers.find((h) => h.node === 'node-c')!.publicKey).not.toBe(first.handlers.find((h) => h.node === 'node-a')!.publicKey);
  });

  test('the server config holds public keys only; seeds are in the Secrets the pods mount', () => {
    const plan = planNatsAuth(['node-1']);
    const [server, controller, handlers] = natsAuthSecrets(plan, 'ferry-system') as Array<{ metadata: { name: string }; stringData: Record<string, string> }>;
    expect(server!.metadata.name).toBe(SECRET_NAMES.server);
    expect(server!.stringData['auth.conf']).toContain(plan.controller.publicKey);
    expect(server!.stringData['auth.conf']).not.toContain(plan.controller.seed);
    expect(controller!.stringData['nkey']!.trim()).toBe(plan.controller.seed);
    expect(Object.keys(handlers!.stringData)).toEqual(['node-1.nk']);
  });
});
