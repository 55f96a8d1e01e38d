import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OtlpJsonFileExporter } from './fileExporter.js';
import { idGenerator } from './ids.js';
import type { TraceStore } from './store.js';

export interface TracingOptions {
  /** service.name of this process's spans (ferry-controller, ferry-handler, ferry-dev). */
  service: string;
  /** OTLP/HTTP collector base URL; default $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT. */
  otlpEndpoint?: string | undefined;
  /** Also write spans to this file as OTLP/JSON lines. */
  file?: string | undefined;
  /** Keep spans in memory too (the dev console). */
  store?: TraceStore | undefined;
  /** Extra resource attributes (k8s.node.name of a handler). */
  attributes?: Record<string, string>;
}

export interface Tracing {
  /** Where spans go, in a sentence for the start-up banner. */
  describe: string;
  /** Exports what is left and unregisters the global tracer. */
  shutdown(): Promise<void>;
}

/** The OTLP traces URL configured by flag or the standard environment variables, if any. */
export function otlpTracesUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const signal = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'];
  if (!flag && signal) return signal;
  const base = flag ?? env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  if (!base) return undefined;
  return /\/v1\/traces\/?$/.test(base) ? base : `${base.replace(/\/$/, '')}/v1/traces`;
}

/**
 * Registers this process's tracer provider when spans have somewhere to go
 * (OTLP, a file, the in-memory store); otherwise does nothing, and every span
 * call stays a no-op.
 */
export function startTracing(o: TracingOptions): Tracing | undefined {
  const url = otlpTracesUrl(o.otlpEndpoint);
  const processors: SpanProcessor[] = [];
  const where: string[] = [];
  if (url) {
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url })));
    where.push(`OTLP ${url}`);
  }
  if (o.file) {
    processors.push(new BatchSpanProcessor(new OtlpJsonFileExporter(o.file), { scheduledDelayMillis: 1000 }));
    where.push(`file ${o.file}`);
  }
  if (o.store) processors.push(o.store);
  if (processors.length === 0) return undefined;
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': o.service, ...o.attributes }),
    idGenerator,
    spanProcessors: processors,
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    describe: where.join(', ') || 'memory',
    async shutdown() {
      await provider.forceFlush().catch(() => undefined);
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
