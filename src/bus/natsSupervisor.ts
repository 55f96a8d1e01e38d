import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { freePort, startNatsServer, type NatsServerHandle } from './natsServer.js';

/** What a readiness check reports about the supervised server. */
export type NatsServerState = { ok: true; detail: string } | { ok: false; reason: string };

export interface SupervisedNatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** The running server's process id; undefined while it is down. */
  readonly pid: number | undefined;
  /** How many times it was started again after dying. */
  readonly restarts: number;
  state(): NatsServerState;
  /** Stops it for good (no restart) and removes its store. */
  stop(): Promise<void>;
}

export interface SuperviseOptions {
  log: Logger;
  clock?: Clock;
  /** First wait before a restart; doubled per failed restart up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * The nats-server of `ferry dev`, kept running: if it dies (a crash, kill -9,
 * the OOM killer) it is started again on the same port and JetStream store,
 * so clients reconnect and stored results survive, with back-off while
 * restarts fail. The state says whether it is up, for /readyz.
 */
export async function superviseNatsServer(opts: SuperviseOptions): Promise<SupervisedNatsServer> {
  const { log } = opts;
  const clock = opts.clock ?? systemClock;
  const minBackoff = opts.minBackoffMs ?? 250;
  const maxBackoff = opts.maxBackoffMs ?? 10_000;
  const port = await freePort();
  const storeDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-nats-'));
  let current: NatsServerHandle | undefined;
  let stopping = false;
  let restarts = 0;
  let backoff = minBackoff;
  let timer: unknown;
  let down: string | undefined;

  const watch = (h: NatsServerHandle) => {
    h.proc.once('exit', (code, signal) => {
      if (stopping || current !== h) return;
      current = undefined;
      down = `nats-server (pid ${h.proc.pid}) exited ${signal ? `on ${signal}` : `with code ${code}`}`;
      log.error({ port, code, signal, retryInMs: backoff }, 'nats-server exited; restarting it');
      schedule();
    });
  };
  const schedule = () => {
    timer = clock.setTimeout(() => void restart(), backoff);
  };
  const restart = async () => {
    if (stopping) return;
    try {
      const h = await startNatsServer({ port, storeDir });
      if (stopping) {
        await h.stop();
        return;
      }
      current = h;
      restarts++;
      down = undefined;
      backoff = minBackoff;
      watch(h);
      log.warn({ port, pid: h.proc.pid, restarts }, 'nats-server restarted');
    } catch (err) {
      backoff = Math.min(backoff * 2, maxBackoff);
      down = `${down ?? 'nats-server is down'}; restarting failed: ${(err as Error).message.trim()}`;
      log.error({ port, err: (err as Error).message, retryInMs: backoff }, 'could not restart nats-server; trying again');
      schedule();
    }
  };

  try {
    current = await startNatsServer({ port, storeDir });
  } catch (err) {
    rmSync(storeDir, { recursive: true, force: true });
    throw err;
  }
  watch(current);

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get pid() {
      return current?.proc.pid;
    },
    get restarts() {
      return restarts;
    },
    state() {
      if (current) return { ok: true, detail: `nats-server running (pid ${current.proc.pid}, port ${port}${restarts ? `, restarted ${restarts}×` : ''})` };
      return { ok: false, reason: `${down ?? 'nats-server is down'}; restarting` };
    },
    async stop() {
      stopping = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      await current?.stop();
      current = undefined;
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
