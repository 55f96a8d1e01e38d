import { z } from 'zod';
import { SeededRandom } from '../chaos/random.js';
import { ApiError, Errors } from './errors.js';

/**
 * Seeded fault injection for the embedded API server, switched on by the
 * chaos campaign: the answers a real API server gives under load or during a
 * rollout (409 conflicts, 429 throttling, 500s, slow answers) and the things
 * its watches do (streams closed under the client, 410 Gone on resume, events
 * that arrive late). Every fault is an answer the real server can give, with
 * its wording, so the clients' handling of them is what is tested.
 */
export const ApiFaultRates = z.object({
  /** Per update (PUT/PATCH): 409 Conflict, the write not applied. */
  conflict: z.number().min(0).max(1).default(0),
  /** Per request: 429 with Retry-After, nothing done. */
  throttle: z.number().min(0).max(1).default(0),
  /** Per request: 500, nothing done. */
  internal: z.number().min(0).max(1).default(0),
  /** Per request: answered after slowMs. */
  slow: z.number().min(0).max(1).default(0),
  slowMs: z.tuple([z.number().min(0), z.number().min(0)]).default([200, 2000]),
  /** Per watch: the stream is closed after a random time in watchCloseMs. */
  watchClose: z.number().min(0).max(1).default(0),
  watchCloseMs: z.tuple([z.number().min(0), z.number().min(0)]).default([500, 10_000]),
  /** Per watch resumed from a resourceVersion: 410 Gone ("too old resource version"). */
  gone: z.number().min(0).max(1).default(0),
  /** Per watch: its events are held back by delayMs (order kept). */
  delayEvents: z.number().min(0).max(1).default(0),
  delayMs: z.tuple([z.number().min(0), z.number().min(0)]).default([100, 1500]),
  /** Only requests and watches whose path matches this regular expression (all, if absent). */
  paths: z.string().optional(),
});
export type ApiFaultRates = z.infer<typeof ApiFaultRates>;

export type ApiFaultKind = 'conflict' | 'throttle' | 'internal' | 'slow' | 'watch-close' | 'gone' | 'delay-events';

export interface RequestFault {
  delayMs?: number;
  error?: ApiError;
  extraHeaders?: Record<string, string>;
}

export interface WatchFault {
  gone?: ApiError;
  closeAfterMs?: number;
  eventDelayMs?: number;
}

export interface FaultRecord { at: number; kind: ApiFaultKind; method: string; path: string }

/** Paths the faults leave alone: health and discovery (a client that cannot discover cannot be tested). */
function exempt(path: string): boolean {
  return path === '/version' || path === '/healthz' || path === '/readyz' || path === '/livez' || path === '/api' || path === '/apis'
    || path.startsWith('/openapi') || /^\/apis\/[^/]+(\/[^/]+)?$/.test(path) || /^\/api\/v1$/.test(path)
    || path.includes('/leases');
}

export class ApiFaults {
  private rates: ApiFaultRates | undefined;
  private readonly random: SeededRandom;
  readonly counts: Record<ApiFaultKind, number> = { conflict: 0, throttle: 0, internal: 0, slow: 0, 'watch-close': 0, gone: 0, 'delay-events': 0 };
  /** The latest faults, newest last (bounded), for a violation's timeline. */
  readonly recent: FaultRecord[] = [];

  constructor(seed: number, private readonly now: () => number = Date.now) {
    this.random = new SeededRandom(seed);
  }

  private readonly watchClosers: Array<(pick: () => boolean) => number> = [];

  /** The API server registers how to end its open watches. */
  onCloseWatches(closer: (pick: () => boolean) => number): void {
    this.watchClosers.push(closer);
  }

  /** Ends each open watch with probability `p` (counted as watch-close faults). */
  closeOpenWatches(p: number): number {
    let n = 0;
    for (const close of this.watchClosers) n += close(() => this.random.chance(p));
    this.counts['watch-close'] += n;
    return n;
  }

  /** Starts (or changes) the faults; rates are per request or per watch. */
  enable(rates: Partial<z.input<typeof ApiFaultRates>>): void {
    this.rates = ApiFaultRates.parse(rates);
  }

  disable(): void {
    this.rates = undefined;
  }

  get enabled(): boolean {
    return this.rates !== undefined;
  }

  private note(kind: ApiFaultKind, method: string, path: string): void {
    this.counts[kind]++;
    this.recent.push({ at: this.now(), kind, method, path });
    if (this.recent.length > 200) this.recent.shift();
  }

  private between([lo, hi]: readonly [number, number]): number {
    return lo + (hi - lo) * this.random.next();
  }

  /** What to do to one non-watch request, decided before it is served. */
  request(method: string, path: string, target: { plural: string; group: string; name: string } | undefined): RequestFault | undefined {
    const r = this.rates;
    if (!r || exempt(path) || (r.paths !== undefined && !new RegExp(r.paths).test(path))) return undefined;
    const fault: RequestFault = {};
    if (this.random.chance(r.slow)) {
      fault.delayMs = this.between(r.slowMs);
      this.note('slow', method, path);
    }
    const update = method === 'PUT' || method === 'PATCH';
    if (update && target && this.random.chance(r.conflict)) {
      fault.error = Errors.conflict(target.plural, target.group, target.name);
      this.note('conflict', method, path);
    } else if (this.random.chance(r.throttle)) {
      fault.error = throttled();
      fault.extraHeaders = { 'Retry-After': '1' };
      this.note('throttle', method, path);
    } else if (this.random.chance(r.internal)) {
      fault.error = Errors.internal('etcdserver: request timed out');
      this.note('internal', method, path);
    }
    return fault.delayMs === undefined && !fault.error ? undefined : fault;
  }

  /** What to do to one watch. */
  watch(path: string, resourceVersion: string | undefined): WatchFault | undefined {
    const r = this.rates;
    if (!r || exempt(path) || (r.paths !== undefined && !new RegExp(r.paths).test(path))) return undefined;
    if (resourceVersion && resourceVersion !== '0' && this.random.chance(r.gone)) {
      this.note('gone', 'WATCH', path);
      return { gone: Errors.gone(`too old resource version: ${resourceVersion} (${Number(resourceVersion) + 1})`) };
    }
    const fault: WatchFault = {};
    if (this.random.chance(r.watchClose)) {
      fault.closeAfterMs = this.between(r.watchCloseMs);
      this.note('watch-close', 'WATCH', path);
    }
    if (this.random.chance(r.delayEvents)) {
      fault.eventDelayMs = this.between(r.delayMs);
      this.note('delay-events', 'WATCH', path);
    }
    return fault.closeAfterMs === undefined && fault.eventDelayMs === undefined ? undefined : fault;
  }
}

/** The real server's answer when its max-in-flight limit is reached. */
function throttled(): ApiError {
  return new ApiError(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds: 1 });
}
