import { JSONCodec, type NatsConnection } from 'nats';
import { startNatsServer, type NatsServerHandle } from '../../support/natsServer.js';
import { RESULTS_STREAM, subjects } from '../../../src/bus/subjects.js';
import type { ResultMessage } from '../../../src/bus/protocol.js';
import { consumeResults, ensureResultsStream, publishResult, type ConsumeResultsOptions, type ResultsConsumer, type ResultVerdict } from '../../../src/bus/results.js';
import { connectTest, recordingLogger, resultFor, sleep, unique, waitFor } from './helpers.js';

// A server of its own: these tests create durable consumers on the fixed results stream.
let server: NatsServerHandle;
let nc: NatsConnection;
const consumers: ResultsConsumer[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectTest(server.url);
  await ensureResultsStream(await nc.jetstreamManager());
});
afterEach(async () => { for (const c of consumers.splice(0)) await c.stop(); });
afterAll(async () => {
  await nc.drain();
  await server.stop();
});

/** A controller-side consumer that records what it was handed, restricted to this test's uids. */
async function controller(
  conn: NatsConnection,
  durable: string,
  onResult?: (r: ResultMessage) => Promise<ResultVerdict | void>,
  more: Partial<ConsumeResultsOptions> = {},
) {
  const got: ResultMessage[] = [];
  const deadLetters: string[] = [];
  const log = recordingLogger();
  const c = await consumeResults(conn, {
    durable,
    log,
    retryDelayMs: 100,
    // A result handed to a pull request of the controller that just went away waits this long before redelivery.
    ackWaitMs: 1000,
    onDeadLetter: (reason) => { deadLetters.push(reason); },
    onResult: async (r) => {
      const verdict = onResult ? await onResult(r) : undefined;
      got.push(r);
      return verdict;
    },
    ...more,
  });
  return { got, log, deadLetters, stop: () => c.stop(), track: () => consumers.push(c) };
}

async function consumerInfo(durable: string) {
  return (await nc.jetstreamManager()).consumers.info(RESULTS_STREAM, durable);
}

describe('migration results over JetStream', () => {
  test('a result published while the controller is away is delivered once when it comes back', async () => {
    const durable = unique('ctl');
    const uid = unique('uid');
    const first = await controller(nc, durable);
    await first.stop();

    await publishResult(nc.jetstream(), resultFor(uid, 'completed'));

    const again = await controller(nc, durable);
    again.track();
    await waitFor(() => again.got.some((r) => r.migrationUid === uid), 'the result published while away', 10_000);
    await sleep(300);
    expect(again.got.filter((r) => r.migrationUid === uid)).toEqual([expect.objectContaining({ migrationUid: uid, outcome: 'completed', downtimeMs: 42 })]);
  });

  test("a result published after the controller's connection closed is delivered to its next connection", async () => {
    const durable = unique('ctl');
    const uid = unique('uid');
    const conn1 = await connectTest(server.url);
    await controller(conn1, durable);
    await conn1.close();

    await publishResult(nc.jetstream(), resultFor(uid, 'failed'));

    const conn2 = await connectTest(server.url);
    try {
      const again = await controller(conn2, durable);
      await waitFor(() => again.got.some((r) => r.migrationUid === uid), 'the result published while disconnected', 10_000);
      await sleep(300);
      expect(again.got.filter((r) => r.migrationUid === uid).map((r) => r.outcome)).toEqual(['failed']);
      await again.stop();
    } finally {
      await conn2.drain();
    }
  });

  test('publishing the same result twice stores and delivers it once', async () => {
    const durable = unique('ctl');
    const uid = unique('uid');
    const ctl = await controller(nc, durable);
    ctl.track();
    const js = nc.jetstream();
    const a = await publishResult(js, resultFor(uid, 'aborted'));
    const b = await publishResult(js, resultFor(uid, 'aborted'));
    expect(a.duplicate).toBe(false);
    expect(b.duplicate).toBe(true);
    expect(b.seq).toBe(a.seq);
    await waitFor(() => ctl.got.some((r) => r.migrationUid === uid), 'the result');
    await sleep(300);
    expect(ctl.got.filter((r) => r.migrationUid === uid)).toHaveLength(1);
  });

  test('a result whose handling fails is redelivered later, then acknowledged', async () => {
    const durable = unique('ctl');
    const uid = unique('uid');
    let failures = 0;
    const ctl = await controller(nc, durable, async (r) => {
      if (r.migrationUid === uid && failures++ === 0) throw new Error('kube API unavailable');
    });
    ctl.track();
    await publishResult(nc.jetstream(), resultFor(uid, 'completed'));
    await waitFor(() => ctl.got.some((r) => r.migrationUid === uid), 'the redelivered result');
    expect(failures).toBe(2);
    expect(ctl.log.find('result handling failed; will be redelivered')[0]?.fields).toMatchObject({ migrationUid: uid, err: 'kube API unavailable' });
    await sleep(400);
    expect(ctl.got.filter((r) => r.migrationUid === uid)).toHaveLength(1);
    const info = await (await nc.jetstreamManager()).consumers.info(RESULTS_STREAM, durable);
    expect(info.num_ack_pending).toBe(0);
  });

  test('a message that fails the result schema is never handed to the controller, nor redelivered', async () => {
    const durable = unique('ctl');
    const uid = unique('uid');
    const ctl = await controller(nc, durable);
    ctl.track();
    const js = nc.jetstream();
    const json = JSONCodec<unknown>();
    await js.publish(subjects.result(uid, 'node-a'), json.encode({ migrationUid: uid, outcome: 'exploded' }));
    await js.publish(subjects.result(uid, 'node-a'), new TextEncoder().encode('not json'));
    await publishResult(js, resultFor(uid, 'completed'));

    await waitFor(() => ctl.got.some((r) => r.migrationUid === uid), 'the valid result after the invalid ones');
    expect(ctl.got.filter((r) => r.migrationUid === uid).map((r) => r.outcome)).toEqual(['completed']);
    expect(ctl.log.find('result fails its schema; discarded')).toHaveLength(1);
    expect(ctl.log.find('result is not JSON; discarded')).toHaveLength(1);
    expect(String(ctl.log.find('result fails its schema; discarded')[0]?.fields['reason'])).toMatch(/outcome/);
    expect(ctl.deadLetters).toEqual(['invalid', 'invalid']);
    const info = await (await nc.jetstreamManager()).consumers.info(RESULTS_STREAM, durable);
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
  });

  test('an invalid result is refused before it is published', async () => {
    const bad = { ...resultFor(unique('uid')), attempt: 0 };
    await expect(publishResult(nc.jetstream(), bad)).rejects.toThrow(/attempt/);
  });

  test('publishing keeps retrying while no stream takes results, and lands once one does', async () => {
    const own = await startNatsServer();
    const conn = await connectTest(own.url);
    try {
      const log = recordingLogger();
      const uid = unique('uid');
      const publishing = publishResult(conn.jetstream(), resultFor(uid), { log, minBackoffMs: 50, maxBackoffMs: 100, ackTimeoutMs: 500 });
      await waitFor(() => log.find('result publish failed; retrying').length >= 2, 'failed attempts');
      await ensureResultsStream(await conn.jetstreamManager());
      const ack = await publishing;
      expect(ack.stream).toBe(RESULTS_STREAM);
      const stored = await (await conn.jetstreamManager()).streams.getMessage(RESULTS_STREAM, { last_by_subj: subjects.result(uid, 'node-a') });
      expect(stored.json<ResultMessage>().migrationUid).toBe(uid);
    } finally {
      await conn.drain();
      await own.stop();
    }
  });

  test('publishing gives up when told to stop', async () => {
    const own = await startNatsServer();
    const conn = await connectTest(own.url);
    try {
      const stop = new AbortController();
      const log = recordingLogger();
      const publishing = publishResult(conn.jetstream(), resultFor(unique('uid')), { signal: stop.signal, log, minBackoffMs: 50, ackTimeoutMs: 500 });
      await waitFor(() => log.find('result publish failed; retrying').length >= 1, 'a failed attempt');
      stop.abort();
      await expect(publishing).rejects.toThrow(/gave up publishing result/);
    } finally {
      await conn.drain();
      await own.stop();
    }
  });

  test('ensuring the stream twice, or over an older configuration, leaves one stream with the required settings', async () => {
    const jsm = await nc.jetstreamManager();
    await ensureResultsStream(jsm, { duplicateWindowMs: 60_000 }); // below the floor of 2 min
    const info = await ensureResultsStream(jsm, { maxAgeMs: 3_600_000 });
    expect(info.config.subjects).toEqual([subjects.allResults()]);
    expect(info.config.storage).toBe('file');
    expect(info.config.duplicate_window).toBeGreaterThanOrEqual(120e9);
    expect(info.config.max_age).toBe(3600e9);
  });
});

describe('the result consumer under load and faults', () => {
  test('results of different migrations are handled side by side; those of one migration one after another', async () => {
    const durable = unique('ctl');
    const [slow, fast] = [unique('uid-slow'), unique('uid-fast')];
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const ctl = await controller(nc, durable, async (r) => {
      events.push(`start ${r.migrationUid === slow ? 'slow' : 'fast'} ${r.outcome}`);
      if (r.migrationUid === slow && r.outcome === 'aborted') await gate;
      events.push(`end ${r.migrationUid === slow ? 'slow' : 'fast'} ${r.outcome}`);
    });
    ctl.track();
    const js = nc.jetstream();
    await publishResult(js, resultFor(slow, 'aborted'));
    await publishResult(js, resultFor(slow, 'completed', 2));
    await publishResult(js, resultFor(fast, 'completed'));
    await waitFor(() => events.includes('end fast completed'), 'the other migration\'s result, while the first one waits');
    expect(events).not.toContain('start slow completed');
    release();
    await waitFor(() => events.includes('end slow completed'), 'the second result of the first migration');
    const slowOnly = events.filter((e) => e.includes('slow'));
    expect(slowOnly).toEqual(['start slow aborted', 'end slow aborted', 'start slow completed', 'end slow completed']);
  });

  test('a result whose handling takes longer than the ack wait is not redelivered meanwhile', async () => {
    const durable = unique('ctl');
    const uid = unique('uid');
    let calls = 0;
    const ctl = await controller(nc, durable, async (r) => {
      if (r.migrationUid !== uid) return;
      calls++;
      await sleep(2500);
    }, { ackWaitMs: 1000 });
    ctl.track();
    await publishResult(nc.jetstream(), resultFor(uid));
    await waitFor(() => ctl.got.some((r) => r.migrationUid === uid), 'the slow handling to end', 10_000);
    await sleep(300);
    expect(calls).toBe(1);
    expect((await consumerInfo(durable)).num_redelivered).toBe(0);
  });

  test('a result that fails on every delivery is dead-lettered after max_deliver: logged, counted, and not delivered again', async () => {
    const durable = unique('ctl');
    const uid = unique('uid');
    let calls = 0;
    const ctl = await controller(nc, durable, async (r) => {
      if (r.migrationUid === uid) {
        calls++;
        throw new Error('VMIM not tracked yet');
      }
    }, { maxDeliver: 3, retryDelayMs: 50 });
    ctl.track();
    await publishResult(nc.jetstream(), resultFor(uid));
    await waitFor(() => ctl.deadLetters.includes('max-deliveries'), 'the dead letter');
    // (The stream also holds the invalid messages of an earlier test: dead letters of their own.)
    expect(ctl.deadLetters.filter((r) => r !== 'invalid')).toEqual(['max-deliveries']);
    expect(ctl.log.find('result dead-lettered: its handling failed on every delivery')[0]?.fields).toMatchObject({ migrationUid: uid, deliveries: 3, err: 'VMIM not tracked yet' });
    await sleep(500);
    expect(calls).toBe(3);
    expect((await consumerInfo(durable)).num_ack_pending).toBe(0);
  });

  test('a result the controller has no use for is terminated, not redelivered', async () => {
    const durable = unique('ctl');
    const uid = unique('uid');
    const ctl = await controller(nc, durable, async () => 'term');
    ctl.track();
    await publishResult(nc.jetstream(), resultFor(uid));
    await waitFor(() => ctl.got.some((r) => r.migrationUid === uid), 'the result');
    await sleep(1500); // past the ack wait
    expect(ctl.got.filter((r) => r.migrationUid === uid)).toHaveLength(1);
    expect((await consumerInfo(durable)).num_ack_pending).toBe(0);
  });

  test('the durable consumer deleted under the controller is made again, and later results still arrive', async () => {
    const durable = unique('ctl');
    const ctl = await controller(nc, durable);
    ctl.track();
    const before = unique('uid');
    await publishResult(nc.jetstream(), resultFor(before));
    await waitFor(() => ctl.got.some((r) => r.migrationUid === before), 'a result before the deletion');

    await (await nc.jetstreamManager()).consumers.delete(RESULTS_STREAM, durable);
    await waitFor(() => ctl.log.find('results consumer re-created').length > 0, 'the consumer to be made again', 10_000);
    const after = unique('uid');
    await publishResult(nc.jetstream(), resultFor(after));
    await waitFor(() => ctl.got.some((r) => r.migrationUid === after), 'a result after the deletion', 10_000);
    expect(ctl.log.find('results consumer lost; re-creating it').length).toBeGreaterThan(0);
  });
});
