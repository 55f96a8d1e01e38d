/**
 * What Ferry's orchestration costs on top of libvirt: the same QEMU guest is
 * live-migrated between two libvirtd launchers (a) with plain
 * `virsh migrate --live --p2p --persistent` and (b) through Ferry (VMIM create →
 * controller → handlers over NATS → libvirt driver → VMIM Succeeded),
 * alternating, N times each. Both do the same libvirt operation (live,
 * peer-to-peer, persistent on the target); Ferry adds the target pod, the
 * commands, the status writes and letting go of the source definition.
 *
 *   npm run bench:libvirt [-- --runs N --json OUT]
 *
 * Needs root and the libvirt lane's packages (test/libvirt/setup.sh installs them).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command, InvalidArgumentError } from 'commander';
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
import { isNotFound, VMI_RESOURCE, VMIM_RESOURCE } from '../../src/kube/client.js';
import { silentLogger } from '../../src/util/log.js';
import { launcherProcesses, prepareMachine, removeDomain, startLauncher, stillRunning, stopLauncher, type Launcher } from '../libvirt/lab.js';

const run = promisify(execFile);
const DOMAIN = 'default_vm-1';
const NODES = ['node-1', 'node-2'] as const;

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
  /** Ferry only: request to the Running phase (target pod, prepare, start), from the VMIM's phase timestamps. */
  toRunningMs?: number;
  /** Ferry only: each phase's transition, in ms after the request. */
  phases?: Record<string, number>;
}

function median(xs: number[]): number {
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
  readonly launchers = new Map<string, Launcher>();
  readonly observers = new Map<string, LibvirtDriver>();
  env: DevEnvironment | undefined;
  /** Results the source handlers publish, by migration uid. */
  readonly results = new Map<string, ResultMessage>();
  private stopResults: (() => Promise<void>) | undefined;

  async start(): Promise<void> {
    await prepareMachine(join(this.root, 'build'));
    for (const node of NODES) {
      const l = await startLauncher(node, join(this.root, node));
      this.launchers.set(node, l);
      this.observers.set(node, new LibvirtDriver({ socketPath: l.socketPath, node: `bench-${node}` }));
    }
    const sockets = Object.fromEntries([...this.launchers].map(([n, l]) => [n, l.socketPath]));
    this.env = await startDevEnvironment({ vms: 1, driver: { kind: 'libvirt', sockets }, log: silentLogger });
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

  private uri(node: string): string {
    return unixSocketUri(this.launchers.get(node)!.socketPath);
  }

  async whereIsTheGuest(): Promise<{ from: string; to: string }> {
    const r = parseObject(VirtualMachineInstance, await this.env!.kube.getCustom(VMI_RESOURCE, 'default', 'vm-1'));
    if (!r.ok) throw new Error(r.reason);
    const from = r.value.status?.nodeName;
    const to = NODES.find((n) => n !== from);
    if (!from || !to) throw new Error(`vm-1 runs on ${from ?? 'no node'}`);
    return { from, to };
  }

  /** libvirt's record of the last migration job of the guest on `node` (the source). */
  private async lastJob(node: string): Promise<{ elapsedMs?: number; downtimeMs?: number }> {
    const seen = await this.observers.get(node)!.inspectMigration(DOMAIN);
    if (seen.stats?.phase !== 'completed') throw new Error(`no completed migration job of ${DOMAIN} on ${node}: ${JSON.stringify(seen)}`);
    return { elapsedMs: seen.stats.elapsedMs, ...(seen.stats.downtimeMs !== undefined ? { downtimeMs: seen.stats.downtimeMs } : {}) };
  }

  private async virshMigrate(from: string, to: string): Promise<number> {
    const port = await freePort();
    const started = performance.now();
    await run('virsh', ['-c', this.uri(from), 'migrate', '--live', '--p2p', '--persistent', DOMAIN, this.uri(to), '--migrateuri', `tcp://127.0.0.1:${port}`], { timeout: 120_000 });
    return performance.now() - started;
  }

  /** (a) virsh there and back, so the cluster's view stays true; only the outward trip is the sample. */
  async raw(runNo: number): Promise<Sample> {
    const { from, to } = await this.whereIsTheGuest();
    const wallMs = await this.virshMigrate(from, to);
    const job = await this.lastJob(from);
    await this.virshMigrate(to, from);
    // Same state Ferry leaves behind: no definition on the node the guest left.
    await run('virsh', ['-c', this.uri(to), 'undefine', DOMAIN], { timeout: 30_000 });
    return { run: runNo, how: 'raw', from, to, wallMs, libvirtElapsedMs: job.elapsedMs, downtimeMs: job.downtimeMs };
  }

  /** (b) a VMIM through Ferry, from create to Succeeded as a client polling the API sees it. */
  async ferry(runNo: number): Promise<Sample> {
    const { from, to } = await this.whereIsTheGuest();
    const kube = this.env!.kube;
    const name = `bench-${runNo}`;
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
    while (phase !== 'Succeeded') {
      const r = parseObject(VirtualMachineInstanceMigration, await kube.getCustom(VMIM_RESOURCE, 'default', name));
      phase = r.ok ? r.value.status?.phase ?? '' : '';
      phases = Object.fromEntries((r.ok ? r.value.status?.phaseTransitionTimestamps ?? [] : []).map((p) => [p.phase, Date.parse(p.phaseTransitionTimestamp) - requestedAt]));
      if (phase === 'Failed') throw new Error(`Ferry migration ${name} failed: ${JSON.stringify(r.ok ? r.value.status : r.reason)}`);
      if (performance.now() - started > 120_000) throw new Error(`Ferry migration ${name} not done after 120 s (phase ${phase || 'none'})`);
      if (phase !== 'Succeeded') await new Promise((res) => setTimeout(res, 10));
    }
    const wallMs = performance.now() - started;
    const result = this.results.get(created.metadata.uid);
    await kube.deleteCustom(VMIM_RESOURCE, 'default', name).catch((err: unknown) => { if (!isNotFound(err)) throw err; });
    return {
      run: runNo, how: 'ferry', from, to, wallMs,
      libvirtElapsedMs: result?.stats.elapsedMs,
      downtimeMs: result?.downtimeMs,
      ...(phases['Running'] !== undefined ? { toRunningMs: phases['Running'] } : {}),
      phases,
    };
  }

  async stop(): Promise<string[]> {
    await this.stopResults?.();
    await this.env?.stop();
    for (const o of this.observers.values()) await o.close().catch(() => undefined);
    const pids: number[] = [];
    for (const l of this.launchers.values()) pids.push(...(await launcherProcesses(l)));
    for (const l of this.launchers.values()) {
      await removeDomain(l.socketPath, DOMAIN).catch(() => undefined);
      await stopLauncher(l);
    }
    rmSync(this.root, { recursive: true, force: true });
    return (await stillRunning(pids)).map(String);
  }
}

const fmt = (ms: number | undefined) => (ms === undefined ? '-' : `${Math.round(ms)}`);

async function main(opts: { runs: number; warmup: number; json?: string }): Promise<void> {
  const bench = new Bench();
  const samples: Sample[] = [];
  let failure: unknown;
  try {
    process.stdout.write('preparing two libvirtd launchers, the embedded cluster, NATS, controller and handlers…\n');
    await bench.start();
    // A freshly booted guest's first migration is slow whichever way it goes
    // (its QEMU has touched all guest memory; later incarnations have not).
    for (let i = 1; i <= opts.warmup; i++) {
      const s = await bench.raw(0);
      process.stdout.write(`warm-up round trip with virsh (not counted): ${s.from} → ${s.to} ${fmt(s.wallMs)} ms, libvirt ${fmt(s.libvirtElapsedMs)} ms\n`);
    }
    process.stdout.write(`run  how    from    → to       wall ms  libvirt ms  downtime ms  to Running ms\n`);
    for (let i = 1; i <= opts.runs; i++) {
      for (const how of ['raw', 'ferry'] as const) {
        const s = how === 'raw' ? await bench.raw(i) : await bench.ferry(i);
        samples.push(s);
        process.stdout.write(`${String(i).padStart(3)}  ${how.padEnd(5)}  ${s.from} → ${s.to}  ${fmt(s.wallMs).padStart(7)}  ${fmt(s.libvirtElapsedMs).padStart(10)}  ${fmt(s.downtimeMs).padStart(11)}  ${fmt(s.toRunningMs).padStart(13)}\n`);
      }
    }
  } catch (err) {
    failure = err;
  }
  const left = await bench.stop();
  if (left.length > 0) process.stderr.write(`processes left running after the bench: ${left.join(' ')}\n`);
  if (failure) throw failure;

  const of = (how: Sample['how'], k: 'wallMs' | 'libvirtElapsedMs' | 'downtimeMs') =>
    samples.filter((s) => s.how === how).map((s) => s[k]).filter((v): v is number => v !== undefined);
  const pairs = Array.from({ length: opts.runs }, (_, i) => [samples.find((s) => s.run === i + 1 && s.how === 'raw')!, samples.find((s) => s.run === i + 1 && s.how === 'ferry')!] as const);
  const summary = {
    runs: opts.runs,
    warmup: opts.warmup,
    guest: { domain: DOMAIN, memory: '64Mi', kind: 'idle (diskless, TCG)' },
    raw: { medianWallMs: median(of('raw', 'wallMs')), medianLibvirtElapsedMs: median(of('raw', 'libvirtElapsedMs')), medianDowntimeMs: median(of('raw', 'downtimeMs')) },
    ferry: { medianToRunningMs: median(samples.flatMap((s) => (s.toRunningMs === undefined ? [] : [s.toRunningMs]))), medianWallMs: median(of('ferry', 'wallMs')), medianLibvirtElapsedMs: median(of('ferry', 'libvirtElapsedMs')), medianDowntimeMs: median(of('ferry', 'downtimeMs')) },
    ratio: 0,
    /** Median of Ferry ÷ raw per run (same direction, back to back): less exposed to run-to-run drift. */
    pairedRatio: median(pairs.map(([raw, ferry]) => ferry.wallMs / raw.wallMs)),
    goal: 1.15,
    samples,
  };
  summary.ratio = summary.ferry.medianWallMs / summary.raw.medianWallMs;
  process.stdout.write('\n');
  process.stdout.write(`median wall time   raw virsh ${fmt(summary.raw.medianWallMs)} ms   Ferry ${fmt(summary.ferry.medianWallMs)} ms   ratio ${summary.ratio.toFixed(3)} (goal ≤ ${summary.goal}; per-run pairs: median ${summary.pairedRatio.toFixed(3)})\n`);
  process.stdout.write(`median libvirt job raw virsh ${fmt(summary.raw.medianLibvirtElapsedMs)} ms   Ferry ${fmt(summary.ferry.medianLibvirtElapsedMs)} ms\n`);
  process.stdout.write(`Ferry before the libvirt job starts (VMIM created → Running): median ${fmt(summary.ferry.medianToRunningMs)} ms\n`);
  process.stdout.write(`median downtime    raw virsh ${fmt(summary.raw.medianDowntimeMs)} ms   Ferry ${fmt(summary.ferry.medianDowntimeMs)} ms   (libvirt's record of the completed job)\n`);
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
  .option('--json <out>', 'also write the numbers as JSON to this file')
  .action((opts: { runs: number; warmup: number; json?: string }) => main(opts));

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`bench:libvirt: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
