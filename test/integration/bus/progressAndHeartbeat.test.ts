import { JSONCodec, type NatsConnection, type Subscription } from 'nats';
import { ManualClock } from '../../../src/util/clock.js';
import { subjects } from '../../../src/bus/subjects.js';
import type { Heartbeat, ProgressMessage } from '../../../src/bus/protocol.js';
import { publishProgress, subscribeProgress } from '../../../src/bus/progress.js';
import { startHeartbeat, watchHeartbeats } from '../../../src/bus/heartbeat.js';
import { connectTest, recordingLogger, resultFor, sleep, unique, waitFor } from './helpers.js';

const json = JSONCodec<unknown>();
let nc: NatsConnection;
const subs: Subscription[] = [];

beforeAll(async () => { nc = await connectTest(); });
afterEach(() => { for (const s of subs.splice(0)) s.unsubscribe(); });
afterAll(async () => { await nc.drain(); });

function progressFor(uid: string, dataRemaining: number): ProgressMessage {
  const { stats } = resultFor(uid);
  return { migrationUid: uid, attempt: 1, vmi: 'default/vm-a', node: 'node-a', stats: { ...stats, phase: 'running', dataRemaining }, at: new Date().toISOString() };
}

describe('progress', () => {
  test('progress messages of any migration reach a subscriber in order; invalid ones are dropped with a logged reason', async () => {
    const uid = unique('uid');
    const got: ProgressMessage[] = [];
    const log = recordingLogger();
    subs.push(subscribeProgress(nc, (p) => { if (p.migrationUid === uid) got.push(p); }, log));
    await nc.flush();

    publishProgress(nc, progressFor(uid, 300));
    nc.publish(subjects.progress(uid), json.encode({ migrationUid: uid, stats: 'lots' }));
    publishProgress(nc, progressFor(uid, 100));

    await waitFor(() => got.length === 2, 'two progress messages');
    expect(got.map((p) => p.stats.dataRemaining)).toEqual([300, 100]);
    await waitFor(() => log.find('progress message fails its schema; dropped').length === 1, 'the invalid one logged');
  });

  test('invalid progress is refused before it is sent', () => {
    expect(() => publishProgress(nc, { ...progressFor(unique('uid'), 1), node: undefined as unknown as string })).toThrow(/node/);
  });
});

describe('heartbeats', () => {
  test('a node beats at once and then every interval, with its current job count, until stopped', async () => {
    const node = unique('hb-node');
    const beats: Heartbeat[] = [];
    subs.push(watchHeartbeats(nc, (b) => { if (b.node === node) beats.push(b); }));
    await nc.flush();

    const clock = new ManualClock(Date.parse('2025-01-01T00:00:00Z'));
    let jobs = 0;
    const hb = startHeartbeat(nc, { node, driver: 'sim', activeJobs: () => jobs, intervalMs: 5000, clock });
    await waitFor(() => beats.length === 1, 'the first beat');

    jobs = 2;
    clock.advance(4999);
    await sleep(100);
    expect(beats).toHaveLength(1);
    clock.advance(1);
    await waitFor(() => beats.length === 2, 'the second beat');
    expect(beats.map((b) => [b.activeJobs, b.at])).toEqual([[0, '2025-01-01T00:00:00.000Z'], [2, '2025-01-01T00:00:05.000Z']]);

    hb.stop();
    clock.advance(60_000);
    await sleep(100);
    expect(beats).toHaveLength(2);
    expect(clock.pendingTimers()).toBe(0);
  });

  test('a malformed heartbeat is not reported as a live node', async () => {
    const node = unique('hb-node');
    const beats: Heartbeat[] = [];
    const log = recordingLogger();
    subs.push(watchHeartbeats(nc, (b) => { if (b.node === node) beats.push(b); }, log));
    await nc.flush();
    nc.publish(subjects.heartbeat(node), json.encode({ node, driver: 'vmware', activeJobs: 0, at: 'now' }));
    await waitFor(() => log.find('heartbeat fails its schema; dropped').length === 1, 'the drop logged');
    expect(beats).toEqual([]);
  });
});
