import { startNatsServer } from './natsServer.js';

// One nats-server for the whole run; tests that need their own (restart, outage)
// start one with startNatsServer().
export default async function globalSetup(): Promise<void> {
  const nats = await startNatsServer();
  process.env['NATS_URL'] = nats.url;
  (globalThis as Record<string, unknown>)['__FERRY_NATS__'] = nats;
}
