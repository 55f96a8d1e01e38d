import { connect, Events, type NatsConnection } from 'nats';
import type { Logger } from '../util/log.js';

export interface BusOptions {
  servers: string | string[];
  /** Shows up in the server's connection list (`ferry-handler-<node>`, `ferry-controller`). */
  name: string;
  log: Logger;
  /** Pause between reconnect attempts to one server. */
  reconnectTimeWaitMs?: number;
  /** Keep trying when no server answers at start instead of failing (daemons want this). */
  waitOnFirstConnect?: boolean;
}

/**
 * Connects to NATS and never gives up reconnecting: a handler or controller that
 * lost the bus must come back on its own once the server does.
 */
export async function connectBus(opts: BusOptions): Promise<NatsConnection> {
  const nc = await connect({
    servers: opts.servers,
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: opts.reconnectTimeWaitMs ?? 1000,
    reconnectJitter: 100,
    waitOnFirstConnect: opts.waitOnFirstConnect ?? false,
  });
  const log = opts.log;
  log.info({ name: opts.name, server: nc.getServer() }, 'connected to NATS');
  void (async () => {
    for await (const s of nc.status()) {
      const fields = { name: opts.name, server: String(s.data) };
      switch (s.type) {
        case Events.Disconnect: log.warn(fields, 'disconnected from NATS; reconnecting'); break;
        case Events.Reconnect: log.info(fields, 'reconnected to NATS'); break;
        case Events.Error: log.error(fields, 'NATS connection error'); break;
        case Events.LDM: log.warn(fields, 'NATS server entering lame duck mode'); break;
        default: break;
      }
    }
  })();
  void nc.closed().then((err) => {
    if (err) log.error({ name: opts.name, err: err.message }, 'NATS connection closed with error');
  });
  return nc;
}

/** Flushes pending publishes and replies, then closes. Safe on a closed connection. */
export async function closeBus(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  try {
    await nc.drain();
  } catch {
    // Already draining or closed by someone else: closed() below still settles.
  }
  await nc.closed();
}
