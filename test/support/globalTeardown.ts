import type { NatsServerHandle } from './natsServer.js';

export default async function globalTeardown(): Promise<void> {
  const nats = (globalThis as Record<string, unknown>)['__FERRY_NATS__'] as NatsServerHandle | undefined;
  await nats?.stop();
}
