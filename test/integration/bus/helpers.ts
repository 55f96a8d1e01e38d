import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import type { Logger } from '../../../src/util/log.js';
import type { ResultMessage } from '../../../src/bus/protocol.js';

export function natsUrl(): string {
  const url = process.env['NATS_URL'];
  if (!url) throw new Error('NATS_URL is not set: run the tests through jest with its globalSetup');
  return url;
}

export function connectTest(servers = natsUrl()): Promise<NatsConnection> {
  return connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
}

let seq = 0;
/** A name no other test uses, so state left on a shared server cannot leak between tests. */
export function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++seq}`;
}

export interface LogLine { level: string; fields: Record<string, unknown>; msg: string }

/** A real (pino) logger whose lines the test can read back. */
export function recordingLogger(): Logger & { lines: LogLine[]; find(msg: string | RegExp): LogLine[] } {
  const lines: LogLine[] = [];
  const stream = {
    write(s: string) {
      const { level, msg, time: _t, pid: _p, hostname: _h, ...fields } = JSON.parse(s) as Record<string, unknown>;
      lines.push({ level: pino.levels.labels[level as number] ?? String(level), fields, msg: String(msg) });
    },
  };
  return Object.assign(pino({ level: 'debug' }, stream), {
    lines,
    find: (m: string | RegExp) => lines.filter((l) => (typeof m === 'string' ? l.msg === m : m.test(l.msg))),
  });
}

export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function resultFor(uid: string, outcome: ResultMessage['outcome'] = 'completed', attempt = 1): ResultMessage {
  return {
    migrationUid: uid,
    attempt,
    vmi: 'default/vm-a',
    node: 'node-a',
    outcome,
    mode: 'PreCopy',
    ...(outcome === 'completed' ? { downtimeMs: 42 } : { reason: `test ${outcome}` }),
    stats: {
      phase: outcome === 'unknown' ? 'running' : outcome,
      mode: 'PreCopy',
      elapsedMs: 1000,
      dataTotal: 1024,
      dataProcessed: 1024,
      dataRemaining: 0,
      memoryBandwidth: 0,
      dirtyRate: 0,
      iteration: 3,
      autoConvergeThrottle: 0,
      bandwidthLimit: 0,
    },
    at: new Date().toISOString(),
  };
}
