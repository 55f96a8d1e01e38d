import {
  AckPolicy,
  DeliverPolicy,
  ErrorCode,
  JSONCodec,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  type PubAck,
  type StreamConfig,
  type StreamInfo,
} from 'nats';
import { systemClock, type Clock } from '../util/clock.js';
import { CONTROLLER_DURABLE, RESULTS_STREAM, subjects } from './subjects.js';
import { ResultMessage, resultMessageId } from './protocol.js';
import { silentLogger, type Logger } from '../util/log.js';
import { zodReason } from './zodReason.js';

const json = JSONCodec<unknown>();
const MINUTE = 60_000;

export interface ResultsStreamOptions {
  /** Retried publishes of one result inside this window are stored once. */
  duplicateWindowMs?: number;
  maxAgeMs?: number;
}

/** API error code nats-server answers when a stream exists with another configuration. */
const STREAM_NAME_IN_USE = 10058;

/** Creates the results stream, or brings an existing one to this configuration. */
export async function ensureResultsStream(jsm: JetStreamManager, opts: ResultsStreamOptions = {}): Promise<StreamInfo> {
  const config: Partial<StreamConfig> & { name: string } = {
    name: RESULTS_STREAM,
    subjects: [subjects.allResults()],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    duplicate_window: nanos(Math.max(opts.duplicateWindowMs ?? 5 * MINUTE, 2 * MINUTE)),
    max_age: nanos(opts.maxAgeMs ?? 7 * 24 * 60 * MINUTE),
  };
  try {
    return await jsm.streams.add(config);
  } catch (err) {
    if ((err as { api_error?: { err_code?: number } }).api_error?.err_code !== STREAM_NAME_IN_USE) throw err;
    const { name, ...update } = config;
    return jsm.streams.update(name, update);
  }
}

export interface PublishResultOptions {
  /** Stops the retries; the publish then rejects with the last error. */
  signal?: AbortSignal;
  log?: Logger;
  clock?: Clock;
  /** How long one attempt waits for JetStream's ack; a late ack is harmless, the retry is deduplicated. */
  ackTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Publishes a migration result and keeps trying until JetStream acknowledges it:
 * a result is the one message the controller must not miss. Every attempt carries
 * the same message id, so an attempt that did land before its ack was lost is
 * stored once.
 */
export async function publishResult(js: JetStreamClient, msg: ResultMessage, opts: PublishResultOptions = {}): Promise<PubAck> {
  const parsed = ResultMessage.safeParse(msg);
  if (!parsed.success) throw new Error(`refusing to publish an invalid result for ${msg.migrationUid}: ${zodReason(parsed.error)}`);
  const result = parsed.data;
  const msgID = resultMessageId(result);
  const log = opts.log ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const fields = { migrationUid: result.migrationUid, attempt: result.attempt, vmi: result.vmi, outcome: result.outcome, msgID };
  let backoff = opts.minBackoffMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      const ack = await js.publish(subjects.result(result.migrationUid), json.encode(result), {
        msgID,
        timeout: opts.ackTimeoutMs ?? 2000,
      });
      log.info({ ...fields, seq: ack.seq, duplicate: ack.duplicate, attempt }, 'result published');
      return ack;
    } catch (err) {
      const reason = (err as Error).message;
      if ((err as { code?: string }).code === ErrorCode.ConnectionClosed || opts.signal?.aborted) {
        throw new Error(`gave up publishing result ${msgID} after ${attempt} attempt(s): ${reason}`);
      }
      log.warn({ ...fields, attempt, retryInMs: backoff, err: reason }, 'result publish failed; retrying');
      await sleep(clock, backoff, opts.signal);
      backoff = Math.min(backoff * 2, opts.maxBackoffMs ?? 5000);
    }
  }
}

function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => { clock.clearTimeout(timer); signal?.removeEventListener('abort', done); resolve(); };
    const timer = clock.setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface ConsumeResultsOptions {
  durable?: string;
  /** The message is acknowledged only once this resolves; a rejection redelivers it later. */
  onResult: (msg: ResultMessage) => Promise<void>;
  log: Logger;
  /** How long a result whose handling failed waits before it is redelivered. */
  retryDelayMs?: number;
  /** How long the server waits for an ack before redelivering to a consumer that went quiet. */
  ackWaitMs?: number;
}

export interface ResultsConsumer {
  /** Stops receiving; the durable consumer and its unacknowledged messages stay on the server. */
  stop(): Promise<void>;
}

/**
 * Consumes migration results through a durable consumer: its position lives in
 * the server, so results published while the controller was away are delivered
 * when it comes back, each until it is acknowledged.
 */
export async function consumeResults(nc: NatsConnection, opts: ConsumeResultsOptions): Promise<ResultsConsumer> {
  const durable = opts.durable ?? CONTROLLER_DURABLE;
  const jsm = await nc.jetstreamManager();
  await ensureResultsStream(jsm);
  await ensureConsumer(jsm, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: subjects.allResults(),
    ack_wait: nanos(opts.ackWaitMs ?? 30_000),
    max_deliver: -1,
  });
  const consumer = await nc.jetstream().consumers.get(RESULTS_STREAM, durable);
  const messages = await consumer.consume({ max_messages: 16 });
  const retryDelayMs = opts.retryDelayMs ?? 2000;
  const loop = (async () => {
    for await (const m of messages) await handle(m, durable, opts, retryDelayMs);
  })();
  // nats.js keeps a pull consumer's heartbeat timer alive after its connection closes; end it with the connection.
  void nc.closed().then(() => messages.stop());
  return {
    async stop() {
      await messages.close();
      await loop;
    },
  };
}

async function ensureConsumer(jsm: JetStreamManager, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  try {
    await jsm.consumers.info(RESULTS_STREAM, config.durable_name);
    await jsm.consumers.update(RESULTS_STREAM, config.durable_name, { ack_wait: config.ack_wait, max_deliver: config.max_deliver });
  } catch (err) {
    if ((err as { code?: string }).code !== '404') throw err;
    await jsm.consumers.add(RESULTS_STREAM, config);
  }
}

async function handle(m: JsMsg, durable: string, opts: ConsumeResultsOptions, retryDelayMs: number): Promise<void> {
  const where = { durable, subject: m.subject, seq: m.seq, deliveries: m.info.redeliveryCount };
  let body: unknown;
  try {
    body = m.json();
  } catch {
    opts.log.error(where, 'result is not JSON; discarded');
    m.term();
    return;
  }
  const parsed = ResultMessage.safeParse(body);
  if (!parsed.success) {
    opts.log.error({ ...where, reason: zodReason(parsed.error) }, 'result fails its schema; discarded');
    m.term();
    return;
  }
  const r = parsed.data;
  const fields = { ...where, migrationUid: r.migrationUid, attempt: r.attempt, vmi: r.vmi, outcome: r.outcome };
  try {
    await opts.onResult(r);
  } catch (err) {
    opts.log.warn({ ...fields, err: (err as Error).message, retryInMs: retryDelayMs }, 'result handling failed; will be redelivered');
    m.nak(retryDelayMs);
    return;
  }
  // Waiting for the server to confirm the ack keeps a lost ack from redelivering a handled result.
  try {
    await m.ackAck();
  } catch (err) {
    opts.log.warn({ ...fields, err: (err as Error).message }, 'ack of handled result not confirmed; it may be delivered again');
  }
}
