import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/**
 * Writes spans to a file as OTLP/JSON, one ExportTraceServiceRequest per
 * line (the layout the OpenTelemetry Collector's file exporter writes and its
 * otlpjsonfile receiver reads), so a dev run's traces can be replayed into any
 * tracing backend later.
 */
export class OtlpJsonFileExporter implements SpanExporter {
  private chain: Promise<void>;
  private readonly decoder = new TextDecoder();

  constructor(private readonly file: string) {
    this.chain = mkdir(path.dirname(path.resolve(file)), { recursive: true }).then(() => undefined);
  }

  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    const bytes = JsonTraceSerializer.serializeRequest(spans);
    if (!bytes) {
      done({ code: ExportResultCode.FAILED, error: new Error('spans could not be serialized') });
      return;
    }
    const line = `${this.decoder.decode(bytes)}\n`;
    this.chain = this.chain.then(() => appendFile(this.file, line)).then(
      () => done({ code: ExportResultCode.SUCCESS }),
      (err: unknown) => done({ code: ExportResultCode.FAILED, error: err as Error }),
    );
  }

  async forceFlush(): Promise<void> {
    await this.chain;
  }

  async shutdown(): Promise<void> {
    await this.chain;
  }
}
