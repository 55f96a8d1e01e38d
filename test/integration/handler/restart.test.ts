import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNatsServer } from '../../support/natsServer.js';
import { closeBus, connectBus } from '../../../src/bus/connection.js';
import { consumeResults, ensureResultsStream } from '../../../src/bus/results.js';
import { requestCommand } from '../../../src/bus/rpc.js';
import type { ResultMessage } from '../../../src/bus/protocol.js';
import { startHandler } from '../../../src/handler/handler.js';
import { recordingLogger, sleep, unique, waitFor } from '../bus/helpers.js';
import { ScriptedDriver } from './scriptedDriver.js';
import { startReq } from './support.js';

test('a result that comes while nats-server is down reaches the controller once the server is back', async () => {
  const store = mkdtempSync(path.join(os.tmpdir(), 'ferry-restart-'));
  let server = await startNatsServer({ storeDir: store });
  const handlerLog = recordingLogger();
  const hc = await connectBus({ servers: server.url, name: 'handler', log: handlerLog, reconnectTimeWaitMs: 50 });
  const cc = await connectBus({ servers: server.url, name: 'controller', log: recordingLogger(), reconnectTimeWaitMs: 50 });
  const node = unique('node');
  const driver = new ScriptedDriver(node);
  const handler = startHandler({ nc: hc, node, driver, log: handlerLog, progressIntervalMs: 50 });
  const got: ResultMessage[] = [];
  await ensureResultsStream(await cc.jetstreamManager());
  const consumer = await consumeResults(cc, { durable: unique('ctl'), log: recordingLogger(), onResult: async (r) => { got.push(r); } });
  try {
    const uid = unique('uid');
    await requestCommand(cc, node, 'start-source', startReq(uid, unique('vm'), 'node-dst', 'tcp://node-dst:49152'));

    await server.stop();
    await waitFor(() => handlerLog.find('disconnected from NATS; reconnecting').length > 0, 'the handler to notice');
    driver.jobs[0]?.complete(25);
    await sleep(300); // the handler is now trying to publish into the void

    server = await startNatsServer({ port: server.port, storeDir: store });
    await waitFor(() => got.some((r) => r.migrationUid === uid), 'the result after the restart', 20_000);
    await sleep(300);
    expect(got.filter((r) => r.migrationUid === uid)).toEqual([expect.objectContaining({ outcome: 'completed', downtimeMs: 25, node })]);
  } finally {
    await consumer.stop();
    await handler.stop();
    await closeBus(hc);
    await closeBus(cc);
    await server.stop();
    rmSync(store, { recursive: true, force: true });
  }
});
