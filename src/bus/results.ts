import {
  ErrorCode,
  JSONCodec,
  nanos,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  type StreamConfig,
  type StreamInfo,
} from 'nats';
import { systemClock, type Clock } from '../util/clock.js';
import { RESULTS_STREAM, subjects } from './subjects.js';
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
      const ack = await js.publish(subjects.result(result.migrationUid, result.node), json.encode(result), {
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

export { consumeResults, type ConsumeResultsOptions, type DeadLetterReason, type ResultOrigin, type ResultsConsumer, type ResultVerdict } from './resultsConsumer.js';
