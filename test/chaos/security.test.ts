import { connect, JSONCodec, nkeyAuthenticator, type NatsConnection } from 'nats';
import { ResultMessage } from '../../src/bus/protocol.js';
import { consumeResults, publishResult } from '../../src/bus/results.js';
import { requestCommand } from '../../src/bus/rpc.js';
import { inboxPrefix, subjects } from '../../src/bus/subjects.js';
import { startHandler, type RunningHandler } from '../../src/handler/handler.js';
import { SimDriver } from '../../src/hypervisor/sim.js';
import { silentLogger } from '../../src/util/log.js';
import { startDevCluster } from '../../src/devcluster/index.js';
import type { NatsAuthPlan } from '../../scripts/lib/natsAuth.js';
import { useDeployedNats, type DeployedNats } from '../deploy/deployedNats.js';

/**
 * What one node's credentials can do to another, on the NATS server as
 * deployed (deploy/'s nats.conf with generated per-role users): a handler
 * cannot command another node, read results, or publish as the controller,
 * and nobody gets in without credentials.
 */
const json = JSONCodec<unknown>();
const enc = (v: unknown) => json.encode(v);

describe('security: one node\'s handler credentials against another node', () => {
  const deployed = useDeployedNats(['node-1', 'node-2']);
  let nats: DeployedNats;
  let plan: NatsAuthPlan;
  let url: string;
  const asUser = (seed: string, name: string) => nats.asUser(seed, name);
  const handlerSeed = (node: string) => deployed.handlerSeed(node);
  /** The first asynchronous permission error the server sends this connection. */
  const permissionError = async (nc: NatsConnection, timeoutMs = 2000) => {
    const deadline = Date.now() + timeoutMs;
    const it = nc.status()[Symbol.asyncIterator]();
    while (Date.now() < deadline) {
      const next = await Promise.race([it.next(), new Promise<undefined>((r) => setTimeout(() => r(undefined), deadline - Date.now()))]);
      if (!next || next.done) break;
      const ctx = (next.value as { permissionContext?: { operation: string; subject: string } }).permissionContext;
      if (next.value.data === 'PERMISSIONS_VIOLATION' && ctx) return `Permissions Violation for ${ctx.operation === 'publish' ? 'Publish' : 'Subscription'} to "${ctx.subject}"`;
    }
    return undefined;
  };

  beforeAll(() => {
    nats = deployed.nats;
    plan = nats.plan;
    url = nats.urls[0]!;
  });

  test('an unauthenticated client and a client with an unknown key are refused', async () => {
    await expect(connect({ servers: url, reconnect: false, tls: { caFile: nats.caFile } })).rejects.toThrow(/Authorization Violation/i);
    const stranger = 'SUAGMJH5XLGZKQQWAWKRZJIGMOU4HPFUYLXJMXOO5NLFEO2OOQJ5LPRDPM'; // a valid user seed the server does not know
    await expect(connect({ servers: url, reconnect: false, tls: { caFile: nats.caFile }, authenticator: nkeyAuthenticator(new TextEncoder().encode(stranger)) })).rejects.toThrow(/Authorization Violation/i);
  });

  test('node-1\'s handler cannot command node-2: the server drops the command and says why', async () => {
    const h2 = await asUser(handlerSeed('node-2'), 'handler-node-2');
    const driver = new SimDriver({ node: 'node-2' });
    const handler: RunningHandler = startHandler({ nc: h2, node: 'node-2', driver, log: silentLogger });
    try {
      await h2.flush();
      const h1 = await asUser(handlerSeed('node-1'), 'handler-node-1');
      const denied = permissionError(h1);
      await expect(requestCommand(h1, 'node-2', 'abort', { migrationUid: 'u', attempt: 1, vmi: 'default/vm-1', reason: 'forged' }, { timeoutMs: 500 })).rejects.toMatchObject({ code: expect.stringMatching(/timeout|unreachable/) });
      expect(await denied).toMatch(/Permissions Violation for Publish to "ferry\.v1\.node\.node-2\.abort"/);
    } finally {
      await handler.stop();
      await driver.close();
    }
  });

  test('node-1\'s handler cannot publish as the controller (commands, stream changes, consumer acks)', async () => {
    const h1 = await asUser(handlerSeed('node-1'), 'handler-node-1-ctl');
    for (const subject of [subjects.command('node-1', 'start-source'), '$JS.API.STREAM.DELETE.FERRY_RESULTS', '$JS.API.CONSUMER.DELETE.FERRY_RESULTS.ferry-controller', '$JS.ACK.FERRY_RESULTS.ferry-controller.1.1.1.1.0']) {
      const denied = permissionError(h1);
      h1.publish(subject, enc({}));
      expect(await denied).toContain(`Permissions Violation for Publish to "${subject}"`);
    }
  });

  test('node-1\'s handler cannot read the controller\'s or node-2\'s replies (results are delivered to the controller\'s inbox)', async () => {
    const h1 = await asUser(handlerSeed('node-1'), 'handler-node-1-inbox');
    for (const subject of ['_INBOX.>', `${inboxPrefix.controller()}.>`, `${inboxPrefix.handler('node-2')}.>`]) {
      const denied = permissionError(h1);
      const sub = h1.subscribe(subject);
      expect(await denied).toBe(`Permissions Violation for Subscription to "${subject}"`);
      sub.unsubscribe();
    }
  });

  test('node-1\'s handler cannot publish a result under node-2\'s name; under its own, the consumer hands the controller the node it came from', async () => {
    const controller = await asUser(plan.controller.seed, 'controller-sec-s2');
    const h1 = await asUser(handlerSeed('node-1'), 'handler-node-1-forge');
    const origins: Array<{ node: string; subjectNode: string | undefined }> = [];
    const consumer = await consumeResults(controller, { log: silentLogger, onResult: async (r, o) => { if (r.migrationUid === 'sec-s2') origins.push({ node: r.node, subjectNode: o.subjectNode }); } });
    try {
      const forged = ResultMessage.parse({
        migrationUid: 'sec-s2', attempt: 1, vmi: 'default/vm-2', node: 'node-2', outcome: 'completed', mode: 'PreCopy',
        stats: { phase: 'completed', mode: 'PreCopy', elapsedMs: 1, dataTotal: 1, dataProcessed: 1, dataRemaining: 0, memoryBandwidth: 0, dirtyRate: 0, iteration: 1, autoConvergeThrottle: 0, bandwidthLimit: 0 },
        at: new Date().toISOString(),
      });
      const denied = permissionError(h1);
      h1.publish(subjects.result('sec-s2', 'node-2'), enc(forged));
      expect(await denied).toContain(`Permissions Violation for Publish to "${subjects.result('sec-s2', 'node-2')}"`);
      // Under its own name the server takes it, and the consumer drops the body naming node-2.
      await h1.jetstream().publish(subjects.result('sec-s2', 'node-1'), enc(forged));
      await publishResult(h1.jetstream(), { ...forged, node: 'node-1' }, { ackTimeoutMs: 2000 });
      const deadline = Date.now() + 5000;
      while (origins.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 300));
      expect(origins).toEqual([{ node: 'node-1', subjectNode: 'node-1' }]);
    } finally {
      await consumer.stop();
    }
  });

  test('node-1\'s handler cannot read results: not from the subjects, not from the stream', async () => {
    const controller = await asUser(plan.controller.seed, 'controller-sec');
    const h1 = await asUser(handlerSeed('node-1'), 'handler-node-1-read');
    const h2 = await asUser(handlerSeed('node-2'), 'handler-node-2-pub');
    const consumer = await consumeResults(controller, { log: silentLogger, onResult: async () => undefined });
    try {
      const deniedSub = permissionError(h1);
      const snoop = h1.subscribe(subjects.allResults());
      expect(await deniedSub).toMatch(/Permissions Violation for Subscription to "ferry\.v1\.result\.>"/);
      snoop.unsubscribe();
      const result = ResultMessage.parse({
        migrationUid: 'sec-1', attempt: 1, vmi: 'default/vm-2', node: 'node-2', outcome: 'completed', mode: 'PreCopy',
        stats: { phase: 'completed', mode: 'PreCopy', elapsedMs: 1, dataTotal: 1, dataProcessed: 1, dataRemaining: 0, memoryBandwidth: 0, dirtyRate: 0, iteration: 1, autoConvergeThrottle: 0, bandwidthLimit: 0 },
        at: new Date().toISOString(),
      });
      await publishResult(h2.jetstream(), result, { ackTimeoutMs: 2000 });
      const deniedGet = permissionError(h1);
      h1.publish('$JS.API.STREAM.MSG.GET.FERRY_RESULTS', enc({ last_by_subj: subjects.result('sec-1', 'node-2') }));
      expect(await deniedGet).toContain('Permissions Violation for Publish to "$JS.API.STREAM.MSG.GET.FERRY_RESULTS"');
    } finally {
      await consumer.stop();
    }
  });
});

describe('security: the API server refuses clients without a valid token', () => {
  it('answers 401 to a wrong token and 403 to no token (anonymous: discovery and health only)', async () => {
    const cluster = await startDevCluster({ rbac: true });
    try {
      const pods = `${cluster.url}/api/v1/namespaces/default/pods`;
      const wrong = await fetch(pods, { headers: { Authorization: 'Bearer not-the-token' } });
      expect(wrong.status).toBe(401);
      expect(((await wrong.json()) as { reason: string }).reason).toBe('Unauthorized');
      const anonymous = await fetch(pods);
      expect(anonymous.status).toBe(403);
      expect(((await anonymous.json()) as { message: string }).message).toMatch(/system:anonymous/);
      expect((await fetch(`${cluster.url}/version`)).status).toBe(200);
      expect((await fetch(pods, { headers: { Authorization: `Bearer ${cluster.token}` } })).status).toBe(200);
    } finally {
      await cluster.close();
    }
  });
});
