import { JSONCodec, type NatsConnection, type Subscription } from 'nats';
import { COMMANDS, subjects, type Command } from '../../../src/bus/subjects.js';
import type { CommandRequest } from '../../../src/bus/protocol.js';
import { CommandError, HandlerError, requestCommand, serveCommands, type CommandHandlers } from '../../../src/bus/rpc.js';
import { connectTest, recordingLogger, unique } from './helpers.js';

const json = JSONCodec<unknown>();
let nc: NatsConnection;
const subs: Subscription[] = [];

beforeAll(async () => { nc = await connectTest(); });
afterEach(() => { for (const s of subs.splice(0)) s.unsubscribe(); });
afterAll(async () => { await nc.drain(); });

const ref = (uid: string) => ({ migrationUid: uid, attempt: 1, vmi: 'default/vm-a' });
const guest = { name: 'default_vm-a', memoryBytes: 2 ** 30 };
const controls = { bandwidth: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false };

function sampleRequests(uid: string): { [C in Command]: CommandRequest<C> } {
  return {
    'prepare-target': { ...ref(uid), guest, sourceNode: 'node-src' },
    'start-source': { ...ref(uid), guest, targetNode: 'node-dst', targetAddress: 'tcp://10.0.0.2:49152', controls },
    'finish-target': { ...ref(uid), domain: guest.name },
    abort: { ...ref(uid), reason: 'user deleted the migration' },
    'set-bandwidth': { ...ref(uid), bytesPerSecond: 64 * 2 ** 20 },
    'set-downtime': { ...ref(uid), maxDowntimeMs: 500 },
    'post-copy': ref(uid),
    'list-jobs': {},
    'forget-job': ref(uid),
  };
}

/** Handlers whose replies are computed from the request, so a round trip proves the payload arrived intact. */
function echoHandlers(node: string, calls: Array<[Command, unknown]>): CommandHandlers {
  const seen = <C extends Command>(c: C, req: CommandRequest<C>) => { calls.push([c, req]); };
  return {
    'prepare-target': async (r) => { seen('prepare-target', r); return { ok: true, address: `tcp://${node}/${r.migrationUid}/${r.guest.name}` }; },
    'start-source': async (r) => { seen('start-source', r); return { ok: true, state: r.controls.postCopy ? 'running' : 'started' }; },
    'finish-target': async (r) => { seen('finish-target', r); return { ok: true, domainState: `running:${r.domain}` }; },
    abort: async (r) => { seen('abort', r); return { ok: true, state: r.reason.includes('deleted') ? 'aborting' : 'not-found' }; },
    'set-bandwidth': async (r) => { seen('set-bandwidth', r); return { ok: true }; },
    'set-downtime': async (r) => { seen('set-downtime', r); return { ok: true }; },
    'post-copy': async (r) => { seen('post-copy', r); return { ok: true }; },
    'list-jobs': async (r) => {
      seen('list-jobs', r);
      return { ok: true, node, jobs: [], domains: [{ name: guest.name, state: 'running', memoryBytes: guest.memoryBytes }] };
    },
    'forget-job': async (r) => { seen('forget-job', r); return { ok: true, forgotten: r.attempt === 1 }; },
  };
}

describe('command request/reply', () => {
  test('every command reaches the handler of its node with its payload and returns its typed reply', async () => {
    const node = unique('rpc-node');
    const uid = unique('uid');
    const calls: Array<[Command, unknown]> = [];
    subs.push(serveCommands(nc, node, echoHandlers(node, calls), recordingLogger()));
    const reqs = sampleRequests(uid);

    expect(await requestCommand(nc, node, 'prepare-target', reqs['prepare-target'])).toEqual({ ok: true, address: `tcp://${node}/${uid}/default_vm-a` });
    expect(await requestCommand(nc, node, 'start-source', reqs['start-source'])).toEqual({ ok: true, state: 'started' });
    expect(await requestCommand(nc, node, 'finish-target', reqs['finish-target'])).toEqual({ ok: true, domainState: 'running:default_vm-a' });
    expect(await requestCommand(nc, node, 'abort', reqs.abort)).toEqual({ ok: true, state: 'aborting' });
    expect(await requestCommand(nc, node, 'set-bandwidth', reqs['set-bandwidth'])).toEqual({ ok: true });
    expect(await requestCommand(nc, node, 'set-downtime', reqs['set-downtime'])).toEqual({ ok: true });
    expect(await requestCommand(nc, node, 'post-copy', reqs['post-copy'])).toEqual({ ok: true });
    const list = await requestCommand(nc, node, 'list-jobs', {});
    expect(list.node).toBe(node);
    expect(list.domains).toEqual([{ name: 'default_vm-a', state: 'running', memoryBytes: 2 ** 30 }]);
    expect(await requestCommand(nc, node, 'forget-job', reqs['forget-job'])).toEqual({ ok: true, forgotten: true });

    expect(calls.map(([c]) => c)).toEqual([...COMMANDS]);
    for (const [c, req] of calls) expect(req).toEqual(reqs[c]);
  });

  test('node names with dots are addressed correctly', async () => {
    const node = `${unique('rpc')}.example.internal`;
    const calls: Array<[Command, unknown]> = [];
    subs.push(serveCommands(nc, node, echoHandlers(node, calls), recordingLogger()));
    expect((await requestCommand(nc, node, 'list-jobs', {})).node).toBe(node);
  });

  test('an invalid request is answered bad-request with the reason, and the handler never runs', async () => {
    const node = unique('rpc-node');
    const calls: Array<[Command, unknown]> = [];
    const log = recordingLogger();
    subs.push(serveCommands(nc, node, echoHandlers(node, calls), log));

    const raw = await nc.request(subjects.command(node, 'set-bandwidth'), json.encode({ ...ref('u1'), bytesPerSecond: -5 }), { timeout: 2000 });
    const reply = json.decode(raw.data) as { ok: boolean; code: string; error: string };
    expect(reply.ok).toBe(false);
    expect(reply.code).toBe('bad-request');
    expect(reply.error).toMatch(/bytesPerSecond/);

    const notJson = json.decode((await nc.request(subjects.command(node, 'abort'), new TextEncoder().encode('{oops'), { timeout: 2000 })).data);
    expect(notJson).toMatchObject({ ok: false, code: 'bad-request' });

    expect(calls).toEqual([]);
    expect(log.find('command refused: set-bandwidth')[0]?.fields).toMatchObject({ node, code: 'bad-request' });
  });

  test('the controller refuses to send an invalid request at all', async () => {
    const node = unique('rpc-node');
    const calls: Array<[Command, unknown]> = [];
    subs.push(serveCommands(nc, node, echoHandlers(node, calls), recordingLogger()));
    const bad = { ...ref('u2'), maxDowntimeMs: 0 } as CommandRequest<'set-downtime'>;
    await expect(requestCommand(nc, node, 'set-downtime', bad)).rejects.toMatchObject({ code: 'bad-request', message: expect.stringMatching(/maxDowntimeMs/) });
    expect(calls).toEqual([]);
  });

  test('a node without a handler is reported unreachable at once, not after the timeout', async () => {
    const node = unique('nobody-home');
    const started = Date.now();
    const err = await requestCommand(nc, node, 'list-jobs', {}, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err).toMatchObject({ code: 'unreachable', node, command: 'list-jobs' });
    expect((err as Error).message).toContain(node);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test('a handler that does not answer in time gives a timeout naming the node', async () => {
    const node = unique('slow-node');
    subs.push(nc.subscribe(subjects.nodeCommands(node))); // listens, never answers
    const err = await requestCommand(nc, node, 'list-jobs', {}, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'timeout', node });
    expect((err as Error).message).toMatch(new RegExp(`${node}.*200 ms`));
  });

  test('a reply that fits neither the reply schema nor ErrorReply is reported as malformed', async () => {
    const node = unique('odd-node');
    subs.push(nc.subscribe(subjects.nodeCommands(node), { callback: (_e, m) => m.respond(json.encode({ ok: true, adress: 'typo' })) }));
    await expect(requestCommand(nc, node, 'prepare-target', sampleRequests('u3')['prepare-target'])).rejects.toMatchObject({
      code: 'malformed-reply',
      message: expect.stringMatching(new RegExp(`^malformed reply from handler ${node} to prepare-target: address`)),
    });
  });

  test("a handler's refusal surfaces as a CommandError with its code and message", async () => {
    const node = unique('rpc-node');
    const handlers = echoHandlers(node, []);
    handlers['start-source'] = async () => { throw new HandlerError('conflict', 'default_vm-a is already migrating'); };
    handlers['post-copy'] = async () => { throw new Error('libvirt connection reset'); };
    subs.push(serveCommands(nc, node, handlers, recordingLogger()));
    const reqs = sampleRequests(unique('uid'));
    await expect(requestCommand(nc, node, 'start-source', reqs['start-source'])).rejects.toMatchObject({
      code: 'conflict', node, command: 'start-source', message: expect.stringContaining('already migrating'),
    });
    await expect(requestCommand(nc, node, 'post-copy', reqs['post-copy'])).rejects.toMatchObject({
      code: 'internal', message: expect.stringContaining('libvirt connection reset'),
    });
  });

  test('a handler returning an invalid reply answers internal instead of sending it', async () => {
    const node = unique('rpc-node');
    const handlers = echoHandlers(node, []);
    handlers['finish-target'] = async () => ({ ok: true }) as never;
    subs.push(serveCommands(nc, node, handlers, recordingLogger()));
    await expect(requestCommand(nc, node, 'finish-target', sampleRequests('u4')['finish-target'])).rejects.toMatchObject({
      code: 'internal', message: expect.stringContaining('domainState'),
    });
  });

  test('round-trip times are reported for answered and failed requests', async () => {
    const node = unique('rpc-node');
    subs.push(serveCommands(nc, node, echoHandlers(node, []), recordingLogger()));
    const seen: Array<[Command, number, boolean]> = [];
    const onRoundTrip = (c: Command, ms: number, ok: boolean) => { seen.push([c, ms, ok]); };
    await requestCommand(nc, node, 'list-jobs', {}, { onRoundTrip });
    await requestCommand(nc, unique('gone'), 'list-jobs', {}, { onRoundTrip }).catch(() => undefined);
    expect(seen.map(([c, , ok]) => [c, ok])).toEqual([['list-jobs', true], ['list-jobs', false]]);
    for (const [, ms] of seen) expect(ms).toBeGreaterThanOrEqual(0);
  });

  test('two handlers serving one node (old and restarted) answer each command once', async () => {
    const node = unique('rpc-node');
    const calls: Array<[Command, unknown]> = [];
    subs.push(serveCommands(nc, node, echoHandlers(node, calls), recordingLogger()));
    subs.push(serveCommands(nc, node, echoHandlers(node, calls), recordingLogger()));
    for (let i = 0; i < 10; i++) await requestCommand(nc, node, 'post-copy', ref(`u-${i}`));
    expect(calls).toHaveLength(10);
  });

  test('a handler runs at most maxConcurrent commands at once; the rest wait their turn and are all answered', async () => {
    const node = unique('rpc-node');
    let running = 0;
    let most = 0;
    const handlers = echoHandlers(node, []);
    handlers['post-copy'] = async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 50));
      running--;
      return { ok: true };
    };
    const log = recordingLogger();
    subs.push(serveCommands(nc, node, handlers, log, { maxConcurrent: 3 }));
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => requestCommand(nc, node, 'post-copy', ref(`u-${i}`))));
    expect(replies).toEqual(Array(12).fill({ ok: true }));
    expect(most).toBe(3);
    expect(log.find('command limit reached; the next commands wait').length).toBeGreaterThan(0);
  });
});
