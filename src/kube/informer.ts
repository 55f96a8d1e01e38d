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
  let restartTimer: NodeJS.Timeout | undefined;
  inf.on('add', (o) => opts.onChange(o, 'add'));
  inf.on('update', (o) => opts.onChange(o, 'update'));
  inf.on('delete', (o) => opts.onChange(o, 'delete'));
  inf.on('error', (err) => {
    if (stopped) return;
    opts.log.warn({ path: opts.path, err: String((err as Error)?.message ?? err) }, 'watch failed; restarting informer');
    restartTimer = setTimeout(() => {
      if (!stopped) inf.start().catch(() => undefined);
    }, opts.restartDelayMs ?? 1000);
  });
  return {
    get: (name, ns) => inf.get(name, ns),
    list: (ns) => inf.list(ns),
    synced: () => synced,
    async start() {
      await inf.start();
      synced = true;
    },
    async stop() {
      stopped = true;
      if (restartTimer) clearTimeout(restartTimer);
      await inf.stop();
    },
  };
}
