import { createHash, randomBytes } from 'node:crypto';
import type { IdGenerator } from '@opentelemetry/sdk-trace-base';

/**
 * One trace per VMIM, whichever process writes to it and however often the
 * controller restarts: the trace id and the root span's id are derived from
 * the VMIM's uid, so every span about a migration lands in the same trace.
 */
export function migrationTraceIds(uid: string): { traceId: string; rootSpanId: string } {
  const h = createHash('sha256').update(`ferry-migration:${uid}`).digest('hex');
  return { traceId: h.slice(0, 32), rootSpanId: h.slice(32, 48) };
}

/**
 * Random ids, except for the one span a caller asks for by id (the root span
 * of a migration's trace): force() just before starting it, clear() right after
 * (startSpan is synchronous, so no other span can take them).
 */
export class MigrationIdGenerator implements IdGenerator {
  private forced: { traceId: string; spanId: string } | undefined;

  /** The next span started as a root gets these ids. */
  force(ids: { traceId: string; spanId: string }): void {
    this.forced = ids;
  }

  clear(): void {
    this.forced = undefined;
  }

  generateTraceId(): string {
    return this.forced?.traceId ?? randomBytes(16).toString('hex');
  }

  // The SDK asks for the span id before the trace id: both stay forced until clear().
  generateSpanId(): string {
    return this.forced?.spanId ?? randomBytes(8).toString('hex');
  }
}

/** The process's id generator (startTracing gives it to the provider). */
export const idGenerator = new MigrationIdGenerator();
