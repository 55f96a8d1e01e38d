/** One span as the console draws it (plain data; times in ms since the epoch). */
export interface SpanView {
  name: string;
  spanId: string;
  parentSpanId?: string;
  start: number;
  /** Absent while the span is open. */
  end?: number;
  service?: string;
  error: boolean;
  statusMessage?: string;
  attributes: Record<string, string | number | boolean>;
}
