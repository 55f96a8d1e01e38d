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

/** A plain aligned table, like kubectl's. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i] ?? 0)).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
