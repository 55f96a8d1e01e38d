import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';

/**
 * A list-watch cache that keeps itself alive: client-node's informer stops on a
 * watch error (API server restart, network blip), so we restart it after a
 * delay. Consumers only get told *which* object changed; they read the cache.
 */
export interface Cache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): ReadonlyArray<T>;
}

export interface KeepAliveInformer<T extends KubernetesObject> extends Cache<T> {
  /** The watched API path (for logs). */
  readonly path: string;
  synced(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function startInformer<T extends KubernetesObject>(opts: {
  kc: KubeConfig;
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  onChange: (obj: T, type: 'add' | 'update' | 'delete') => void;
  log: Logger;
  restartDelayMs?: number;
}): KeepAliveInformer<T> {
  const inf = makeInformer<T>(opts.kc, opts.path, opts.list, opts.labelSelector);
  let stopped = false;
  let synced = false;
  /** Bumped on every error: an attempt is good only if none came while it ran. */
  let errors = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  const attempt = async () => {
    const before = errors;
    await inf.start();
    // client-node reports a failed list or watch through 'error', not by rejecting.
    if (!stopped && errors === before) synced = true;
  };
  inf.on('add', (o) => opts.onChange(o, 'add'));
  inf.on('update', (o) => opts.onChange(o, 'update'));
  inf.on('delete', (o) => opts.onChange(o, 'delete'));
  inf.on('error', (err) => {
    if (stopped) return;
    errors++;
    // The cache may be missing changes from here on: not ready until a restart lists and watches again.
    synced = false;
    if (restartTimer) return; // one restart at a time, however many errors come
    opts.log.warn({ path: opts.path, err: String((err as Error)?.message ?? err) }, 'watch failed; restarting informer');
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!stopped) attempt().catch(() => undefined);
    }, opts.restartDelayMs ?? 1000);
  });
  return {
    path: opts.path,
    get: (name, ns) => inf.get(name, ns),
    list: (ns) => inf.list(ns),
    synced: () => synced,
    start: attempt,
    async stop() {
      stopped = true;
      synced = false;
      if (restartTimer) clearTimeout(restartTimer);
      restartTimer = undefined;
      await inf.stop();
    },
  };
}

/**
 * Resolves once every informer has listed and watches (true), or once `stopped`
 * says so (false). start() alone is not enough: a list that fails (a throttled
 * or erroring API server) ends start() with an empty cache and a retry pending,
 * and a controller that acted on it would take "not in the cache" for "gone"
 * (chaos seed 13: a new leader resumed a Running migration without its VMI, so
 * without its source node, and could never settle it).
 */
export async function waitForCacheSync(
  informers: ReadonlyArray<Pick<KeepAliveInformer<KubernetesObject>, 'path' | 'synced'>>,
  opts: { log: Logger; stopped: () => boolean; pollMs?: number; reportEveryMs?: number },
): Promise<boolean> {
  const started = Date.now();
  let reported = started;
  for (;;) {
    if (opts.stopped()) return false;
    const waiting = informers.filter((i) => !i.synced()).map((i) => i.path);
    if (waiting.length === 0) return true;
    if (Date.now() - reported >= (opts.reportEveryMs ?? 5000)) {
      reported = Date.now();
      opts.log.warn({ waiting, waitedMs: reported - started }, 'waiting for caches to sync');
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 50));
  }
}
