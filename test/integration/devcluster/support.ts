import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PolicyV1Api, Watch } from '@kubernetes/client-node';
import { startDevCluster, type DevCluster, type DevClusterOptions } from '../../../src/devcluster/index.js';

/** Fast timings so a test's pods start and stop within tens of milliseconds. */
export async function startFastCluster(opts: DevClusterOptions = {}): Promise<DevCluster> {
  return startDevCluster({ podStartDelayMs: 20, podTerminationDelayMs: 20, schedulerIntervalMs: 50, ...opts });
}

export function clientsFor(cluster: DevCluster) {
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeConfigYaml());
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    coordination: kc.makeApiClient(CoordinationV1Api),
    policy: kc.makeApiClient(PolicyV1Api),
    watch: new Watch(kc),
  };
}

export interface StatusBody { kind: string; status: string; reason: string; message: string; code: number; details?: { causes?: { reason: string; message: string }[] } }

/** Awaits a call that must fail, and returns the API server's Status for it. */
export async function apiFailure(call: Promise<unknown>): Promise<StatusBody & { httpCode: number }> {
  try {
    await call;
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    if (typeof e.code !== 'number') throw err;
    const body = typeof e.body === 'string' ? (JSON.parse(e.body) as StatusBody) : (e.body as StatusBody);
    return { ...body, httpCode: e.code };
  }
  throw new Error('expected the call to fail, but it succeeded');
}

export async function eventually<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function readyNode(name: string, opts: { memory?: string; labels?: Record<string, string>; unschedulable?: boolean } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...opts.labels } },
    spec: opts.unschedulable ? { unschedulable: true } : {},
    status: {
      allocatable: { cpu: '8', memory: opts.memory ?? '8Gi', pods: '110' },
      capacity: { cpu: '8', memory: opts.memory ?? '8Gi', pods: '110' },
      conditions: [{ type: 'Ready', status: 'True' }],
      addresses: [{ type: 'InternalIP', address: `192.168.1.${name.replace(/\D/g, '') || '9'}` }],
    },
  };
}

export function podBody(name: string, opts: { memory?: string; labels?: Record<string, string>; spec?: Record<string, unknown>; nodeName?: string } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: opts.labels ?? {} },
    spec: {
      ...(opts.nodeName ? { nodeName: opts.nodeName } : {}),
      containers: [{ name: 'compute', image: 'sim', resources: { requests: { memory: opts.memory ?? '1Gi' } } }],
      ...opts.spec,
    },
  };
}

export const antiAffinityTo = (labels: Record<string, string>) => ({
  affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: labels }, topologyKey: 'kubernetes.io/hostname' }] } },
});

export const VMIM = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstancemigrations' } as const;
export const VMI = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances' } as const;
