import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { headers, type MsgHdrs } from 'nats';
import { Attr, tracer } from './migration.js';

/** Trace context travels in NATS message headers (W3C traceparent/tracestate). */
const setter: TextMapSetter<MsgHdrs> = { set: (h, k, v) => h.set(k, v) };
const getter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, k) => h?.get(k) || undefined,
  keys: (h) => (h ? h.keys() : []),
};

/**
 * A client span for one command sent to a node's handler, and the headers
 * that carry it; none when no tracing is set up (no propagator registered).
 */
export async function tracedRequest<T>(node: string, command: string, send: (hdrs: MsgHdrs | undefined) => Promise<T>): Promise<T> {
  const span = tracer().startSpan(`command ${command}`, { kind: SpanKind.CLIENT, attributes: { [Attr.command]: command, [Attr.node]: node } });
  const ctx = trace.setSpan(context.active(), span);
  const hdrs = headers();
  propagation.inject(ctx, hdrs, setter);
  return runInSpan(span, ctx, () => send(hdrs.keys().length > 0 ? hdrs : undefined));
}

/** Serves a command inside a server span that continues the sender's trace from the message headers. */
export async function tracedServe<T>(hdrs: MsgHdrs | undefined, node: string, command: string, attrs: Record<string, string | number>, serve: () => Promise<T>): Promise<T> {
  const parent = propagation.extract(context.active(), hdrs, getter);
  const span = tracer().startSpan(`handler ${command}`, { kind: SpanKind.SERVER, attributes: { [Attr.command]: command, [Attr.node]: node, ...attrs } }, parent);
  return runInSpan(span, trace.setSpan(parent, span), serve);
}

/** Runs work as the span's context and ends the span, marked as an error when the work throws. */
async function runInSpan<T>(span: Span, ctx: Context, work: () => Promise<T>): Promise<T> {
  try {
    return await context.with(ctx, work);
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    throw err;
  } finally {
    span.end();
  }
}
