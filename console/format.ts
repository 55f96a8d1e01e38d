// Display formatting for the console page (pure).

const IEC = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < IEC.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${IEC[i]}`;
}

export const rate = (n: number | undefined): string => (n ? `${bytes(n)}/s` : '–');

export function duration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Wall-clock time of day for an RFC 3339 stamp. */
export function clock(iso: string | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '–' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** "+12s" late or "−5s" early of `actual` against `predicted`. */
export function drift(predicted: string | undefined, actual: string | undefined): string {
  if (!predicted || !actual) return '';
  const d = (Date.parse(actual) - Date.parse(predicted)) / 1000;
  if (!Number.isFinite(d)) return '';
  return `${d >= 0 ? '+' : '−'}${duration(Math.abs(d))}`;
}

export const percent = (done: number | undefined, total: number | undefined): number =>
  done !== undefined && total ? Math.max(0, Math.min(100, (100 * done) / total)) : 0;
