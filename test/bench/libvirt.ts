/**
 * What Ferry costs on top of libvirt, in KubeVirt's layout: the guest runs in
 * its launcher pod's own libvirtd and is live-migrated (a) with plain
 * `virsh migrate --live --p2p --persistent` over direct TCP to a spare daemon
 * (and back, unmeasured), and (b) through Ferry: VMIM create → controller →
 * target launcher pod (its own daemon) → handlers over NATS → the handlers'
 * migration proxy over mutual TLS → VMIM Succeeded. Alternating, N times each.
 * Prints a per-stage breakdown (created → Running, the libvirt job, job end →
 * Succeeded), libvirt's transfer rate and downtime for both, and the proxy's
 * own throughput for a 1 GiB loopback stream.
 *
 *   npm run bench:libvirt [-- --runs N --guest idle|dirty --json OUT]
 *
 * Needs root and the libvirt lane's packages (test/libvirt/setup.sh installs them).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command, InvalidArgumentError, Option } from 'commander';
import { JSONCodec } from 'nats';
import { parseObject } from '../../src/api/meta.js';
import { VirtualMachineInstance } from '../../src/api/vmi.js';
import { VirtualMachineInstanceMigration } from '../../src/api/vmim.js';
import { closeBus, connectBus } from '../../src/bus/connection.js';
import { freePort } from '../../src/bus/natsServer.js';
import type { ResultMessage } from '../../src/bus/protocol.js';
import { subjects } from '../../src/bus/subjects.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { unixSocketUri } from '../../src/hypervisor/libvirt/address.js';
import { LibvirtDriver } from '../../src/hypervisor/libvirt/driver.js';
import { isNotFound, KUBEVIRT_RESOURCE, VMI_RESOURCE, VMIM_RESOURCE } from '../../src/kube/client.js';
import { startInformer, type KeepAliveInformer } from '../../src/kube/informer.js';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { cpus, loadavg } from 'node:os';
import { createLogger, silentLogger } from '../../src/util/log.js';
import { guestXml } from '../../src/devcluster/libvirtNodes.js';
import { LauncherLocator } from '../../src/launcher/locator.js';
import { launcherProcesses, prepareMachine, removeDomain, startLauncher, stillRunning, stopLauncher, type Launcher } from '../libvirt/lab.js';
import { proxyThroughput } from './proxyThroughput.js';
import { libvirtStages, TRACE_LOG_FILTERS, TRACE_LOG_OUTPUTS, type LibvirtStages } from './libvirtTrace.js';

const run = promisify(execFile);
const DOMAIN = 'default_vm-1';
const NODES = ['node-1', 'node-2'] as const;
const MiB = 1024 * 1024;

interface Sample {
  run: number;
  how: 'raw' | 'ferry';
  from: string;
  to: string;
  /** Request to done, as the caller sees it. */
  wallMs: number;
  /** libvirt's elapsed time of the migration job. */
  libvirtElapsedMs: number | undefined;
  /** Guest downtime, from libvirt's record of the completed job. */
  downtimeMs: number | undefined;
  /** libvirt's average memory transfer rate of the job (bytes/s), and what it sent. */
  bytesPerSecond: number | undefined;
  dataTotal: number | undefined;
  /** Ferry only: request to the Running phase (target pod, its daemon, prepare, proxy, start), from the VMIM's phase timestamps. */
  toRunningMs?: number;
  /** Ferry only: the job's end to Succeeded as the client saw it. */
  afterJobMs?: number;
  /** Ferry only: from Running to the source handler's result (libvirt's whole perform call, not only its job clock). */
  runningToJobEndMs?: number;
  /** Ferry only: each phase's transition, in ms after the request. */
  phases?: Record<string, number>;
  /** --trace: the source libvirtd's steps of the perform call (both kinds), from its debug log. */
  libvirt?: LibvirtStages;
  /** --trace: wall time outside the source libvirtd's perform call (virsh's own start and connect, or Ferry's control plane)… */
  callerMs?: number;
  /** … of it, before the perform call arrived, and after it returned. */
  beforeMs?: number;
  afterMs?: number;
  /** CPU time the whole machine spent over the measured migration (every process: QEMUs, daemons, virsh or Ferry), and this process's share (Ferry's control plane and proxies). */
  cpuMachineS?: number;
  cpuBenchS?: number;
}

/** CPU spent from now until the returned function is called: the whole machine's, and this process's. */
function cpuMeter(): () => { cpuMachineS: number; cpuBenchS: number } {
  const machine0 = machineBusySeconds();
  const own0 = process.cpuUsage();
  return () => {
    const own = process.cpuUsage(own0);
    return { cpuMachineS: machineBusySeconds() - machine0, cpuBenchS: (own.user + own.system) / 1e6 };
  };
}

/** Busy CPU seconds of the whole machine since boot (/proc/stat: all but idle and iowait). */
function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = cpu;
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100; // USER_HZ
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

class Bench {
  readonly root = mkdtempSync(join(tmpdir(), 'ferry-bench-libvirt-'));
  /** The raw runs' target: a daemon outside any pod, reached over direct TCP. */
  spare: Launcher | undefined;
  env: DevEnvironment | undefined;
  /** Results the source handlers publish, by migration uid. */
  readonly results = new Map<string, ResultMessage>();
  private stopResults: (() => Promise<void>) | undefined;
  /** VMIMs as a watching client (`kubectl wait`) sees them; `changed` wakes whoever waits for one. */
  private vmims: KeepAliveInformer<KubernetesObject> | undefined;
  private changed: (() => void) | undefined;

  constructor(private readonly guest: 'idle' | 'dirty', private readonly trace: boolean, private readonly tls: boolean) {}

  async start(): Promise<void> {
    if (this.trace) {
      // Every launcher (and the spare) is started by launcher.sh, which passes these to its libvirtd.
      process.env['FERRY_LIBVIRTD_LOG_FILTERS'] ??= TRACE_LOG_FILTERS;
      process.env['FERRY_LIBVIRTD_LOG_OUTPUTS'] ??= TRACE_LOG_OUTPUTS;
    }
    if (this.guest === 'dirty') {
      // proxylab's busy guest: 48 MiB rewritten as fast as TCG goes.
      process.env['FERRY_GUEST_DIRTY_KIB'] ??= String(48 * 1024);
      process.env['FERRY_GUEST_DELAY'] ??= '0';
    }
    const image = await prepareMachine(join(this.root, 'build'));
    this.spare = await startLauncher('bench-spare', join(this.root, 'spare'));
    this.env = await startDevEnvironment({
      vms: 1,
      driver: { kind: 'launchers', root: join(this.root, 'cluster'), nodes: 2, guestMemory: '128Mi', domainTemplate: (g) => guestXml(g, this.guest === 'dirty' ? image : undefined) },
      cluster: { podStartDelayMs: 0 },
      // FERRY_BENCH_LOG=<file>: the whole cluster's log, to trace where a stage's time goes.
      log: process.env['FERRY_BENCH_LOG'] ? createLogger({ name: 'bench', level: 'debug', destination: process.env['FERRY_BENCH_LOG'] }) : silentLogger,
    });
    const kube = this.env.kube;
    if (!this.tls) {
      // KubeVirt's migrations.disableTLS: the handlers' proxy carries the stream over plain TCP.
      await kube.patchCustom(KUBEVIRT_RESOURCE, 'kubevirt', 'kubevirt', { spec: { configuration: { migrations: { disableTLS: true } } } });
      // The controller reloads its configuration from its informer; a second is ample on an idle machine,
      // and each run checks what its migration ran with (ferry()).
      await new Promise((r) => setTimeout(r, 1000));
    }
    this.vmims = startInformer<KubernetesObject>({
      kc: kube.kc,
      path: '/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations',
      list: () => kube.listCustom(VMIM_RESOURCE, 'default') as Promise<KubernetesListObject<KubernetesObject>>,
      onChange: () => this.changed?.(),
      log: silentLogger,
    });
    await this.vmims.start();
    const nc = await connectBus({ servers: this.env.natsUrl, name: 'bench-results', log: silentLogger });
    const sub = nc.subscribe(subjects.allResults());
    const codec = JSONCodec<ResultMessage>();
    void (async () => {
      for await (const m of sub) {
        const r = codec.decode(m.data);
        this.results.set(r.migrationUid, r);
      }
    })();
    this.stopResults = async () => {
      sub.unsubscribe();
      await closeBus(nc);
    };
  }

  private async vmi(): Promise<VirtualMachineInstance> {
    const r = parseObject(VirtualMachineInstance, await this.env!.kube.getCustom(VMI_RESOURCE, 'default', 'vm-1'));
    if (!r.ok) throw new Error(r.reason);
    return r.value;
  }

  /** The guest's launcher: node, libvirt socket (through the daemon's root) and the daemon's log (launcherPods.ts keeps it in the pod's dir). */
  async launcher(): Promise<{ node: string; socket: string; log: string }> {
    const vmi = await this.vmi();
    const node = vmi.status?.nodeName;
    if (!node) throw new Error('vm-1 runs on no node');
    const podsDir = this.env!.agents.get(node)!.podsDir!;
    const l = new LauncherLocator(podsDir, node).locate('default/vm-1', vmi.status?.activePods);
    return { node, socket: l.libvirtSocket, log: join(podsDir, l.podUID, 'ferry-launcher', 'log', 'libvirtd.log') };
  }

  /** --trace: the source daemon's stages of the migration that ran in [fromMs, toMs], and the wall time outside them. */
  private traced(log: string, fromMs: number, wallMs: number): Pick<Sample, 'libvirt' | 'callerMs' | 'beforeMs' | 'afterMs'> {
    if (!this.trace) return {};
    let text: string;
    try {
      text = readFileSync(log, 'utf8');
    } catch {
      return {};
    }
    const stages = libvirtStages(text, fromMs - 5, fromMs + wallMs + 5);
    if (!stages) return {};
    const beforeMs = stages.performAt - fromMs;
    return { libvirt: stages, callerMs: wallMs - stages.performMs, beforeMs, afterMs: wallMs - stages.performMs - beforeMs };
  }

  /** libvirt's record of the last migration job of the guest in the daemon at `socket` (the source). */
  private async lastJob(socket: string): Promise<{ elapsedMs?: number; downtimeMs?: number; bytesPerSecond?: number; dataTotal?: number }> {
    const d = new LibvirtDriver({ socketPath: socket, node: 'bench-observer' });
    try {
      const seen = await d.inspectMigration(DOMAIN);
      if (seen.stats?.phase !== 'completed') throw new Error(`no completed migration job of ${DOMAIN}: ${JSON.stringify(seen)}`);
      const st = seen.stats;
      return {
        elapsedMs: st.elapsedMs, dataTotal: st.dataTotal,
        ...(st.downtimeMs !== undefined ? { downtimeMs: st.downtimeMs } : {}),
        ...(st.memoryBandwidth > 0 ? { bytesPerSecond: st.memoryBandwidth } : {}),
      };
    } finally {
      await d.close();
    }
  }

  /** --unsafe: the dirtying guest's disk is not copied, as Ferry's driver sets UNSAFE for a local disk (both see the same file). */
  private async virshMigrate(fromUri: string, toUri: string): Promise<number> {
    const port = await freePort();
    const started = performance.now();
    await run('virsh', ['-c', fromUri, 'migrate', '--live', '--p2p', '--persistent', '--unsafe', DOMAIN, toUri, '--migrateuri', `tcp://127.0.0.1:${port}`], { timeout: 180_000 });
    return performance.now() - started;
  }

  /** (a) virsh from the guest's launcher to the spare daemon over direct TCP, and back (unmeasured). */
  async raw(runNo: number): Promise<Sample> {
    const { node, socket, log } = await this.launcher();
    const home = unixSocketUri(socket);
    const spare = unixSocketUri(this.spare!.socketPath);
    const startedAt = Date.now();
    const cpu = cpuMeter();
    const wallMs = await this.virshMigrate(home, spare);
    const { cpuMachineS } = cpu();
    const traced = this.traced(log, startedAt, wallMs);
    const job = await this.lastJob(socket);
    await this.virshMigrate(spare, home);
    await run('virsh', ['-c', spare, 'undefine', DOMAIN], { timeout: 30_000 });
    return {
      run: runNo, how: 'raw', from: node, to: 'spare', wallMs, libvirtElapsedMs: job.elapsedMs, downtimeMs: job.downtimeMs,
      bytesPerSecond: job.bytesPerSecond, dataTotal: job.dataTotal, cpuMachineS, ...traced,
    };
  }

  /**
   * Waits until the guest's earlier launcher pods are gone. With two nodes the
   * target pod goes where the last migration left, and the required
   * anti-affinity keeps it unscheduled while the old pod there terminates:
   * the clock would count the end of the previous migration (it did with
   * --reaper, whose raw round trips are short). Each run starts from one pod.
   */
  private async settled(): Promise<void> {
    const deadline = performance.now() + 60_000;
    for (;;) {
      const pods = (await this.env!.kube.core.listNamespacedPod({ namespace: 'default', labelSelector: 'kubevirt.io=virt-launcher' })).items;
      if (pods.length <= 1) return;
      if (performance.now() > deadline) throw new Error(`launcher pods of vm-1 still terminating after 60 s: ${pods.map((p) => p.metadata?.name).join(', ')}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  /** (b) a VMIM through Ferry, from create to Succeeded as a client watching the API sees it. */
  async ferry(runNo: number): Promise<Sample> {
    await this.settled();
    const source = this.trace ? await this.launcher() : undefined;
    const from = (await this.vmi()).status?.nodeName ?? '?';
    const kube = this.env!.kube;
    const startedAt = Date.now();
    const name = `bench-${runNo}`;
    const cpu = cpuMeter();
    const started = performance.now();
    const created = (await kube.createCustom(VMIM_RESOURCE, 'default', {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstanceMigration',
      metadata: { name, namespace: 'default' },
      spec: { vmiName: 'vm-1' },
    })) as { metadata: { uid: string } };
    const requestedAt = Date.now();
    let phase = '';
    let phases: Record<string, number> = {};
    // Watched, not polled: a client polling every few ms costs the API server (here in the
    // same process as the controller and handlers) CPU that the migration's own steps need.
    while (phase !== 'Succeeded') {
      const seen = this.vmims!.get(name, 'default');
      const r = seen ? parseObject(VirtualMachineInstanceMigration, seen) : undefined;
      phase = r?.ok ? r.value.status?.phase ?? '' : '';
      phases = Object.fromEntries((r?.ok ? r.value.status?.phaseTransitionTimestamps ?? [] : []).map((p) => [p.phase, Date.parse(p.phaseTransitionTimestamp) - requestedAt]));
      if (phase === 'Failed') throw new Error(`Ferry migration ${name} failed: ${JSON.stringify(r?.ok ? r.value.status : r?.reason)}`);
      if (performance.now() - started > 180_000) throw new Error(`Ferry migration ${name} not done after 180 s (phase ${phase || 'none'})`);
      if (phase !== 'Succeeded') {
        await new Promise<void>((res) => {
          const t = setTimeout(res, 1000); // a safety net: the next look happens anyway
          this.changed = () => { clearTimeout(t); res(); };
        });
        this.changed = undefined;
      }
    }
    const wallMs = performance.now() - started;
    const cpuSpent = cpu();
    const succeededAt = Date.now();
    const result = this.results.get(created.metadata.uid);
    await kube.deleteCustom(VMIM_RESOURCE, 'default', name).catch((err: unknown) => { if (!isNotFound(err)) throw err; });
    const moved = await this.vmi();
    const to = moved.status?.nodeName ?? '?';
    // The configuration the controller ran this migration with (the VMI's migration state records it):
    // a --no-tls run whose controller had not yet reloaded the KubeVirt CR would measure TLS under its name.
    const ran = moved.status?.migrationState;
    if (ran?.migrationUid === created.metadata.uid && Boolean(ran.migrationConfiguration?.['disableTLS']) === this.tls) {
      throw new Error(`Ferry migration ${name} ran with disableTLS ${String(ran.migrationConfiguration?.['disableTLS'] ?? false)}, not the ${this.tls ? 'mTLS' : 'plain TCP'} this run measures`);
    }
    const toRunningMs = phases['Running'];
    const job = result?.stats.elapsedMs;
    return {
      run: runNo, how: 'ferry', from, to, wallMs,
      libvirtElapsedMs: job,
      downtimeMs: result?.downtimeMs,
      bytesPerSecond: result && result.stats.memoryBandwidth > 0 ? result.stats.memoryBandwidth : undefined,
      dataTotal: result?.stats.dataTotal,
      ...(toRunningMs !== undefined ? { toRunningMs } : {}),
      // The source handler stamps its result when the perform call returns (same machine, same clock):
      // the real job end, where wall − Running − libvirt's elapsed would also count libvirt's own
      // steps outside its job clock (the destination QEMU's start, Finish and Confirm).
      ...(result ? { afterJobMs: succeededAt - Date.parse(result.at) } : {}),
      ...(result && toRunningMs !== undefined ? { runningToJobEndMs: Date.parse(result.at) - (requestedAt + toRunningMs) } : {}),
      phases,
      ...cpuSpent,
      ...(source ? this.traced(source.log, startedAt, wallMs) : {}),
    };
  }

  async stop(): Promise<string[]> {
    await this.vmims?.stop();
    await this.stopResults?.();
    const pids = this.spare ? await launcherProcesses(this.spare) : [];
    await this.env?.stop();
    if (this.spare) {
      await removeDomain(this.spare.socketPath, DOMAIN).catch(() => undefined);
      await stopLauncher(this.spare);
    }
    // FERRY_BENCH_KEEP=1: keep the daemons' directories (their libvirtd.log) for a post-mortem.
    if (process.env['FERRY_BENCH_KEEP']) process.stderr.write(`kept ${this.root}\n`);
    else rmSync(this.root, { recursive: true, force: true });
    return (await stillRunning(pids)).map(String);
  }
}

const fmt = (ms: number | undefined) => (ms === undefined ? '-' : `${Math.round(ms)}`);

const mibs = (bps: number | undefined) => (bps === undefined || Number.isNaN(bps) ? '-' : `${(bps / MiB).toFixed(0)}`);

interface Options { runs: number; warmup: number; guest: 'idle' | 'dirty'; json?: string; throughput: boolean; trace: boolean; reaper: boolean; tls: boolean }

type StageKey = Exclude<keyof LibvirtStages, 'performAt'> | 'callerMs' | 'beforeMs' | 'afterMs';

const STAGES: [StageKey, string][] = [
  ['callerMs', 'outside the perform call (virsh / Ferry)'],
  ['beforeMs', '  of it, request → perform call'],
  ['afterMs', '  of it, perform returned → caller done'],
  ['connectMs', 'begin, connect to the target daemon'],
  ['prepareMs', 'prepare: target QEMU started'],
  ['transferMs', 'memory transfer'],
  ['finishMs', 'finish on the target'],
  ['confirmMs', 'confirm on the source'],
  ['stopSourceMs', 'source QEMU stopped and reaped'],
];

/** Median of each traced stage per kind, and the ratio of wall times less the source QEMU's stop (see the README). */
function stageSummary(samples: Sample[]) {
  const traced = samples.filter((s) => s.libvirt && s.callerMs !== undefined);
  const stage = (how: Sample['how'], k: StageKey) =>
    median(traced.filter((s) => s.how === how).map((s) => (k === 'callerMs' || k === 'beforeMs' || k === 'afterMs' ? s[k]! : s.libvirt![k])));
  const medians = Object.fromEntries((['raw', 'ferry'] as const).map((how) => [how, Object.fromEntries(STAGES.map(([k]) => [k, stage(how, k)]))]));
  const lessStop = (how: Sample['how']) => median(traced.filter((s) => s.how === how).map((s) => s.wallMs - s.libvirt!.stopSourceMs));
  return { traced: traced.length, medians, wallLessStopMs: { raw: lessStop('raw'), ferry: lessStop('ferry') }, ratioLessStop: lessStop('ferry') / lessStop('raw') };
}

async function main(opts: Options): Promise<void> {
  // Read by launcher.sh, which starts every daemon of both kinds (see its REAPER).
  if (!opts.reaper) process.env['FERRY_LAUNCHER_REAPER'] = '0';
  const bench = new Bench(opts.guest, opts.trace, opts.tls);
  const samples: Sample[] = [];
  let failure: unknown;
  try {
    process.stdout.write(opts.reaper ? '' : 'no reaper (--no-reaper): exited QEMUs wait for this machine\'s init to reap them, on both sides\n');
    process.stdout.write(`preparing the embedded cluster with launcher pods (one libvirtd each), NATS, controller, handlers with the ${opts.tls ? 'mTLS' : 'plain TCP (--no-tls)'} proxy, and a spare daemon; ${opts.guest} 128 MiB guest…\n`);
    await bench.start();
    for (let i = 1; i <= opts.warmup; i++) {
      const s = await bench.raw(0);
      process.stdout.write(`warm-up round trip with virsh (not counted): ${s.from} → ${s.to} ${fmt(s.wallMs)} ms, libvirt ${fmt(s.libvirtElapsedMs)} ms\n`);
    }
    process.stdout.write(`run  how    from    → to       wall ms  →Running ms  job ms  job end→Succeeded ms  MiB/s  downtime ms\n`);
    for (let i = 1; i <= opts.runs; i++) {
      for (const how of ['raw', 'ferry'] as const) {
        const s = how === 'raw' ? await bench.raw(i) : await bench.ferry(i);
        samples.push(s);
        process.stdout.write(`${String(i).padStart(3)}  ${how.padEnd(5)}  ${s.from} → ${s.to.padEnd(6)}  ${fmt(s.wallMs).padStart(7)}  ${fmt(s.toRunningMs).padStart(11)}  ${fmt(s.libvirtElapsedMs).padStart(6)}  ${fmt(s.afterJobMs).padStart(20)}  ${mibs(s.bytesPerSecond).padStart(5)}  ${fmt(s.downtimeMs).padStart(11)}\n`);
      }
    }
  } catch (err) {
    failure = err;
  }
  const left = await bench.stop();
  if (left.length > 0) process.stderr.write(`processes left running after the bench: ${left.join(' ')}\n`);
  if (failure) throw failure;

  const of = (how: Sample['how'], k: 'wallMs' | 'libvirtElapsedMs' | 'downtimeMs' | 'bytesPerSecond' | 'toRunningMs' | 'afterJobMs' | 'runningToJobEndMs' | 'cpuMachineS' | 'cpuBenchS') =>
    samples.filter((s) => s.how === how).map((s) => s[k]).filter((v): v is number => v !== undefined);
  const pairs = Array.from({ length: opts.runs }, (_, i) => [samples.find((s) => s.run === i + 1 && s.how === 'raw')!, samples.find((s) => s.run === i + 1 && s.how === 'ferry')!] as const);
  const summary = {
    runs: opts.runs,
    warmup: opts.warmup,
    reaper: opts.reaper,
    guest: { domain: DOMAIN, memory: '128Mi', kind: opts.guest === 'idle' ? 'idle (diskless, TCG)' : 'dirtying 48 MiB (TCG)' },
    tls: opts.tls,
    raw: {
      medianWallMs: median(of('raw', 'wallMs')), medianLibvirtElapsedMs: median(of('raw', 'libvirtElapsedMs')), medianDowntimeMs: median(of('raw', 'downtimeMs')), medianBytesPerSecond: median(of('raw', 'bytesPerSecond')),
      medianCpuMachineS: median(of('raw', 'cpuMachineS')),
    },
    ferry: {
      medianToRunningMs: median(of('ferry', 'toRunningMs')), medianWallMs: median(of('ferry', 'wallMs')), medianLibvirtElapsedMs: median(of('ferry', 'libvirtElapsedMs')),
      medianAfterJobMs: median(of('ferry', 'afterJobMs')), medianRunningToJobEndMs: median(of('ferry', 'runningToJobEndMs')), medianDowntimeMs: median(of('ferry', 'downtimeMs')), medianBytesPerSecond: median(of('ferry', 'bytesPerSecond')),
      medianCpuMachineS: median(of('ferry', 'cpuMachineS')), medianCpuBenchS: median(of('ferry', 'cpuBenchS')),
    },
    ratio: 0,
    /** Median of Ferry ÷ raw per run (back to back): less exposed to run-to-run drift. */
    pairedRatio: median(pairs.map(([raw, ferry]) => ferry.wallMs / raw.wallMs)),
    goal: 1.15,
    proxyLoopback: undefined as Record<string, number> | undefined,
    stages: opts.trace ? stageSummary(samples) : undefined,
    samples,
  };
  summary.ratio = summary.ferry.medianWallMs / summary.raw.medianWallMs;
  process.stdout.write('\n');
  process.stdout.write(`median wall time   raw virsh (direct TCP) ${fmt(summary.raw.medianWallMs)} ms   Ferry (proxy, ${opts.tls ? 'mTLS' : 'plain TCP'}) ${fmt(summary.ferry.medianWallMs)} ms   ratio ${summary.ratio.toFixed(3)} (goal ≤ ${summary.goal}; per-run pairs: median ${summary.pairedRatio.toFixed(3)})\n`);
  process.stdout.write(`load average       ${loadavg().map((l) => l.toFixed(2)).join(' ')} (1, 5, 15 min; the machine's other work slows both kinds alike)\n`);
  process.stdout.write(`Ferry stages       VMIM created → Running ${fmt(summary.ferry.medianToRunningMs)} ms   libvirt job ${fmt(summary.ferry.medianLibvirtElapsedMs)} ms (Running → job end ${fmt(summary.ferry.medianRunningToJobEndMs)} ms)   job end → Succeeded ${fmt(summary.ferry.medianAfterJobMs)} ms\n`);
  process.stdout.write(`libvirt job        raw ${fmt(summary.raw.medianLibvirtElapsedMs)} ms   Ferry ${fmt(summary.ferry.medianLibvirtElapsedMs)} ms\n`);
  process.stdout.write(`transfer rate      direct ${mibs(summary.raw.medianBytesPerSecond)} MiB/s   proxied ${mibs(summary.ferry.medianBytesPerSecond)} MiB/s   (${(100 * summary.ferry.medianBytesPerSecond / summary.raw.medianBytesPerSecond).toFixed(0)} %; goal ≥ 80 %)\n`);
  process.stdout.write(`CPU per migration  raw ${summary.raw.medianCpuMachineS.toFixed(2)} s   Ferry ${summary.ferry.medianCpuMachineS.toFixed(2)} s, of it Ferry's process (control plane, proxies) ${summary.ferry.medianCpuBenchS.toFixed(2)} s   (whole machine over each measured migration, ${cpus().length} CPUs)\n`);
  process.stdout.write(`downtime           direct ${fmt(summary.raw.medianDowntimeMs)} ms   proxied ${fmt(summary.ferry.medianDowntimeMs)} ms   (goal ≤ 1.5 × direct)\n`);
  if (summary.stages && summary.stages.traced > 0) {
    const st = summary.stages;
    process.stdout.write(`\nwhere the wall time goes (medians, ms; libvirt's steps from the source daemon's debug log)\n`);
    process.stdout.write(`${'stage'.padEnd(44)}${'raw'.padStart(7)}${'Ferry'.padStart(8)}\n`);
    for (const [k, label] of STAGES) process.stdout.write(`${label.padEnd(44)}${fmt(st.medians['raw']![k]).padStart(7)}${fmt(st.medians['ferry']![k]).padStart(8)}\n`);
    process.stdout.write(`${'wall less the source QEMU\'s stop'.padEnd(44)}${fmt(st.wallLessStopMs.raw).padStart(7)}${fmt(st.wallLessStopMs.ferry).padStart(8)}   ratio ${st.ratioLessStop.toFixed(3)}\n`);
  }
  if (opts.throughput) {
    process.stdout.write('\nproxy alone, 1 GiB loopback stream:\n');
    summary.proxyLoopback = await proxyThroughput({ bytes: 1024 * MiB, transports: ['tls'] });
  }
  if (opts.json) {
    writeFileSync(opts.json, `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write(`wrote ${opts.json}\n`);
  }
}

const program = new Command()
  .name('bench:libvirt')
  .description('Live-migrate one QEMU guest with raw virsh and through Ferry, alternating, and compare wall time and downtime.')
  .option('--runs <n>', 'migrations of each kind', positiveInt, 5)
  .option('--warmup <n>', 'unmeasured virsh round trips first', (v) => (v === '0' ? 0 : positiveInt(v)), 1)
  .addOption(new Option('--guest <kind>', 'idle (SeaBIOS, nearly all zero pages) or dirty (rewrites 48 MiB as fast as it can)').choices(['idle', 'dirty']).default('idle'))
  .option('--no-throughput', 'skip the proxy\'s 1 GiB loopback throughput run')
  .option('--json <out>', 'also write the numbers as JSON to this file')
  .option('--trace', 'debug-log every libvirtd\'s migration steps and print where the wall time goes, stage by stage (raw and Ferry)', false)
  .option('--no-tls', 'carry the stream over plain TCP between the handlers (KubeVirt\'s migrations.disableTLS), to see what TLS costs')
  .option('--no-reaper', 'leave exited QEMUs to this machine\'s init instead of a parent that reaps them at once (where init reaps late, as in this sandbox, each stopped QEMU then costs 1.4-2 s, on both sides)')
  .action((opts: Options) => main(opts));

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`bench:libvirt: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
