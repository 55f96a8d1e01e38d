import {
  AckPolicy,
  ConsumerEvents,
  DeliverPolicy,
  JSONCodec,
  nanos,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  type Subscription,
} from 'nats';
import { systemClock, type Clock } from '../util/clock.js';
import { KeyedLimiter } from '../util/keyedLimiter.js';
import type { Logger } from '../util/log.js';
import { ResultMessage } from './protocol.js';
import { ensureResultsStream } from './results.js';
import { CONTROLLER_DURABLE, parseResultSubject, RESULTS_STREAM, subjects, subjectToken } from './subjects.js';
import { zodReason } from './zodReason.js';

/**
 * What the controller did with a result: `ack` it is handled; `term` it will
 * never be of use (its migration is final or unknown): both end its delivery.
 * A rejection means "not now": it is redelivered later, with back-off.
 */
export type ResultVerdict = 'ack' | 'term';

/** Why a result was given up: it is not a result, or every delivery failed. */
export type DeadLetterReason = 'invalid' | 'max-deliveries' | 'wrong-node';

/** Where a result came from, as far as the bus can tell. */
export interface ResultOrigin {
  /** The node token of the subject it was published on (undefined for results stored before it carried one). */
  subjectNode: string | undefined;
}

export interface ConsumeResultsOptions {
  durable?: string;
  /** Resolves (void ⇒ ack) once the result is handled; a rejection redelivers it later. */
  onResult: (msg: ResultMessage, origin: ResultOrigin) => Promise<ResultVerdict | void>;
  log: Logger;
  /** Called for every result given up, with why (count it: ferry_result_dead_letters_total). */
  onDeadLetter?: (reason: DeadLetterReason) => void;
  /** The first redelivery delay after a failed handling; doubled per delivery up to a minute. */
  retryDelayMs?: number;
  /** How long the server waits for an ack (or a working() signal) before redelivering. */
  ackWaitMs?: number;
  /** Deliveries before a result is dead-lettered (logged, counted, terminated). */
  maxDeliver?: number;
  /** Results handled at once; results of one migration are always handled one after another. */
  concurrency?: number;
  clock?: Clock;
}

export interface ResultsConsumer {
  /** Stops receiving and waits for the results being handled; the durable consumer stays on the server. */
  stop(): Promise<void>;
}

const json = JSONCodec<unknown>();
const MAX_RETRY_DELAY_MS = 60_000;
/** Missed idle heartbeats after which the consumer is taken for gone and made again. */
const MISSED_HEARTBEATS_LIMIT = 3;

/**
 * Consumes migration results through a durable consumer: its position lives in
 * the server, so results published while the controller was away are delivered
 * when it comes back, each until it is acknowledged or given up.
 *
 * - Results of different migrations are handled in parallel (up to
 *   `concurrency`), those of one migration in order; when that many are in
 *   hand, no more are taken.
 * - While a result waits (for its turn or its handler), the server is told it
 *   is being worked on, so it is not redelivered behind our back.
 * - A result that keeps failing is redelivered with back-off and given up
 *   after `maxDeliver` deliveries: logged as an error and counted.
 * - If the consumer disappears (deleted, stream re-created, server restarted
 *   without its state), it is made again; nothing here can reject unhandled.
 */
export async function consumeResults(nc: NatsConnection, opts: ConsumeResultsOptions): Promise<ResultsConsumer> {
  const durable = opts.durable ?? CONTROLLER_DURABLE;
  const clock = opts.clock ?? systemClock;
  const ackWaitMs = opts.ackWaitMs ?? 30_000;
  const maxDeliver = opts.maxDeliver ?? 20;
  const limiter = new KeyedLimiter(opts.concurrency ?? 16);
  const config: Partial<ConsumerConfig> & { durable_name: string } = {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: subjects.allResults(),
    ack_wait: nanos(ackWaitMs),
    max_deliver: maxDeliver,
  };
  const ctx: HandleContext = { durable, opts, clock, ackWaitMs, maxDeliver };
  // The first set-up fails loudly: a controller that cannot consume results at all should not start.
  const jsm = await nc.jetstreamManager();
  await ensureResultsStream(jsm);
  await ensureConsumer(jsm, config);
  const advisories = watchMaxDeliveries(nc, durable, opts);

  let stopped = false;
  let current: ConsumerMessages | undefined;
  const pause = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));

  const loop = (async () => {
    let backoff = 250;
    for (let first = true; !stopped && !nc.isClosed(); first = false) {
      try {
        if (!first) {
          await ensureResultsStream(jsm);
          await ensureConsumer(jsm, config);
        }
        const consumer = await nc.jetstream().consumers.get(RESULTS_STREAM, durable);
        const messages = await consumer.consume({ max_messages: Math.max(1, Math.min(8, limiter.limit)), idle_heartbeat: 5000 });
        current = messages;
        if (stopped) break;
        void watchStatus(messages, durable, opts.log);
        if (!first) opts.log.info({ durable }, 'results consumer re-created');
        backoff = 250;
        for await (const m of messages) {
          await limiter.accept();
          const key = keyOf(m);
          const working = keepWorking(m, ackWaitMs, clock);
          // handle() answers every outcome itself and never rejects; the catch only keeps that promise's chain quiet.
          void limiter.run(key, () => handle(m, ctx)).finally(working).catch(() => undefined);
        }
      } catch (err) {
        if (stopped) break;
        opts.log.warn({ durable, err: (err as Error).message, retryInMs: backoff }, 'results consumer failed; re-creating it');
      }
      if (stopped || nc.isClosed()) break;
      await pause(backoff);
      backoff = Math.min(backoff * 2, 10_000);
    }
  })().catch((err: unknown) => {
    // Not expected (every step above catches); logged rather than crashing the process.
    opts.log.error({ durable, err: (err as Error).message }, 'results consumer loop ended');
  });
  // nats.js keeps a pull consumer's heartbeat timer alive after its connection closes; end it with the connection.
  void nc.closed().then(() => {
    stopped = true;
    current?.stop();
  });

  return {
    async stop() {
      stopped = true;
      advisories?.unsubscribe();
      await current?.close().catch(() => undefined);
      await loop;
      await limiter.idle();
    },
  };
}

/**
 * nats.js reports a vanished consumer only as a status, and then keeps pulling
 * from nothing; stopping the messages ends the iteration, and the loop makes
 * the consumer again.
 */
async function watchStatus(messages: ConsumerMessages, durable: string, log: Logger): Promise<void> {
  try {
    for await (const s of await messages.status()) {
      const gone = s.type === ConsumerEvents.ConsumerDeleted || s.type === ConsumerEvents.ConsumerNotFound || s.type === ConsumerEvents.StreamNotFound;
      const silent = s.type === ConsumerEvents.HeartbeatsMissed && Number(s.data) >= MISSED_HEARTBEATS_LIMIT;
      if (gone || silent) {
        log.warn({ durable, event: s.type, data: s.data }, 'results consumer lost; re-creating it');
        messages.stop();
        return;
      }
    }
  } catch {
    // The messages were closed.
  }
}

/** The migration a message is about; unparseable ones share a key, and are answered at once anyway. */
function keyOf(m: JsMsg): string {
  return parseResultSubject(m.subject)?.uid ?? '?';
}

/** Tells the server the message is in hand every third of the ack wait; the returned function stops it. */
function keepWorking(m: JsMsg, ackWaitMs: number, clock: Clock): () => void {
  let timer: unknown;
  const tick = () => {
    m.working();
    timer = clock.setTimeout(tick, Math.max(100, ackWaitMs / 3));
  };
  timer = clock.setTimeout(tick, Math.max(100, ackWaitMs / 3));
  return () => clock.clearTimeout(timer);
}

interface HandleContext {
  durable: string;
  opts: ConsumeResultsOptions;
  clock: Clock;
  ackWaitMs: number;
  maxDeliver: number;
}

async function handle(m: JsMsg, ctx: HandleContext): Promise<void> {
  const { durable, opts, maxDeliver } = ctx;
  const where = { durable, subject: m.subject, seq: m.seq, deliveries: m.info.deliveryCount };
  try {
    let body: unknown;
    try {
      body = json.decode(m.data);
    } catch {
      opts.log.error(where, 'result is not JSON; discarded');
      opts.onDeadLetter?.('invalid');
      m.term();
      return;
    }
    const parsed = ResultMessage.safeParse(body);
    if (!parsed.success) {
      opts.log.error({ ...where, reason: zodReason(parsed.error) }, 'result fails its schema; discarded');
      opts.onDeadLetter?.('invalid');
      m.term();
      return;
    }
    const r = parsed.data;
    const fields = { ...where, migrationUid: r.migrationUid, attempt: r.attempt, vmi: r.vmi, outcome: r.outcome };
    // The server lets a node publish only under its own node token: a body that names
    // another node, or another migration, than its subject is forged or broken.
    const origin = parseResultSubject(m.subject);
    if (origin && ((origin.node !== undefined && origin.node !== subjectToken(r.node)) || origin.uid !== subjectToken(r.migrationUid))) {
      opts.log.error({ ...fields, node: r.node }, 'result names another node or migration than the subject it was published on; ignored');
      opts.onDeadLetter?.('wrong-node');
      m.term();
      return;
    }
    let verdict: ResultVerdict | void;
    try {
      verdict = await opts.onResult(r, { subjectNode: origin?.node });
    } catch (err) {
      const reason = (err as Error).message;
      if (m.info.deliveryCount >= maxDeliver) {
        opts.log.error({ ...fields, err: reason, maxDeliver }, 'result dead-lettered: its handling failed on every delivery');
        opts.onDeadLetter?.('max-deliveries');
        m.term();
        return;
      }
      const retryInMs = Math.min((opts.retryDelayMs ?? 2000) * 2 ** (m.info.deliveryCount - 1), MAX_RETRY_DELAY_MS);
      opts.log.warn({ ...fields, err: reason, retryInMs }, 'result handling failed; will be redelivered');
      m.nak(retryInMs);
      return;
    }
    if (verdict === 'term') {
      opts.log.info(fields, 'result of no further use; terminated');
      m.term();
      return;
    }
    // Waiting for the server to confirm the ack keeps a lost ack from redelivering a handled result.
    try {
      await m.ackAck();
    } catch (err) {
      opts.log.warn({ ...fields, err: (err as Error).message }, 'ack of handled result not confirmed; it may be delivered again');
    }
  } catch (err) {
    // Answering the server failed (connection gone): the result comes again after the ack wait.
    opts.log.warn({ ...where, err: (err as Error).message }, 'could not answer the server about a result; it will be redelivered');
  }
}

/** Results whose every delivery timed out (no ack, nak or term) surface only as a server advisory. */
function watchMaxDeliveries(nc: NatsConnection, durable: string, opts: ConsumeResultsOptions): Subscription | undefined {
  try {
    const sub = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${RESULTS_STREAM}.${durable}`, {
      callback: (err, msg) => {
        if (err) return;
        let seq: unknown;
        try {
          seq = (json.decode(msg.data) as { stream_seq?: unknown }).stream_seq;
        } catch {
          seq = undefined;
        }
        opts.log.error({ durable, seq }, 'result dead-lettered: never acknowledged within its deliveries');
        opts.onDeadLetter?.('max-deliveries');
      },
    });
    return sub;
  } catch (err) {
    opts.log.warn({ durable, err: (err as Error).message }, 'cannot watch for dead-lettered results');
    return undefined;
  }
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
