import { JSONCodec, type NatsConnection, type Subscription } from 'nats';
import { subjects } from './subjects.js';
import { ProgressMessage } from './protocol.js';
import type { Logger } from '../util/log.js';
import { zodReason } from './zodReason.js';

const json = JSONCodec<unknown>();

/** Fire and forget: a lost progress message is replaced by the next one. */
export function publishProgress(nc: NatsConnection, msg: ProgressMessage): void {
  const parsed = ProgressMessage.safeParse(msg);
  if (!parsed.success) throw new Error(`refusing to publish invalid progress for ${msg.migrationUid}: ${zodReason(parsed.error)}`);
  nc.publish(subjects.progress(parsed.data.migrationUid), json.encode(parsed.data));
}

/** Delivers every valid progress message of every migration; invalid ones are logged and dropped. */
export function subscribeProgress(
  nc: NatsConnection,
  onProgress: (msg: ProgressMessage) => void | Promise<void>,
  log: Logger,
): Subscription {
  const sub = nc.subscribe(subjects.allProgress());
  void (async () => {
    for await (const m of sub) {
      let body: unknown;
      try {
        body = json.decode(m.data);
      } catch {
        log.warn({ subject: m.subject }, 'progress message is not JSON; dropped');
        continue;
      }
      const parsed = ProgressMessage.safeParse(body);
      if (!parsed.success) {
        log.warn({ subject: m.subject, reason: zodReason(parsed.error) }, 'progress message fails its schema; dropped');
        continue;
      }
      try {
        await onProgress(parsed.data);
      } catch (err) {
        log.error({ subject: m.subject, migrationUid: parsed.data.migrationUid, err: (err as Error).message }, 'progress handler failed');
      }
    }
  })();
  return sub;
}
