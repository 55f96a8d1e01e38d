import { randomBytes } from 'node:crypto';
import type { ApiFaults } from './faults.js';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { systemClock, type Clock } from '../util/clock.js';
import { ClusterAuth } from './auth/clusterAuth.js';
import { devClusterAuth, type DevClusterAuth } from './auth/kubeconfig.js';
import { AdmissionChain, admissionResources, type ServiceTarget, type WebhookCall } from './admission/index.js';
import { withDisruptionStatus } from './eviction.js';
import { ApiServer } from './http.js';
import { kubeConfigYaml } from './kubeconfig.js';
import { Kubelet, type PodRuntime } from './kubelet.js';
import { ResourceRegistry, type ResourceDefinition, type ResourceType } from './registry.js';
import { registerBuiltinResources } from './resources.js';
import { Scheduler } from './scheduler.js';
import { ObjectStore } from './store.js';

export interface DevClusterOptions {
  /** 0 = a free port (default). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Kubelet: a bound Pending pod becomes Running and Ready after this long. Default 300. */
  podStartDelayMs?: number;
  /** Kubelet: a pod being deleted is removed after this long. Default 100. */
  podTerminationDelayMs?: number;
  /** Unschedulable pods are retried this often (and whenever pods or nodes change). Default 500. */
  schedulerIntervalMs?: number;
  /** Changes kept for watches to resume from. Default 10000. */
  watchHistory?: number;
  /** One line per request and a line per scheduler/kubelet action, when given. */
  log?: (msg: string) => void;
  /** How often watches that allow bookmarks get one. Default 5000. */
  bookmarkIntervalMs?: number;
  /** Time for the kubelet and scheduler timers and for timestamps. Default: the system clock. */
  clock?: Clock;
  /**
   * Enforce authentication and RBAC (default off: any request without a token is allowed).
   * client-node sends its bearer token over plain HTTP; kubectl does not, so with RBAC on
   * kubectl is anonymous (discovery and health only).
   */
  rbac?: boolean;
  /** Told of every admission webhook call (latency measurements, tests). */
  onWebhookCall?: (call: WebhookCall) => void;
  /** What runs behind pods (the libvirt dev mode's launcher daemons); default: nothing. */
  podRuntime?: PodRuntime;
  /** Seeded API fault injection, off until enabled on it (the chaos campaign). */
  faults?: ApiFaults;
}

export interface DevCluster {
  url: string;
  port: number;
  store: ObjectStore;
  /** Bearer token of the kubeconfig user. */
  token: string;
  /** With `rbac: true`: tokens and kubeconfigs for ServiceAccounts and other users. */
  auth: DevClusterAuth | undefined;
  /** Writes a kubeconfig for this cluster (context "ferry-dev"). */
  writeKubeconfig(file: string): Promise<void>;
  kubeConfigYaml(): string;
  /** Adds a CRD-like resource type; served, discoverable and printable at once. */
  registerResource(def: ResourceDefinition): ResourceType;
  /**
   * Says that `target` serves port `port` of Service `namespace/name` (the dev
   * cluster has no pod network: this is what kube-proxy and the Service's
   * endpoints do on a real cluster). Admission webhooks configured with that
   * Service are called there. Returns a function that removes the route.
   */
  routeService(namespace: string, name: string, port: number, target: ServiceTarget): () => void;
  /** Stops HTTP (open watches included), the scheduler and the kubelet; nothing is left running. */
  close(): Promise<void>;
}

export async function startDevCluster(opts: DevClusterOptions = {}): Promise<DevCluster> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log;
  const registry = new ResourceRegistry();
  registerBuiltinResources(registry);
  for (const def of admissionResources) registry.register(def);
  const store = new ObjectStore({
    registry,
    watchHistory: opts.watchHistory ?? 10_000,
    now: () => clock.now(),
    onListenerError: (err) => log?.(`watch listener failed: ${(err as Error)?.stack ?? String(err)}`),
  });
  store.setReadView('poddisruptionbudgets.policy', withDisruptionStatus(store));
  // Namespaces every real cluster starts with.
  for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) store.create('namespaces', { metadata: { name } });
  const token = randomBytes(16).toString('hex');
  const host = opts.host ?? '127.0.0.1';
  const auth = opts.rbac ? new ClusterAuth(store, token) : undefined;
  const admission = new AdmissionChain(store, log, opts.onWebhookCall);
  const api = new ApiServer({ store, admission, token, auth, now: () => clock.now(), log, bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 5_000, faults: opts.faults });
  const scheduler = new Scheduler(store, { intervalMs: opts.schedulerIntervalMs ?? 500, clock, log });
  const kubelet = new Kubelet(store, { startDelayMs: opts.podStartDelayMs ?? 300, terminationDelayMs: opts.podTerminationDelayMs ?? 100, clock, log, runtime: opts.podRuntime });
  const port = await api.listen(opts.port ?? 0, host);
  scheduler.start();
  kubelet.start();
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    store,
    token,
    auth: auth && devClusterAuth(auth, url),
    kubeConfigYaml: () => kubeConfigYaml(url, token),
    async writeKubeconfig(file: string) {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, kubeConfigYaml(url, token), { mode: 0o600 });
    },
    registerResource: (def) => registry.register(def),
    routeService: (namespace, name, port, target) => admission.router.add(namespace, name, port, target),
    close() {
      closed ??= (async () => {
        scheduler.stop();
        kubelet.stop();
        await api.close();
      })();
      return closed;
    },
  };
}
