import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, nkeyAuthenticator, type NatsConnection } from 'nats';
import { watchHeartbeats } from '../../src/bus/heartbeat.js';
import { publishResult, consumeResults } from '../../src/bus/results.js';
import { handlerQueue, requestCommand } from '../../src/bus/rpc.js';
import { inboxPrefix, subjects } from '../../src/bus/subjects.js';
import type { ResultMessage } from '../../src/bus/protocol.js';
import { startHandler, type RunningHandler } from '../../src/handler/handler.js';
import { SimDriver } from '../../src/hypervisor/sim.js';
import { silentLogger } from '../../src/util/log.js';
import { freePort, startNatsServer, type NatsServerHandle } from '../support/natsServer.js';
import { existingSeeds, natsAuthSecrets, planNatsAuth, renderAuthConf, SECRET_NAMES, type NatsAuthPlan } from '../../scripts/lib/natsAuth.js';
import { findGenerated, render } from './render.js';

/**
 * The NATS server as deployed (the rendered nats.conf ConfigMap plus the
 * generated users) enforces the per-role permissions: the controller drives a
 * node's handler and consumes results; a handler only serves and speaks for
 * its own node.
 */
describe('NATS per-role users', () => {
  let dir: string;
  let server: NatsServerHandle | undefined;
  let url: string;
  let plan: NatsAuthPlan;
  const conns: NatsConnection[] = [];
  const asUser = async (seed: string, name: string) => {
    // Each role replies under its own inbox prefix, as ferry controller and ferry handler connect.
    const node = plan.handlers.find((h) => h.seed === seed)?.node;
    const nc = await connect({ servers: url, name, inboxPrefix: node ? inboxPrefix.handler(node) : inboxPrefix.controller(), authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) });
    conns.push(nc);
    return nc;
  };
  const handlerSeed = (node: string) => plan.handlers.find((h) => h.node === node)!.seed;

  beforeAll(async () => {
    plan = planNatsAuth(['node-1', 'node-2']);
    const natsConf = findGenerated(render('overlays/standalone'), 'ConfigMap', 'ferry-nats-config').data as Record<string, string>;
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-nats-auth-'));
    mkdirSync(path.join(dir, 'auth'));
    // The shipped config, with the volume path replaced by a temporary directory.
    const conf = natsConf['nats.conf']!;
    expect(conf).toContain('store_dir: /data/jetstream');
    writeFileSync(path.join(dir, 'nats.conf'), conf.replace('store_dir: /data/jetstream', `store_dir: ${JSON.stringify(path.join(dir, 'js'))}`));
    writeFileSync(path.join(dir, 'auth', 'auth.conf'), renderAuthConf(plan));
    // Address, port and store are overridden (loopback, free ports, the temporary directory).
    server = await startNatsServer({
      configFile: path.join(dir, 'nats.conf'),
      storeDir: path.join(dir, 'js'),
      extraArgs: ['-m', String(await freePort())],
      env: { ...process.env, SERVER_NAME: 'ferry-nats-test' },
    });
    url = server.url;
  });

  afterAll(async () => {
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a client without credentials is refused', async () => {
    await expect(connect({ servers: url, reconnect: false })).rejects.toThrow(/Authorization Violation/i);
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
