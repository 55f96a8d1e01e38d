import type { JetStreamManager, NatsConnection } from 'nats';
import { RESULTS_STREAM, subjects } from '../../../src/bus/subjects.js';
import type { CommandRequest, ResultMessage } from '../../../src/bus/protocol.js';
import { ensureResultsStream } from '../../../src/bus/results.js';
import type { RunningHandler } from '../../../src/handler/handler.js';
import { startNatsServer, type NatsServerHandle } from '../../support/natsServer.js';
import { connectTest, waitFor } from '../bus/helpers.js';

export const controls = { bandwidth: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false };

export function guestFor(vm: string, memoryBytes = 2 ** 30) {
  return { name: `default_${vm}`, memoryBytes, dirtyRate: 20 * 2 ** 20, workingSet: 2 ** 27, zeroFraction: 0.2 };
}

export function refFor(uid: string, vm: string, attempt = 1) {
  return { migrationUid: uid, attempt, vmi: `default/${vm}` };
}

export function startReq(
  uid: string,
  vm: string,
  targetNode: string,
  targetAddress: string,
  attempt = 1,
  bandwidth = controls.bandwidth,
  postCopy = controls.postCopy,
): CommandRequest<'start-source'> {
  return { ...refFor(uid, vm, attempt), guest: guestFor(vm), targetNode, targetAddress, controls: { ...controls, bandwidth, postCopy } };
}

/** Slow enough that a migration of guestFor() is still running when any test ends. */
export const CRAWL = 2 ** 20;

export function prepareReq(uid: string, vm: string, sourceNode: string, attempt = 1): CommandRequest<'prepare-target'> {
  return { ...refFor(uid, vm, attempt), guest: guestFor(vm), sourceNode };
}

/** How many results the stream holds for `uid`. */
export async function storedResults(jsm: JetStreamManager, uid: string): Promise<number> {
  const info = await jsm.streams.info(RESULTS_STREAM, { subjects_filter: subjects.resultsOf(uid) });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

/** Waits for the handler's result for `uid` to be stored in JetStream. */
export async function resultOf(nc: NatsConnection, uid: string, timeoutMs = 5000): Promise<ResultMessage> {
  const jsm = await nc.jetstreamManager();
  await waitFor(async () => (await storedResults(jsm, uid)) > 0, `the result of ${uid}`, timeoutMs);
  const info = await jsm.streams.info(RESULTS_STREAM, { subjects_filter: subjects.resultsOf(uid) });
  const subject = Object.keys(info.state.subjects ?? {})[0]!;
  const m = await jsm.streams.getMessage(RESULTS_STREAM, { last_by_subj: subject });
  return m.json<ResultMessage>();
}

/**
 * A nats-server of the suite's own (a handler publishes to the fixed results stream, which another suite must not
 * see), a connection to it with the stream made, and the handlers a test starts, stopped after each test.
 */
export function useHandlerBus(): { readonly nc: NatsConnection; readonly running: RunningHandler[] } {
  let server: NatsServerHandle | undefined;
  let nc: NatsConnection | undefined;
  const running: RunningHandler[] = [];
  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectTest(server.url);
    await ensureResultsStream(await nc.jetstreamManager());
  });
  afterEach(async () => {
    for (const h of running.splice(0)) await h.stop();
  });
  afterAll(async () => {
    await nc?.drain();
    await server?.stop();
  });
  return {
    get nc() {
      if (!nc) throw new Error('useHandlerBus: the connection exists only inside tests');
      return nc;
    },
    running,
  };
}
