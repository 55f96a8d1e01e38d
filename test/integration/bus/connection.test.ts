import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JSONCodec } from 'nats';
import { startNatsServer } from '../../support/natsServer.js';
import { closeBus, connectBus } from '../../../src/bus/connection.js';
import { recordingLogger, waitFor } from './helpers.js';

describe('bus connection', () => {
  test('a connection survives a server restart, logging the disconnect and the reconnect', async () => {
    const store = mkdtempSync(path.join(os.tmpdir(), 'ferry-conn-'));
    let server = await startNatsServer({ storeDir: store });
    const log = recordingLogger();
    const nc = await connectBus({ servers: server.url, name: 'test-conn', log, reconnectTimeWaitMs: 50 });
    try {
      await server.stop();
      await waitFor(() => log.find('disconnected from NATS; reconnecting').length > 0, 'the disconnect log line');
      server = await startNatsServer({ port: server.port, storeDir: store });
      await waitFor(() => log.find('reconnected to NATS').length > 0, 'the reconnect log line', 10_000);
      expect(nc.isClosed()).toBe(false);
      const sub = nc.subscribe('ferry.test.echo', { max: 1, callback: (_e, m) => m.respond(m.data) });
      const reply = await nc.request('ferry.test.echo', JSONCodec().encode({ hi: 1 }), { timeout: 2000 });
      expect(JSONCodec().decode(reply.data)).toEqual({ hi: 1 });
      sub.unsubscribe();
    } finally {
      await closeBus(nc);
      await server.stop();
      rmSync(store, { recursive: true, force: true });
    }
  });

  test('closing drains: messages published just before close are delivered', async () => {
    const log = recordingLogger();
    const url = process.env['NATS_URL'] as string;
    const receiver = await connectBus({ servers: url, name: 'test-receiver', log });
    const sender = await connectBus({ servers: url, name: 'test-sender', log });
    const got: number[] = [];
    receiver.subscribe('ferry.test.drain', { callback: (_e, m) => got.push(JSONCodec<number>().decode(m.data)) });
    await receiver.flush();
    for (let i = 0; i < 100; i++) sender.publish('ferry.test.drain', JSONCodec().encode(i));
    await closeBus(sender);
    await closeBus(sender); // closing twice is harmless
    await waitFor(() => got.length === 100, 'all 100 messages');
    await closeBus(receiver);
    expect(receiver.isClosed()).toBe(true);
  });
});
