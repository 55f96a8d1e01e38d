import { formatBytes } from '../api/quantity.js';

/** "3m12s", "45s", "1h02m" — for ages and ETAs in tables and progress lines. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatRate(bytesPerSecond: number | undefined): string {
  return bytesPerSecond ? `${formatBytes(bytesPerSecond)}/s` : '-';
}

export function age(timestamp: string | undefined, now = Date.now()): string {
  const t = timestamp ? Date.parse(timestamp) : NaN;
  return Number.isNaN(t) ? '-' : formatDuration((now - t) / 1000);
}

/**
 * A plain aligned table, like kubectl's. `maxWidths[i]` cuts longer cells of
 * column i with an ellipsis, so one absurd name does not widen every row.
 */
export function table(headers: string[], rows: string[][], opts: { maxWidths?: readonly (number | undefined)[] } = {}): string {
  const clip = (cell: string, i: number) => {
    const max = opts.maxWidths?.[i];
    return max !== undefined && cell.length > max ? `${cell.slice(0, Math.max(1, max - 1))}…` : cell;
  };
  const cells = rows.map((r) => r.map((c, i) => clip(c ?? '', i)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (cs: string[]) => cs.map((c, i) => (c ?? '').padEnd(widths[i] ?? 0)).join('   ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}
