import { readFileSync } from 'node:fs';
import { connect, Events, nkeyAuthenticator, type NatsConnection } from 'nats';
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
  /** File holding this process's NATS nkey seed (deploy/ gives each role its own user). */
  nkeyFile?: string;
  /** Where this process's replies arrive (see inboxPrefix in subjects.ts); nats.js's `_INBOX` by default. */
  inboxPrefix?: string;
  /** CA certificate (PEM) that signed the NATS servers' certificates: verifies them over TLS (tls:// URLs). */
  caFile?: string;
}

/** Reads the seed on every (re)connect, so a rotated key file is picked up without a restart. */
function nkeyFrom(file: string): () => Uint8Array {
  const read = () => {
    try {
      return new TextEncoder().encode(readFileSync(file, 'utf8').trim());
    } catch (err) {
      throw new Error(`cannot read the NATS nkey seed ${file}: ${(err as Error).message} (generate keys with scripts/gen-nats-auth.ts)`);
    }
  };
  read(); // fail at start, with the file's name, rather than on the first connect
  return read;
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
    ...(opts.nkeyFile ? { authenticator: nkeyAuthenticator(nkeyFrom(opts.nkeyFile)) } : {}),
    ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
    ...(opts.caFile ? { tls: { caFile: opts.caFile } } : {}),
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
