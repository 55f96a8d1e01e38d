import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

/**
 * Structured JSON logs. Every line about a migration carries its
 * namespace/name/uid and phase as fields (child loggers), so one grep or one
 * log query follows a migration through controller and handlers.
 */
export type Logger = PinoLogger;

export function createLogger(opts: { name: string; level?: string; destination?: DestinationStream | string } = { name: 'ferry' }): Logger {
  const level = opts.level ?? process.env['FERRY_LOG_LEVEL'] ?? 'info';
  if (typeof opts.destination === 'string') {
    return pino({ name: opts.name, level }, pino.destination({ dest: opts.destination, sync: false, mkdir: true }));
  }
  return opts.destination ? pino({ name: opts.name, level }, opts.destination) : pino({ name: opts.name, level });
}

/** A logger that discards everything (tests that don't look at logs). */
export const silentLogger: Logger = pino({ level: 'silent' });
