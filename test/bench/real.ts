import { performance } from 'node:perf_hooks';
import { scenarioFerryConfig } from '../../src/devcluster/scenarioSeed.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import type { Scenario } from '../../src/devcluster/scenarioFile.js';
import type { Logger } from '../../src/util/log.js';

/**
 * The scenario's drain through the real control plane: the embedded API
 * server built from the scenario, a nats-server, one handler per node on the
 * sim driver (each node's NIC as its speed, every VM's memory, dirty rate and
 * working set), and the controller admitting with the limits core and pushing
 * bandwidth over NATS. Sim time runs `timeScale` times faster than the wall
 * clock, so the wall-clock makespan × timeScale is in scenario seconds,
 * comparable with the virtual-time one.
 *
 * What is not scaled: the controller's and the handlers' own timers (the
 * progress and completion timeouts, back-offs, the admission tick) run on the
 * wall clock, so with a time scale above 1 they are that much more lenient in
 * scenario time. The evacuation back-off is scaled through Ferry's config.
 */
export interface RealOptions {
  timeScale?: number;
  /** Kubelet start delay of a target pod (wall ms). Default 20. */
  podStartDelayMs?: number;
  /** Give up after this much wall time. Default 10 minutes. */
  timeoutMs?: number;
  natsUrl?: string;
  log?: Logger;
  /** Told every time a drained node has one VM fewer. */
  onProgress?: (left: number, total: number) => void;
}

export interface RealResult {
  scenario: string;
  timeScale: number;
  /** Scenario seconds from the first cordon until no VM is left on a drained node; null on time-out. */
  makespanS: number | null;
  wallMs: number;
  unfinished: string[];
  /** VMIMs by final phase. */
  phases: Record<string, number>;
  /** Median wall ms from admission (Scheduling) to Running: what the control plane adds before the first byte. */
  setupWallMs: number;
  /** Median wall ms a VMIM spent in each phase (from its creation), as its status records them. */
  phaseWallMs: Record<string, number>;
  /** API requests the control plane made during the drain, by verb. */
  apiRequests: Record<string, number>;
  /** Writes by verb and resource (`PATCH virtualmachineinstancemigrations/status`). */
  apiWrites: Record<string, number>;
}

export async function runReal(s: Scenario, o: RealOptions = {}): Promise<RealResult> {
  const timeScale = o.timeScale ?? 1;
  const config = scenarioFerryConfig(s, { evacuation: { backoffBaseSeconds: 20 / timeScale } });
  const requests: Record<string, number> = {};
  const writes: Record<string, number> = {};
  let counting = false;
  const env: DevEnvironment = await startDevEnvironment({
    scenario: s,
    config,
    timeScale,
    ...(o.natsUrl ? { natsUrl: o.natsUrl } : {}),
    ...(o.log ? { log: o.log } : {}),
    cluster: {
      podStartDelayMs: o.podStartDelayMs ?? 20,
      podTerminationDelayMs: 10,
      schedulerIntervalMs: 100,
      log: (line) => {
        const m = /^(GET|POST|PUT|PATCH|DELETE) (\S+)/.exec(line);
        if (!counting || !m) return;
        requests[m[1]!] = (requests[m[1]!] ?? 0) + 1;
        if (m[1] !== 'GET') {
          const what = `${m[1]} ${resourceOf(m[2]!)}`;
          writes[what] = (writes[what] ?? 0) + 1;
        }
      },
    },
  });
  try {
    const drained = new Set(s.drain);
    const leaving = new Set(s.vms.filter((v) => drained.has(v.node)).map((v) => v.name));
    const total = leaving.size;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    let endedAt = 0;
    const watch = env.cluster.store.watchRaw('virtualmachineinstances', {}, (e) => {
      const name = e.object.metadata.name ?? '';
      const node = (e.object as { status?: { nodeName?: string } }).status?.nodeName;
      if (!leaving.has(name) || node === undefined || drained.has(node)) return;
      leaving.delete(name);
      o.onProgress?.(leaving.size, total);
      if (leaving.size === 0) {
        endedAt = performance.now();
        resolveDone();
      }
    });
    counting = true;
    const t0 = performance.now();
    // As `kubectl drain` after KubeVirt's taint: cordon and taint each node, in the scenario's order.
    for (const n of s.drain) {
      await env.kube.patchNode(n, { spec: { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } });
    }
    const timeoutMs = o.timeoutMs ?? 600_000;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([done.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
    clearTimeout(timer);
    watch.stop();
    counting = false;
    const wallMs = (finished ? endedAt : performance.now()) - t0;
    const phases: Record<string, number> = {};
    const spent: Record<string, number[]> = {};
    const setup: number[] = [];
    for (const m of env.cluster.store.list('virtualmachineinstancemigrations').items) {
      const st = (m as { status?: { phase?: string; phaseTransitionTimestamps?: Array<{ phase: string; phaseTransitionTimestamp: string }> } }).status;
      const p = st?.phase ?? '(none)';
      phases[p] = (phases[p] ?? 0) + 1;
      const ts = st?.phaseTransitionTimestamps ?? [];
      const created = Date.parse(m.metadata.creationTimestamp ?? '');
      let prev = { phase: '(created)', at: created };
      let admitted: number | undefined;
      for (const t of ts) {
        const at = Date.parse(t.phaseTransitionTimestamp);
        (spent[prev.phase] ??= []).push(at - prev.at);
        if (t.phase === 'Scheduling') admitted = at;
        if (t.phase === 'Running' && admitted !== undefined) setup.push(at - admitted);
        prev = { phase: t.phase, at };
      }
    }
    return {
      scenario: s.name,
      timeScale,
      makespanS: finished ? (wallMs * timeScale) / 1000 : null,
      wallMs,
      unfinished: [...leaving].sort(),
      phases,
      phaseWallMs: Object.fromEntries(Object.entries(spent).map(([p, xs]) => [p, median(xs)])),
      setupWallMs: median(setup),
      apiRequests: requests,
      apiWrites: writes,
    };
  } finally {
    await env.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

/** `/apis/g/v/namespaces/ns/things/name/status?x` → `things/status`. */
function resourceOf(url: string): string {
  const parts = url.split('?')[0]!.split('/').filter(Boolean);
  const at = parts[0] === 'api' ? 2 : 3;
  const rest = parts.slice(at);
  const [resource, , sub] = rest[0] === 'namespaces' && rest.length > 2 ? rest.slice(2) : rest;
  return sub ? `${resource}/${sub}` : resource ?? url;
}
