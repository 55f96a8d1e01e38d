import { hrTimeToMilliseconds } from '@opentelemetry/core';
import type { Context } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { SpanView } from './view.js';

/**
 * The spans of the latest migrations' traces, kept in memory so `ferry dev`'s
 * console can draw one migration's spans, including those still open.
 */
export class TraceStore implements SpanProcessor {
  private readonly traces = new Map<string, Map<string, ReadableSpan>>();

  constructor(private readonly maxTraces = 500) {}

  onStart(span: Span, _ctx: Context): void {
    this.keep(span);
  }

  onEnd(span: ReadableSpan): void {
    this.keep(span);
  }

  private keep(span: ReadableSpan): void {
    const { traceId, spanId } = span.spanContext();
    let spans = this.traces.get(traceId);
    if (!spans) {
      spans = new Map();
      this.traces.set(traceId, spans);
      // Forget the oldest trace first.
      if (this.traces.size > this.maxTraces) this.traces.delete(this.traces.keys().next().value!);
    }
    spans.set(spanId, span);
  }

  spans(traceId: string): SpanView[] {
    return [...(this.traces.get(traceId)?.values() ?? [])].map(viewOf).sort((a, b) => a.start - b.start);
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    this.traces.clear();
    return Promise.resolve();
  }
}

export function viewOf(s: ReadableSpan): SpanView {
  const attributes: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(s.attributes)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') attributes[k] = v;
  const service = s.resource.attributes['service.name'];
  return {
    name: s.name,
    spanId: s.spanContext().spanId,
    ...(s.parentSpanContext?.spanId ? { parentSpanId: s.parentSpanContext.spanId } : {}),
    start: hrTimeToMilliseconds(s.startTime),
    ...(s.ended ? { end: hrTimeToMilliseconds(s.endTime) } : {}),
    ...(typeof service === 'string' ? { service } : {}),
    error: s.status.code === 2,
    ...(s.status.message ? { statusMessage: s.status.message } : {}),
    attributes,
  };
}
