import { context, propagation, SpanKind, SpanStatusCode, trace, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
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
  try {
    const out = await context.with(ctx, () => send(hdrs.keys().length > 0 ? hdrs : undefined));
    span.end();
    return out;
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    span.end();
    throw err;
  }
}

/** Serves a command inside a server span that continues the sender's trace from the message headers. */
export async function tracedServe<T>(hdrs: MsgHdrs | undefined, node: string, command: string, attrs: Record<string, string | number>, serve: () => Promise<T>): Promise<T> {
  const parent = propagation.extract(context.active(), hdrs, getter);
  const span = tracer().startSpan(`handler ${command}`, { kind: SpanKind.SERVER, attributes: { [Attr.command]: command, [Attr.node]: node, ...attrs } }, parent);
  try {
    const out = await context.with(trace.setSpan(parent, span), serve);
    span.end();
    return out;
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    span.end();
    throw err;
  }
}
