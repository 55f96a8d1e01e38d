import { ErrorCode, JSONCodec, headers, type Msg, type NatsConnection, type Subscription } from 'nats';
import { performance } from 'node:perf_hooks';
import { COMMANDS, subjects, type Command } from './subjects.js';
import { ErrorReply, replies, requests, type CommandReply, type CommandRequest } from './protocol.js';
import type { Logger } from '../util/log.js';
import { zodReason } from './zodReason.js';
import { EPOCH_HEADER, parseEpoch, type EpochFence } from './epoch.js';
import { KeyedLimiter } from '../util/keyedLimiter.js';
import { tracedRequest, tracedServe } from '../tracing/nats.js';

const json = JSONCodec<unknown>();

/** Why a command did not get a successful answer: the handler's own code, or what went wrong on the way. */
export type CommandErrorCode = ErrorReply['code'] | 'unreachable' | 'timeout' | 'malformed-reply';

/** Thrown to the controller by requestCommand. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly code: CommandErrorCode,
    readonly node: string,
    readonly command: Command,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Codes after which the controller knows nothing happened on the node: the
 * request was refused before anything started. Everything else (no answer, a
 * garbled answer, an internal error, a handler that has no record) leaves the
 * outcome open and must be resolved by asking, never by assuming nothing happened.
 * Handlers answer `driver-error` only where their driver guarantees the
 * operation had no effect.
 */
const DEFINITE: ReadonlySet<CommandErrorCode> = new Set<CommandErrorCode>(['bad-request', 'conflict', 'stale-epoch', 'driver-error']);

/** True when `err` is a command refusal after which nothing was done on the node. */
export function isDefinite(err: unknown): boolean {
  return err instanceof CommandError && DEFINITE.has(err.code);
}

/** Thrown by a command handler to answer with a specific ErrorReply code. */
export class HandlerError extends Error {
  override readonly name = 'HandlerError';
  constructor(readonly code: ErrorReply['code'], message: string) {
    super(message);
  }
}

export interface RequestOptions {
  timeoutMs?: number;
  /** The sending leader's epoch (its Lease's leaseTransitions), sent as the Ferry-Epoch header; absent ⇒ 0. */
  epoch?: number;
  /** Called once per request with its round-trip time; `ok` is false for any error. */
  onRoundTrip?: (command: Command, ms: number, ok: boolean) => void;
}

/** Sends one command to the handler on `node` and returns its validated reply. */
export async function requestCommand<C extends Command>(
  nc: NatsConnection,
  node: string,
  command: C,
  payload: CommandRequest<C>,
  opts: RequestOptions = {},
): Promise<CommandReply<C>> {
  if (opts.epoch !== undefined && !(Number.isSafeInteger(opts.epoch) && opts.epoch >= 0)) {
    throw new CommandError('bad-request', node, command, `refusing to send ${command} to handler ${node} with leader epoch ${opts.epoch}: not a non-negative integer`);
  }
  const checked = requests[command].safeParse(payload);
  if (!checked.success) {
    throw new CommandError('bad-request', node, command, `refusing to send invalid ${command} to handler ${node}: ${zodReason(checked.error)}`);
  }
  const started = performance.now();
  let ok = false;
  try {
    const reply = await send(nc, node, command, checked.data, opts.timeoutMs ?? 5000, opts.epoch);
    ok = true;
    return reply;
  } finally {
    opts.onRoundTrip?.(command, performance.now() - started, ok);
  }
}

async function send<C extends Command>(
  nc: NatsConnection,
  node: string,
  command: C,
  payload: unknown,
  timeoutMs: number,
  epoch: number | undefined,
): Promise<CommandReply<C>> {
  let msg: Msg;
  try {
    // The trace context (src/tracing) and the leader's epoch ride in the message headers.
    msg = await tracedRequest(node, command, (traceHeaders) => {
      const h = traceHeaders ?? headers();
      if (epoch !== undefined) h.set(EPOCH_HEADER, String(epoch));
      return nc.request(subjects.command(node, command), json.encode(payload), { timeout: timeoutMs, headers: h });
    });
  } catch (err) {
    throw transportError(err, node, command, timeoutMs);
  }
  let body: unknown;
  try {
    body = json.decode(msg.data);
  } catch (err) {
    throw new CommandError('malformed-reply', node, command, `malformed reply from handler ${node} to ${command}: not JSON (${(err as Error).message})`);
  }
  const reply = replies[command].safeParse(body);
  if (reply.success) return reply.data as CommandReply<C>;
  const refusal = ErrorReply.safeParse(body);
  if (refusal.success) {
    throw new CommandError(refusal.data.code, node, command, `handler ${node} refused ${command}: ${refusal.data.error}`);
  }
  throw new CommandError('malformed-reply', node, command, `malformed reply from handler ${node} to ${command}: ${zodReason(reply.error)}`);
}

function transportError(err: unknown, node: string, command: Command, timeoutMs: number): CommandError {
  const code = (err as { code?: string }).code;
  if (code === ErrorCode.NoResponders) {
    return new CommandError('unreachable', node, command, `no handler for node ${node} is listening (${command})`);
  }
  if (code === ErrorCode.Timeout) {
    return new CommandError('timeout', node, command, `handler ${node} did not answer ${command} within ${timeoutMs} ms`);
  }
  return new CommandError('unreachable', node, command, `cannot send ${command} to handler ${node}: ${(err as Error).message}`);
}

export type CommandHandlers = { [C in Command]: (req: CommandRequest<C>) => Promise<CommandReply<C>> };

/** One queue group per node: a handler restarting next to its old self never double-serves a command. */
export const handlerQueue = (node: string) => `ferry-handler.${node}`;

/** Commands that change nothing on the node: a stale leader may still read. */
const UNFENCED: ReadonlySet<Command> = new Set<Command>(['list-jobs']);

export interface ServeOptions {
  /** Refuses commands from a leader older than one already obeyed (see epoch.ts). */
  fence?: EpochFence;
  /**
   * Commands handled at once (default 32). Beyond that the next command waits
   * in the subscription until one finishes: a flood of commands slows down
   * instead of starting unbounded work against the hypervisor.
   */
  maxConcurrent?: number;
}

export const DEFAULT_MAX_CONCURRENT_COMMANDS = 32;

/**
 * Serves every command addressed to `node`. Requests are validated (and fenced
 * by leader epoch) before any handler runs; whatever goes wrong is answered
 * with an ErrorReply, never silence.
 */
export function serveCommands(nc: NatsConnection, node: string, handlers: CommandHandlers, log: Logger, opts: ServeOptions = {}): Subscription {
  const sub = nc.subscribe(subjects.nodeCommands(node), { queue: handlerQueue(node) });
  const limiter = new KeyedLimiter(opts.maxConcurrent ?? DEFAULT_MAX_CONCURRENT_COMMANDS);
  let seq = 0;
  void (async () => {
    for await (const m of sub) {
      if (limiter.size >= limiter.limit) log.warn({ node, inFlight: limiter.size }, 'command limit reached; the next commands wait');
      await limiter.accept();
      // Each command its own key: no ordering between them, only the bound.
      void limiter.run(String(++seq), () => answer(m, node, handlers, log, opts.fence)).catch((err: unknown) => {
        // Only replying itself can fail here (the connection closed under us); the controller will time out.
        log.error({ node, subject: m.subject, err: (err as Error).message }, 'could not reply to command');
      });
    }
  })().catch((err: unknown) => {
    // The server refused the subscription (e.g. a NATS user without permission for this node's subjects).
    log.error({ node, subject: subjects.nodeCommands(node), err: (err as Error).message }, 'cannot serve commands: subscription refused');
  });
  return sub;
}

async function answer(m: Msg, node: string, handlers: CommandHandlers, log: Logger, fence: EpochFence | undefined): Promise<void> {
  const command = m.subject.slice(m.subject.lastIndexOf('.') + 1) as Command;
  const started = performance.now();
  const respond = (body: unknown, fields: object, msg: string, level: 'info' | 'warn' | 'error' = 'info') => {
    log[level]({ node, command, ...fields, ms: Math.round(performance.now() - started) }, msg);
    if (m.reply) m.respond(json.encode(body));
  };
  const refuse = (code: ErrorReply['code'], error: string, fields: object = {}, level: 'warn' | 'error' = 'warn') =>
    respond({ ok: false, code, error } satisfies ErrorReply, { ...fields, code, error }, `command refused: ${command}`, level);

  if (!(COMMANDS as readonly string[]).includes(command)) return refuse('bad-request', `unknown command "${command}"`);
  let body: unknown;
  try {
    body = json.decode(m.data);
  } catch {
    return refuse('bad-request', `${command} payload is not JSON`);
  }
  const req = requests[command].safeParse(body);
  if (!req.success) return refuse('bad-request', `invalid ${command} request: ${zodReason(req.error)}`);
  const ref = refFields(req.data);
  const epoch = parseEpoch(m.headers?.get(EPOCH_HEADER));
  if (epoch === undefined) return refuse('bad-request', `${EPOCH_HEADER} header "${m.headers?.get(EPOCH_HEADER)}" is not a non-negative integer`, ref);
  if (fence && !UNFENCED.has(command)) {
    let admission;
    try {
      admission = await fence.admit(epoch);
    } catch (err) {
      return refuse('internal', `cannot record leader epoch ${epoch}: ${(err as Error).message}`, ref, 'error');
    }
    if (!admission.admitted) {
      return refuse('stale-epoch', `${command} comes from leader epoch ${epoch}, but this handler already obeys epoch ${admission.highest}; nothing was done`, { ...ref, epoch, highest: admission.highest });
    }
  }
  let result: unknown;
  try {
    result = await tracedServe(m.headers, node, command, ref as Record<string, string | number>, () => (handlers[command] as (r: unknown) => Promise<unknown>)(req.data));
  } catch (err) {
    const code = err instanceof HandlerError ? err.code : 'internal';
    return refuse(code, err instanceof Error ? err.message : String(err), ref, code === 'internal' ? 'error' : 'warn');
  }
  const out = replies[command].safeParse(result);
  if (!out.success) return refuse('internal', `handler produced an invalid ${command} reply: ${zodReason(out.error)}`, ref, 'error');
  respond(out.data, ref, `command served: ${command}`);
}

function refFields(req: object): object {
  const r = req as Partial<Record<'migrationUid' | 'attempt' | 'vmi', unknown>>;
  return r.migrationUid === undefined ? {} : { migrationUid: r.migrationUid, attempt: r.attempt, vmi: r.vmi };
}
