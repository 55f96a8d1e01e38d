import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { freePort, startNatsServer, type NatsServerHandle } from '../../src/bus/natsServer.js';
import { scenarioFerryConfig } from '../../src/devcluster/scenarioSeed.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import type { Scenario } from '../../src/devcluster/scenarioFile.js';
import type { Logger } from '../../src/util/log.js';
// @ts-expect-error -- plain ESM helper shared with the jest setup (no types)
import { ensureBuilt } from '../support/ensureBuilt.mjs';

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
  /**
   * Run the controller as `ferry controller` in a process of its own (API
   * server, handlers and sims stay in this one) and measure it: CPU seconds,
   * peak RSS, and the NATS messages of the whole drain. Ignores `natsUrl`.
   */
  measure?: boolean;
}

export interface Measurements {
  controllerCpuSeconds: number;
  controllerPeakRssMb: number;
  /** This process: the embedded API server, every handler and sim driver, and the bench itself. */
  apiServerProcessPeakRssMb: number;
  natsMessages: number;
  /** The controller's own `ferry_admission_decide_duration_seconds` over the drain. */
  decide?: DecideStats;
}

/** Admission passes over the drain: how many, the mean, and the histogram bucket the 99th percentile falls in. */
export interface DecideStats {
  count: number;
  meanMs: number;
  /** Upper bound of the bucket holding the 99th percentile (Infinity past the last bucket). */
  p99AtMostMs: number;
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
  /** Writes after the controller started and before the drain (not counted in apiWrites). */
  setupWrites: number;
  measured?: Measurements;
}

export async function runReal(s: Scenario, o: RealOptions = {}): Promise<RealResult> {
  const timeScale = o.timeScale ?? 1;
  const config = scenarioFerryConfig(s, { evacuation: { backoffBaseSeconds: 20 / timeScale } });
  const requests: Record<string, number> = {};
  const writes: Record<string, number> = {};
  let counting = false;
  /** Writes before the drain (disruption budgets for every VMI on a fresh cluster, and the like), and when the last was. */
  let setupWrites = 0;
  let lastWriteAt = performance.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-real-'));
  // FERRY_BENCH_KEEP=<dir>: keep the run's evidence there (the controller's log, every API request with its
  // wall time, the VMIMs at the end), to find where time went without running the drain again.
  const keep = process.env['FERRY_BENCH_KEEP'];
  let apiLog: string[] = [];
  const flushApiLog = (): void => {
    if (keep && apiLog.length > 0) appendFileSync(path.join(keep, 'api.log'), apiLog.join(''));
    apiLog = [];
  };
  if (keep) mkdirSync(keep, { recursive: true });
  let nats: NatsServerHandle | undefined;
  let monitor = 0;
  if (o.measure) {
    monitor = await freePort();
    nats = await startNatsServer({ extraArgs: ['-m', String(monitor)] });
  }
  const natsUrl = nats?.url ?? o.natsUrl;
  const env: DevEnvironment = await startDevEnvironment({
    scenario: s,
    config,
    timeScale,
    ...(natsUrl ? { natsUrl } : {}),
    ...(o.measure ? { controller: false, kubeconfigPath: path.join(dir, 'kubeconfig') } : {}),
    ...(o.log ? { log: o.log } : {}),
    cluster: {
      podStartDelayMs: o.podStartDelayMs ?? 20,
      podTerminationDelayMs: 10,
      schedulerIntervalMs: 100,
      log: (line) => {
        if (keep) {
          apiLog.push(`${new Date().toISOString()} ${line}\n`);
          if (apiLog.length >= 2000) flushApiLog();
        }
        const m = /^(GET|POST|PUT|PATCH|DELETE) (\S+)/.exec(line);
        if (!m) return;
        if (m[1] !== 'GET') lastWriteAt = performance.now();
        if (!counting) {
          if (m[1] !== 'GET') setupWrites++;
          return;
        }
        requests[m[1]!] = (requests[m[1]!] ?? 0) + 1;
        if (m[1] !== 'GET') {
          const what = `${m[1]} ${resourceOf(m[2]!)}`;
          writes[what] = (writes[what] ?? 0) + 1;
        }
      },
    },
  });
  let child: ChildProcess | undefined;
  try {
    const metricsPort = o.measure ? await freePort() : 0;
    if (o.measure) child = await startControllerProcess(dir, config, natsUrl!, metricsPort);
    // A drain starts on a settled cluster: the controller's first pass (a budget per VMI) is setup, not the drain's.
    const settleBy = performance.now() + 120_000;
    while (performance.now() - lastWriteAt < 1500 && performance.now() < settleBy) await new Promise((r) => setTimeout(r, 200));
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
    const cpu0 = child ? cpuSeconds(child.pid!) : 0;
    const msgs0 = o.measure ? await natsMessages(monitor) : 0;
    const decide0 = child ? await decideHistogram(metricsPort) : undefined;
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
    const measured: Measurements | undefined = child
      ? {
          controllerCpuSeconds: cpuSeconds(child.pid!) - cpu0,
          controllerPeakRssMb: peakRssMb(child.pid!),
          apiServerProcessPeakRssMb: peakRssMb(process.pid),
          natsMessages: (await natsMessages(monitor)) - msgs0,
          ...(decide0 ? { decide: decideStats(decide0, await decideHistogram(metricsPort)) } : {}),
        }
      : undefined;
    const wallMs = (finished ? endedAt : performance.now()) - t0;
    if (keep) {
      flushApiLog();
      writeFileSync(path.join(keep, 'vmims.json'), JSON.stringify(env.cluster.store.list('virtualmachineinstancemigrations').items));
      writeFileSync(path.join(keep, 'drain.json'), JSON.stringify({ startedAt: performance.timeOrigin + t0, wallMs, finished }));
    }
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
      setupWrites,
      ...(measured ? { measured } : {}),
    };
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await env.stop();
    await nats?.stop();
    if (keep && existsSync(path.join(dir, 'controller.log'))) cpSync(path.join(dir, 'controller.log'), path.join(keep, 'controller.log'), { force: true });
    rmSync(dir, { recursive: true, force: true });
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

/** `ferry controller` against the embedded cluster, as it runs in a real deployment (one replica, no election). */
async function startControllerProcess(dir: string, config: object, natsUrl: string, metricsPort: number): Promise<ChildProcess> {
  const cfg = path.join(dir, 'ferry.yaml');
  writeFileSync(cfg, toYaml(config));
  const logFile = path.join(dir, 'controller.log');
  const out = openSync(logFile, 'w');
  // As shipped (the image runs bin/ferry.js on the dist/ bundle): the sources through tsx cost the
  // process its transpiler and source maps, well over 100 MB of RSS that no deployment carries.
  // FERRY_BENCH_CONTROLLER_FROM_SOURCE=1 runs src/ instead (readable CPU profiles).
  const fromSource = process.env['FERRY_BENCH_CONTROLLER_FROM_SOURCE'] === '1';
  if (!fromSource) ensureBuilt();
  const entry = fromSource ? ['--import', 'tsx', fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))] : [fileURLToPath(new URL('../../bin/ferry.js', import.meta.url))];
  const child = spawn(
    process.execPath,
    // FERRY_BENCH_CONTROLLER_NODE_OPTIONS: extra node flags for the controller (e.g. --cpu-prof --cpu-prof-dir=DIR).
    [...(process.env['FERRY_BENCH_CONTROLLER_NODE_OPTIONS']?.split(' ').filter(Boolean) ?? []), ...entry, 'controller', '--kubeconfig', path.join(dir, 'kubeconfig'), '--nats', natsUrl, '--config', cfg, '--no-leader-elect', '--metrics-port', String(metricsPort)],
    { stdio: ['ignore', out, out] },
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    const text = readFileSync(logFile, 'utf8');
    if (text.includes('caches synced')) return child;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ferry controller did not start:\n${text.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** utime + stime of a process, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5), counted from after the command name (field 3 is index 0).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Peak resident set (VmHWM) of a process, in MB. */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

interface Histogram {
  /** Cumulative counts by upper bound, ascending. */
  buckets: Array<[number, number]>;
  sum: number;
  count: number;
}

/** The controller's decide-duration histogram, read from its /metrics. */
async function decideHistogram(port: number): Promise<Histogram> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const name = 'ferry_admission_decide_duration_seconds';
  const h: Histogram = { buckets: [], sum: 0, count: 0 };
  for (const line of text.split('\n')) {
    const b = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)`).exec(line);
    if (b) h.buckets.push([b[1] === '+Inf' ? Infinity : Number(b[1]), Number(b[2])]);
    else if (line.startsWith(`${name}_sum `)) h.sum = Number(line.split(' ')[1]);
    else if (line.startsWith(`${name}_count `)) h.count = Number(line.split(' ')[1]);
  }
  if (h.buckets.length === 0) throw new Error(`the controller's /metrics has no ${name}`);
  return h;
}

/** What the histogram gained between two reads. */
export function decideStats(before: Histogram, after: Histogram): DecideStats {
  const count = after.count - before.count;
  const target = Math.ceil(count * 0.99);
  let p99AtMostMs = Infinity;
  for (const [i, [le, n]] of after.buckets.entries()) {
    if (n - (before.buckets[i]?.[1] ?? 0) >= target) {
      p99AtMostMs = le * 1000;
      break;
    }
  }
  return { count, meanMs: count > 0 ? ((after.sum - before.sum) * 1000) / count : NaN, p99AtMostMs };
}

async function natsMessages(monitorPort: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${monitorPort}/varz`);
  const v = (await r.json()) as { in_msgs: number };
  return v.in_msgs;
}
