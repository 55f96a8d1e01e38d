import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span } from '@opentelemetry/api';
import { idGenerator, migrationTraceIds } from './ids.js';

/**
 * The spans of one migration: a root span for the whole VMIM, one span per
 * phase under it, and (through `run`) whatever the controller does in a phase
 * — handler commands carry that context to the nodes in NATS headers. With no
 * tracer provider registered every call is a no-op.
 */

export const tracer = () => trace.getTracer('ferry');

export const Attr = {
  migration: 'ferry.migration.name',
  namespace: 'k8s.namespace.name',
  uid: 'ferry.migration.uid',
  vmi: 'ferry.vmi',
  phase: 'ferry.migration.phase',
  node: 'k8s.node.name',
  command: 'ferry.command',
} as const;

/** A context whose parent is the migration's root span, from its uid alone (no message needed). */
export function migrationContext(uid: string, base: Context = ROOT_CONTEXT): Context {
  const { traceId, rootSpanId } = migrationTraceIds(uid);
  return trace.setSpanContext(base, { traceId, spanId: rootSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
}

export interface MigrationRef {
  uid: string;
  namespace: string;
  name: string;
  vmi: string;
  /** When the VMIM was created (the root span starts there, also after a controller restart). */
  createdMs: number;
}

export class MigrationTrace {
  private readonly root: Span;
  private phaseSpan: Span | undefined;
  private phaseName: string | undefined;
  private readonly attrs: Record<string, string>;

  constructor(private readonly ref: MigrationRef, now: number) {
    this.attrs = { [Attr.namespace]: ref.namespace, [Attr.migration]: ref.name, [Attr.uid]: ref.uid, [Attr.vmi]: ref.vmi };
    const { traceId, rootSpanId } = migrationTraceIds(ref.uid);
    idGenerator.force({ traceId, spanId: rootSpanId });
    try {
      this.root = tracer().startSpan(`migration ${ref.namespace}/${ref.vmi}`, { root: true, kind: SpanKind.INTERNAL, startTime: Math.min(ref.createdMs, now), attributes: this.attrs });
    } finally {
      idGenerator.clear();
    }
  }

  /** Ends the current phase's span and starts the next. */
  phase(phase: string, now: number): void {
    if (phase === this.phaseName) return;
    this.phaseSpan?.end(now);
    this.phaseName = phase;
    this.root.setAttribute(Attr.phase, phase);
    this.phaseSpan = tracer().startSpan(`phase ${phase}`, { startTime: now, attributes: { ...this.attrs, [Attr.phase]: phase } }, trace.setSpan(ROOT_CONTEXT, this.root));
  }

  /** Runs `fn` inside the current phase's span: commands sent from there join this trace. */
  run<T>(fn: () => T): T {
    const parent = this.phaseSpan ?? this.root;
    return context.with(trace.setSpan(context.active(), parent), fn);
  }

  /** The migration reached Succeeded or Failed. */
  end(outcome: 'Succeeded' | 'Failed', now: number, reason?: string): void {
    this.phaseSpan?.end(now);
    this.phaseSpan = undefined;
    if (outcome === 'Failed') this.root.setStatus({ code: SpanStatusCode.ERROR, ...(reason ? { message: reason } : {}) });
    this.root.end(now);
  }

  /** The controller lets go of the migration without an outcome (it stops; another takes over). */
  abandon(now: number): void {
    this.phaseSpan?.end(now);
    this.phaseSpan = undefined;
  }
}

/** The hypervisor's migration job on the source node: a child of the command that started it, else of the migration. */
export function startJobSpan(uid: string, attrs: Record<string, string | number>, now: number): Span {
  const active = trace.getSpan(context.active()) ? context.active() : migrationContext(uid);
  return tracer().startSpan('hypervisor job', { startTime: now, attributes: { [Attr.uid]: uid, ...attrs } }, active);
}

export function endJobSpan(span: Span, outcome: { status: string; reason?: string | undefined; attrs?: Record<string, number | string | undefined> }, now: number): void {
  for (const [k, v] of Object.entries(outcome.attrs ?? {})) if (v !== undefined) span.setAttribute(k, v);
  span.setAttribute('ferry.job.outcome', outcome.status);
  if (outcome.status !== 'completed') span.setStatus({ code: SpanStatusCode.ERROR, ...(outcome.reason ? { message: outcome.reason } : {}) });
  span.end(now);
}
