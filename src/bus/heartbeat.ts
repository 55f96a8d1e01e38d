import { JSONCodec, type NatsConnection, type Subscription } from 'nats';
import { systemClock, type Clock } from '../util/clock.js';
import { subjects } from './subjects.js';
import { Heartbeat } from './protocol.js';
import { silentLogger, type Logger } from '../util/log.js';
import { zodReason } from './zodReason.js';

const json = JSONCodec<unknown>();

export interface HeartbeatOptions {
  node: string;
  driver: Heartbeat['driver'];
  activeJobs: () => number;
  intervalMs: number;
  clock?: Clock;
}

/** Announces the handler on `node` now and every `intervalMs` until stopped. */
export function startHeartbeat(nc: NatsConnection, opts: HeartbeatOptions): { stop(): void } {
  const clock = opts.clock ?? systemClock;
  let timer: unknown;
  let stopped = false;
  const beat = () => {
    if (stopped) return;
    const msg: Heartbeat = { node: opts.node, driver: opts.driver, activeJobs: opts.activeJobs(), at: new Date(clock.now()).toISOString() };
    // Publishing while disconnected only buffers; a closing or closed connection ends the heartbeat.
    try {
      nc.publish(subjects.heartbeat(opts.node), json.encode(msg));
    } catch {
      return;
    }
    timer = clock.setTimeout(beat, opts.intervalMs);
  };
  beat();
  return {
    stop() {
      stopped = true;
      clock.clearTimeout(timer);
    },
  };
}

/** Delivers every valid heartbeat from every node; invalid ones are logged and dropped. */
export function watchHeartbeats(nc: NatsConnection, onBeat: (beat: Heartbeat) => void, log: Logger = silentLogger): Subscription {
  const sub = nc.subscribe(subjects.allHeartbeats());
  void (async () => {
    for await (const m of sub) {
      let parsed;
      try {
        parsed = Heartbeat.safeParse(json.decode(m.data));
      } catch {
        log.warn({ subject: m.subject }, 'heartbeat is not JSON; dropped');
        continue;
      }
      if (!parsed.success) {
        log.warn({ subject: m.subject, reason: zodReason(parsed.error) }, 'heartbeat fails its schema; dropped');
        continue;
      }
      try {
        onBeat(parsed.data);
      } catch (err) {
        log.error({ node: parsed.data.node, err: (err as Error).message }, 'heartbeat handler failed');
      }
    }
  })();
  return sub;
}
