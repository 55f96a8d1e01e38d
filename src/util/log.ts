import { hostname } from 'node:os';
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

/**
 * Structured JSON logs. Every line about a migration carries its
 * namespace/name/uid and phase as fields (child loggers), so one grep or one
 * log query follows a migration through controller and handlers.
 *
 * Each line is one JSON object with each key once. pino writes a child's
 * bindings and the call's fields side by side, so `phase` bound at one level
 * and logged again at another would appear twice (JSON parsers then keep one
 * arbitrarily); lines are therefore rewritten with the innermost value kept.
 * The process's own name goes under `logger`, leaving `name` to the objects
 * the lines are about (a VMIM, a node).
 */
export type Logger = PinoLogger;

/** One JSON line with each key once (the last, innermost value). */
export function dedupeKeys(line: string): string {
  try {
    return `${JSON.stringify(JSON.parse(line))}\n`;
  } catch {
    return line; // not JSON: pass it on untouched
  }
}

/** A destination that rewrites each line with unique keys before handing it on. */
export function uniqueKeys(out: DestinationStream): DestinationStream {
  return { write: (line: string) => out.write(dedupeKeys(line)) };
}

export function createLogger(opts: { name: string; level?: string; destination?: DestinationStream | string } = { name: 'ferry' }): Logger {
  const level = opts.level ?? process.env['FERRY_LOG_LEVEL'] ?? 'info';
  const options = { level, base: { pid: process.pid, hostname: hostname(), logger: opts.name } };
  if (typeof opts.destination === 'string') {
    // Synchronous: a process that exits right after an error still has its log file opened and flushed.
    return pino(options, uniqueKeys(pino.destination({ dest: opts.destination, sync: true, mkdir: true })));
  }
  return pino(options, uniqueKeys(opts.destination ?? pino.destination(1)));
}

/** A logger that discards everything (tests that don't look at logs). */
export const silentLogger: Logger = pino({ level: 'silent' });
