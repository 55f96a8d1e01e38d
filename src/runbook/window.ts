import { CronExpressionParser } from 'cron-parser';
import { DateTime, IANAZone } from 'luxon';
import type { WindowSpec } from '../api/maintenanceWindow.js';

/**
 * When a maintenance window is open. Pure: every function takes the time it
 * reasons about. Instants are epoch milliseconds.
 */

export interface Occurrence {
  start: number;
  end: number;
}

export type ResolvedWindow =
  | { kind: 'fixed'; occurrence: Occurrence }
  | { kind: 'recurring'; schedule: string; durationMs: number; timeZone: string };

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** "2h", "90m", "1h30m", "1.5h", "250ms" → milliseconds. */
export function parseDuration(text: string): number {
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = re.lastIndex;
  }
  if (text.length === 0 || at !== text.length) throw new Error(`"${text}" is not a duration (expected e.g. "2h", "90m", "1h30m")`);
  return total;
}

/** Has an explicit offset ("Z", "+02:00"): an instant, whatever the zone says. */
const HAS_OFFSET = /(?:[zZ]|[+-]\d{2}:?\d{2})$/;

function instant(text: string, zone: string, what: string): number {
  const dt = HAS_OFFSET.test(text) ? DateTime.fromISO(text, { setZone: true }) : DateTime.fromISO(text, { zone });
  if (!dt.isValid) throw new Error(`window.${what} "${text}" is not an RFC 3339 time or a local time like 2025-06-01T02:00 (${dt.invalidExplanation ?? dt.invalidReason})`);
  return dt.toMillis();
}

/** Checks what the schema cannot (times, zone, cron) and turns the spec into instants and rules. */
export function resolveWindow(spec: WindowSpec): { ok: true; window: ResolvedWindow } | { ok: false; reason: string } {
  const zone = spec.timeZone ?? 'UTC';
  if (!IANAZone.isValidZone(zone)) return { ok: false, reason: `window.timeZone "${zone}" is not an IANA time zone (e.g. Europe/Berlin)` };
  try {
    if ('schedule' in spec) {
      const durationMs = parseDuration(spec.duration);
      if (!(durationMs > 0)) return { ok: false, reason: 'window.duration must be longer than 0' };
      try {
        CronExpressionParser.parse(spec.schedule, { tz: zone });
      } catch (err) {
        return { ok: false, reason: `window.schedule "${spec.schedule}" is not a cron expression: ${(err as Error).message}` };
      }
      return { ok: true, window: { kind: 'recurring', schedule: spec.schedule, durationMs, timeZone: zone } };
    }
    const start = instant(spec.start, zone, 'start');
    const end = instant(spec.end, zone, 'end');
    if (!(end > start)) return { ok: false, reason: `window.end (${spec.end}) must be after window.start (${spec.start})` };
    return { ok: true, window: { kind: 'fixed', occurrence: { start, end } } };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/**
 * The occurrence open at `now`, else the next one to open; undefined when no
 * occurrence is left (a fixed window that has ended).
 */
export function occurrenceAt(w: ResolvedWindow, now: number): Occurrence | undefined {
  if (w.kind === 'fixed') return w.occurrence.end > now ? w.occurrence : undefined;
  // The latest opening at or before now is the only one that can still be open.
  const back = CronExpressionParser.parse(w.schedule, { tz: w.timeZone, currentDate: new Date(now + 1) });
  const last = back.prev().getTime();
  if (last + w.durationMs > now) return { start: last, end: last + w.durationMs };
  const ahead = CronExpressionParser.parse(w.schedule, { tz: w.timeZone, currentDate: new Date(now) });
  const next = ahead.next().getTime();
  return { start: next, end: next + w.durationMs };
}

/** The occurrence that opens after `after` closes (for recurring windows), else undefined. */
export function occurrenceAfter(w: ResolvedWindow, after: Occurrence): Occurrence | undefined {
  if (w.kind === 'fixed') return undefined;
  return occurrenceAt(w, after.end);
}

export function isOpen(o: Occurrence | undefined, now: number): boolean {
  return o !== undefined && o.start <= now && now < o.end;
}
