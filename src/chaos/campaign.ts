import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, JSONCodec, type NatsConnection } from 'nats';
import { parseObject } from '../api/meta.js';
import { FINAL_PHASES, VirtualMachineInstanceMigration } from '../api/vmim.js';
import { requestCommand } from '../bus/rpc.js';
import { ResultMessage } from '../bus/protocol.js';
import { subjects } from '../bus/subjects.js';
import { defaultFerryConfig } from '../config/ferryConfig.js';
import { ApiFaults } from '../devcluster/faults.js';
import { LEASE_NAME, LEASE_NAMESPACE, startProcessEnvironment, type ProcessEnvironment } from '../devcluster/processEnvironment.js';
import type { SupervisedProcess } from '../devcluster/supervisor.js';
import type { StoredObject } from '../devcluster/object.js';
import type { SimJournalEntry } from '../hypervisor/simJournal.js';
import { InvariantChecker, type Violation } from './invariants.js';
import { JournalTail } from './journalTail.js';
import { startNatsProxy, type NatsProxy } from './natsProxy.js';
import { nodeHeld, quiescenceViolations, RUNBOOK_FINAL, type ActiveHandlerJob } from './quiescence.js';
import { MaintenanceAnnotations, MaintenanceLabels, MW_API_VERSION, MW_GROUP, MW_KIND, MW_PLURAL } from '../api/maintenanceWindow.js';
import { SeededRandom } from './random.js';
import { percentile } from './stats.js';

/**
 * The chaos campaign: Ferry with real process boundaries (ferry dev
 * --processes), migrations kept flowing (user VMIMs, kubectl drain,
 * deletions mid-flight), faults injected at seeded random times, and the
 * invariant checker watching the sim hypervisors' ground truth and the API.
 * The first violation stops the run with the seed, a timeline and the objects.
 */
export const FAULT_KINDS = [
  'kill-leader', 'kill-standby', 'stop-leader', 'kill-source-handler', 'kill-target-handler',
  'kill-nats-1', 'kill-nats-2', 'api-faults', 'nats-messages', 'nats-cut',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface CampaignOptions {
  migrations: number;
  seed: number;
  faults?: readonly FaultKind[];
  /** Fault-free migrations first, to measure throughput without faults. Default max(10, 15 % of migrations). */
  baseline?: number;
  nodes?: number;
  vms?: number;
  /** User migrations kept in flight. */
  concurrency?: number;
  timeScale?: number;
  /** Pause between one fault's end and the next, ms. */
  faultGapMs?: readonly [number, number];
  /** Record violations and carry on, instead of stopping at the first (to collect every defect of a long run). */
  keepGoing?: boolean;
  /** Stop injecting and creating after this long even if fewer migrations finished (then quiesce and report). */
  maxMs?: number;
  /** Drive maintenance-window runbooks too (default true). */
  runbooks?: boolean;
  /** Aborted (Ctrl-C): stop as if the time were up. */
  signal?: AbortSignal;
  dir?: string;
  log?: (line: string) => void;
}

export interface FaultSample { kind: FaultKind; at: number; endAt: number; detail: string; recoveryMs?: number }

export interface CampaignResult {
  seed: number;
  migrations: { finished: number; byPhase: Record<string, number>; userCreated: number; deletedMidFlight: number; drains: number; runbooks: number };
  faults: Record<string, number>;
  faultDetail: { api: Record<string, number>; nats: Record<string, number> };
  violations: Violation[];
  recovery: Record<string, { samples: number; p50: number; p99: number }>;
  throughput: { withoutFaults: number; withFaults: number };
  migrationSeconds: { p50: number; p99: number };
  peaks: { cluster: number; outbound: number; inbound: number };
  durationMs: number;
  observations: string[];
  timeline: string[];
  objects?: unknown;
  dir: string;
}

const LEASE = { durationS: 4, renewDeadlineS: 3, retryPeriodS: 1 };
/** What a process fault may hold things up by beyond its own length: lease expiry, a restart with back-off, informer sync. */
const PROCESS_RECOVERY_MS = 30_000;
/** A runbook over at most two nodes of a few VMs each ends within this, plus fault hold-ups. */
const RUNBOOK_BOUND_MS = 180_000;
/** Once a runbook has ended, its nodes are back in service within this, plus fault hold-ups. */
const RUNBOOK_RELEASE_MS = 30_000;
const MW_REF = `${MW_PLURAL}.${MW_GROUP}`;

interface OpenRunbook {
  name: string;
  nodes: string[];
  createdAt: number;
  /** When each node was first seen labelled ready (the operator acts a second later). */
  readySeen: Map<string, number>;
  uncordoning: Set<string>;
  finishedAt?: number;
  overdue?: boolean;
}
const json = JSONCodec<unknown>();

type Event = { at: number; kind: 'journal'; entry: SimJournalEntry } | { at: number; kind: 'vmim'; obj: StoredObject; deleted: boolean };

class Timeline {
  private readonly lines: string[] = [];
  constructor(private readonly t0: number, private readonly echo?: (line: string) => void) {}
  add(at: number, text: string, echo = false): void {
    const line = `+${((at - this.t0) / 1000).toFixed(2)}s ${text}`;
    this.lines.push(line);
    if (this.lines.length > 400) this.lines.shift();
    if (echo) this.echo?.(line);
  }
  tail(n = 150): string[] {
    return this.lines.slice(-n);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const log = o.log ?? (() => undefined);
  const random = new SeededRandom(o.seed);
  const faultRandom = random.fork(1);
  const workRandom = random.fork(2);
  const kinds = o.faults ?? FAULT_KINDS;
  const runbooksOn = o.runbooks ?? true;
  const baseline = o.baseline ?? Math.max(10, Math.round(o.migrations * 0.15));
  const t0 = Date.now();
  const timeline = new Timeline(t0, log);
  const apiFaults = new ApiFaults(random.fork(3).seed);
  let proxy: NatsProxy | undefined;
  const observations: string[] = [];

  // Pinned in the controllers' config file below: unpinned limits are adaptive, and the checker needs fixed caps to hold Ferry to.
  const kubevirtLimits = { cluster: 5, outbound: 2, inbound: 2 };
  const config = defaultFerryConfig;
  const checker = new InvariantChecker({
    limits: {
      cluster: kubevirtLimits.cluster,
      outboundPerNode: kubevirtLimits.outbound,
      inboundPerNode: kubevirtLimits.inbound,
      nicCapacity: () => config.limits.defaultNicCapacity,
      bandwidthBudget: config.limits.bandwidthBudget,
    },
    migrationBoundMs: 90_000,
    transitBoundMs: 20_000,
  });

  log(`chaos campaign: ${o.migrations} migrations, seed ${o.seed}, faults ${kinds.join(',')}`);
  const dir = path.resolve(o.dir ?? mkdtempSync(path.join(os.tmpdir(), `ferry-chaos-${o.seed}-`)));
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'ferry-config.yaml');
  writeFileSync(configFile, `limits:\n  parallelMigrationsPerCluster: ${kubevirtLimits.cluster}\n  parallelOutboundMigrationsPerNode: ${kubevirtLimits.outbound}\n  parallelInboundMigrationsPerNode: ${kubevirtLimits.inbound}\n`);
  /** When each supervised process (by name) last started: a lease acquired before that was its dead predecessor's. */
  const startedAt = new Map<string, number>();
  const env: ProcessEnvironment = await startProcessEnvironment({
    configFile,
    nodes: o.nodes ?? 4,
    vms: o.vms ?? 12,
    dir,
    timeScale: o.timeScale ?? 1,
    lease: LEASE,
    cluster: { faults: apiFaults, podStartDelayMs: 200, podTerminationDelayMs: 100 },
    natsFront: async (cluster) => {
      proxy = await startNatsProxy(cluster.members.map((m) => ({ host: '127.0.0.1', port: m.clientPort })), random.fork(4).seed);
      return proxy.urls;
    },
    onProcessEvent: (e) => {
      if (e.type === 'started') startedAt.set(e.name, e.at);
      if (e.type === 'started') timeline.add(e.at, `process ${e.name} started (pid ${e.pid})`);
      else timeline.add(e.at, `process ${e.name} exited (${e.signal ?? `code ${e.code}`})${e.expected ? '' : `, restart in ${e.restartInMs} ms`}`);
      if (e.type === 'exited' && !e.expected) processExits.push({ name: e.name, at: e.at, signal: e.signal, code: e.code });
    },
  });
  const processExits: Array<{ name: string; at: number; signal: string | null; code: number | null }> = [];
  const store = env.cluster.store;

  // Observers: the stored VMIMs (in-process, not through the faulty HTTP layer) and the journals.
  const buffer: Event[] = [];
  const statusChanges: Array<{ uid: string; at: number }> = [];
  const lastStatus = new Map<string, string>();
  /** VMIMs in phase Running now, by uid, as the store says (the handler kills wait for one). */
  const runningNow = new Map<string, StoredObject>();
  const vmimWatch = store.watchRaw('virtualmachineinstancemigrations.kubevirt.io', {}, (e) => {
    const at = Date.now();
    buffer.push({ at, kind: 'vmim', obj: e.object, deleted: e.type === 'DELETED' });
    const status = JSON.stringify((e.object as { status?: unknown }).status ?? null);
    const uid = e.object.metadata.uid;
    if (e.type !== 'DELETED' && (e.object as { status?: { phase?: string } }).status?.phase === 'Running') runningNow.set(uid, e.object);
    else runningNow.delete(uid);
    if (lastStatus.get(uid) !== status) {
      lastStatus.set(uid, status);
      statusChanges.push({ uid, at });
    }
  });
  const tail = new JournalTail([...env.journals.values()]);
  let firstViolation: Violation | undefined;
  /** Set on the first violation unless keepGoing: stops the workload and the faults. */
  let halted = false;
  let reportedViolations = 0;
  const feed = () => {
    for (const entry of tail.read()) buffer.push({ at: entry.at, kind: 'journal', entry });
    // Entries of different processes arrive out of order: only what is older than the watermark is settled.
    const watermark = Date.now() - 750;
    buffer.sort((a, b) => a.at - b.at);
    let n = 0;
    while (n < buffer.length && buffer[n]!.at <= watermark) n++;
    for (const e of buffer.splice(0, n)) {
      if (e.kind === 'journal') {
        checker.journal(e.entry);
        const j = e.entry;
        timeline.add(e.at, `truth ${j.node} ${j.domain} ${j.job ? `job ${j.job}${j.targetNode ? `→${j.targetNode}` : ''}${j.outcome ? ` ${j.outcome}` : ''}` : j.state}`);
      } else {
        const r = parseObject(VirtualMachineInstanceMigration, e.obj);
        if (!r.ok) continue;
        if (e.deleted) checker.vmimDeleted(r.value.metadata.uid ?? '', e.at);
        else checker.vmim(r.value, e.at);
      }
    }
    checker.tick(watermark);
    if (!firstViolation && checker.violations.length > 0) {
      firstViolation = checker.violations[0];
      timeline.add(firstViolation!.at, `VIOLATION ${firstViolation!.invariant}: ${firstViolation!.message}`, true);
      if (!o.keepGoing) halted = true;
    }
    for (const v of checker.violations.slice(reportedViolations)) if (v !== firstViolation) timeline.add(v.at, `VIOLATION ${v.invariant}: ${v.message}`, true);
    reportedViolations = checker.violations.length;
  };
  const feeder = setInterval(feed, 250);

  // Results as the handlers publish them, for the replay check (read from a server directly, not through the proxy).
  const observer: NatsConnection = await connect({ servers: [...env.nats.urlList], maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const results: ResultMessage[] = [];
  observer.subscribe(subjects.allResults(), {
    callback: (_err, m) => {
      try {
        const r = ResultMessage.safeParse(json.decode(m.data));
        if (r.success && results.length < 500) results.push(r.data);
      } catch {
        // not a result
      }
    },
  });

  const vmims = () => store.list('virtualmachineinstancemigrations.kubevirt.io').items;
  const phaseOf = (m: StoredObject) => String((m as { status?: { phase?: string } }).status?.phase ?? '');
  const openVmims = () => vmims().filter((m) => !FINAL_PHASES.has(phaseOf(m) as never));
  const vmiNames = () => store.list('virtualmachineinstances.kubevirt.io').items.map((v) => v.metadata.name);

  let userCreated = 0;
  let deletedMidFlight = 0;
  let drains = 0;
  let drain: { node: string; done: boolean; proc?: ReturnType<typeof spawn> } | undefined;
  let runbooks = 0;
  let runbookSeq = 0;
  let runbook: OpenRunbook | undefined;
  let stopWork = false;
  const kubectl = (args: string[]) => spawn('kubectl', ['--kubeconfig', env.kubeconfigPath, ...args], { stdio: 'ignore' });
  /** kubectl uncordon until it works: the API may be answering with faults. */
  const uncordon = (node: string, then: () => void) => {
    kubectl(['uncordon', node]).once('exit', (code) => {
      if (code === 0) then();
      else setTimeout(() => uncordon(node, then), 1000);
    });
  };

  /**
   * A maintenance-window runbook over one or two nodes, one node at a time,
   * window open for an hour, done when the operator uncordons the node.
   */
  const startRunbook = () => {
    const n = o.nodes ?? 4;
    const first = workRandom.int(1, n);
    const picked = workRandom.chance(0.5) ? [first] : [first, (first % n) + 1];
    const nodes = [...new Set(picked)].map((i) => `node-${i}`);
    const name = `chaos-mw-${++runbookSeq}`;
    const now = Date.now();
    try {
      store.create(MW_REF, {
        apiVersion: MW_API_VERSION,
        kind: MW_KIND,
        metadata: { name },
        spec: { nodes, maxNodesInMaintenance: 1, window: { start: new Date(now - 60_000).toISOString(), end: new Date(now + 3_600_000).toISOString() }, done: { uncordoned: true } },
      });
    } catch (err) {
      timeline.add(now, `workload: could not create maintenance window ${name}: ${(err as Error).message}`, true);
      return;
    }
    runbooks++;
    runbook = { name, nodes, createdAt: now, readySeen: new Map(), uncordoning: new Set() };
    timeline.add(now, `workload: maintenance window ${name} over ${nodes.join(', ')}`, true);
  };

  /**
   * The operator's part of a runbook (uncordon a node a second after Ferry
   * labels it ready), and the runbook's promises: it ends Completed, in bounded
   * time, and gives every node back in service.
   */
  const tendRunbook = (rb: OpenRunbook) => {
    const now = Date.now();
    const mw = store.tryGet(MW_REF, rb.name) as (StoredObject & { status?: { phase?: string; conditions?: Array<{ type?: string; message?: string }> } }) | undefined;
    if (!mw) {
      runbook = undefined;
      return;
    }
    for (const node of rb.nodes) {
      const n = store.tryGet('nodes', node) as (StoredObject & { spec?: { unschedulable?: boolean } }) | undefined;
      const ready = n?.metadata.labels?.[MaintenanceLabels.maintenance] === 'ready' && n.metadata.annotations?.[MaintenanceAnnotations.owner] === rb.name && n.spec?.unschedulable === true;
      if (!ready) continue;
      const seen = rb.readySeen.get(node);
      if (seen === undefined) rb.readySeen.set(node, now);
      else if (now - seen >= 1000 && !rb.uncordoning.has(node)) {
        rb.uncordoning.add(node);
        timeline.add(now, `workload: operator finished the maintenance of ${node} (${rb.name}); kubectl uncordon`, true);
        uncordon(node, () => rb.uncordoning.delete(node));
      }
    }
    const phase = mw.status?.phase ?? '';
    if (!RUNBOOK_FINAL.has(phase)) {
      const bound = RUNBOOK_BOUND_MS + checker.heldUpWithin(rb.createdAt, now);
      if (now - rb.createdAt > bound && !rb.overdue) {
        rb.overdue = true;
        checker.violations.push({ invariant: 'runbook', at: now, subject: `maintenancewindow/${rb.name}`, message: `runbook still ${phase || 'without a phase'} ${((now - rb.createdAt) / 1000).toFixed(0)} s after it was created (bound ${(bound / 1000).toFixed(0)} s with fault hold-ups)` });
      }
      return;
    }
    if (rb.finishedAt === undefined) {
      rb.finishedAt = now;
      timeline.add(now, `workload: maintenance window ${rb.name} ${phase}`, true);
      if (phase !== 'Completed') {
        const why = (mw.status?.conditions ?? []).map((c) => c.message).filter(Boolean).join('; ');
        checker.violations.push({ invariant: 'runbook', at: now, subject: `maintenancewindow/${rb.name}`, message: `runbook ended ${phase}, not Completed${why ? `: ${why}` : ''}` });
      }
    }
    const held = rb.nodes.flatMap((node) => {
      const n = store.tryGet('nodes', node);
      const why = n ? nodeHeld(n) : undefined;
      return why ? [`${node} ${why}`] : [];
    });
    const late = now - rb.finishedAt > RUNBOOK_RELEASE_MS + checker.heldUpWithin(rb.finishedAt, now);
    if (held.length > 0 && !late) return;
    if (held.length > 0) checker.violations.push({ invariant: 'runbook', at: now, subject: `maintenancewindow/${rb.name}`, message: `runbook ${phase} but its nodes are not back in service: ${held.join('; ')}` });
    try {
      store.delete(MW_REF, rb.name);
    } catch {
      // already gone
    }
    runbook = undefined;
  };

  // The workload: user migrations, an occasional drain, and deletions mid-flight.
  const workload = (async () => {
    let seq = 0;
    while (!stopWork) {
      await sleep(300);
      if (halted) break;
      const open = openVmims();
      const busy = new Set(open.map((m) => String((m as { spec?: { vmiName?: string } }).spec?.vmiName)));
      const userOpen = open.filter((m) => m.metadata.labels?.['chaos.ferry.dev/user'] === 'true').length;
      if (checker.finished() + open.length < o.migrations && userOpen < (o.concurrency ?? 3)) {
        const idle = vmiNames().filter((n) => !busy.has(n));
        if (idle.length > 0) {
          const vmi = workRandom.pick(idle);
          try {
            store.create('virtualmachineinstancemigrations.kubevirt.io', {
              apiVersion: 'kubevirt.io/v1',
              kind: 'VirtualMachineInstanceMigration',
              metadata: { name: `chaos-${++seq}-${vmi}`, namespace: 'default', labels: { 'chaos.ferry.dev/user': 'true' } },
              spec: { vmiName: vmi },
            });
            userCreated++;
          } catch (err) {
            timeline.add(Date.now(), `workload: could not create a migration of ${vmi}: ${(err as Error).message}`);
          }
        }
      }
      // A user deletes a migration mid-flight now and then.
      if (workRandom.chance(0.01)) {
        const running = open.filter((m) => ['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running'].includes(phaseOf(m)));
        if (running.length > 0) {
          const victim = workRandom.pick(running);
          try {
            store.delete('virtualmachineinstancemigrations.kubevirt.io', victim.metadata.name, { namespace: victim.metadata.namespace });
            deletedMidFlight++;
            timeline.add(Date.now(), `workload: deleted ${victim.metadata.name} in ${phaseOf(victim)}`, true);
          } catch {
            // already gone
          }
        }
      }
      // A runbook now and then, never beside a drain (each would hold the other's nodes).
      if (runbooksOn && !drain && !runbook && workRandom.chance(0.01)) startRunbook();
      if (runbook) tendRunbook(runbook);
      // kubectl drain one node at a time; uncordon it once drained.
      if (!drain && !runbook && workRandom.chance(0.01)) {
        const node = `node-${workRandom.int(1, o.nodes ?? 4)}`;
        drain = { node, done: false };
        drains++;
        const d = drain;
        timeline.add(Date.now(), `workload: kubectl drain ${node}`, true);
        const run = () => {
          const p = kubectl(['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--force', '--pod-selector=kubevirt.io=virt-launcher', '--timeout=120s']);
          d.proc = p;
          p.once('exit', (code) => {
            if (stopWork && code !== 0) return;
            if (code === 0) {
              d.done = true;
              timeline.add(Date.now(), `workload: kubectl drain ${node} completed`, true);
              setTimeout(() => {
                uncordon(node, () => {
                  timeline.add(Date.now(), `workload: uncordoned ${node}`);
                  if (drain === d) drain = undefined;
                });
              }, 2000);
            } else {
              // The API may have been faulty: an operator runs it again.
              timeline.add(Date.now(), `workload: kubectl drain ${node} exited ${code}; running it again`);
              setTimeout(run, 1000);
            }
          });
        };
        run();
      }
    }
  })();

  // Faults, one at a time after the baseline.
  const faults: FaultSample[] = [];
  let handlerKillMisses = 0;
  let handlerKillsMidRunning = 0;
  const count: Record<string, number> = {};
  let baselineEnd: { at: number; finished: number } | undefined;
  /** Throughput is counted from the first finished migration: start-up is not the system's speed. */
  let firstFinish: number | undefined;
  /**
   * The controller that holds the lease now. The holder identity names a replica
   * (`controller-1_…`), and a killed replica's successor has the same name: if the
   * lease was acquired before the named process last started, it is the dead
   * predecessor's, not yet expired, and nobody leads.
   */
  const leader = async (): Promise<SupervisedProcess | undefined> => {
    const l = await env.leader();
    if (!l) return undefined;
    const lease = store.tryGet('leases.coordination.k8s.io', LEASE_NAME, LEASE_NAMESPACE) as { spec?: { acquireTime?: string } } | undefined;
    const acquired = Date.parse(lease?.spec?.acquireTime ?? '');
    const started = startedAt.get(l.name);
    return Number.isFinite(acquired) && started !== undefined && acquired < started ? undefined : l;
  };
  const waitForLeader = async (notPid?: number, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const l = await leader();
      if (l && l.running && l.pid !== notPid) return l;
      await sleep(250);
    }
    return undefined;
  };
  const waitRunning = async (p: SupervisedProcess, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!p.running && Date.now() < deadline) await sleep(100);
  };
  /**
   * A migration in Running, waited for: sim migrations spend well under a second
   * there, so one is rarely Running at the moment a fault is drawn. The watch
   * (in-process, no API faults) tells at once; the kill follows right away.
   */
  const runningVmim = async (timeoutMs = 30_000): Promise<StoredObject | undefined> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !stopWork && !halted) {
      if (runningNow.size > 0) return faultRandom.pick([...runningNow.values()]);
      await sleep(10);
    }
    return undefined;
  };
  type MigrationStateView = { status?: { nodeName?: string; migrationState?: { sourceNode?: string; targetNode?: string; migrationUid?: string } | null } };
  /** Source and target of a migration: from its own status if it has them, else from its VMI's (the VMI runs on the source until the switchover). */
  const migrationEnds = (m: StoredObject): { source?: string; target?: string } => {
    const own = (m as MigrationStateView).status?.migrationState ?? undefined;
    const vmiName = (m as { spec?: { vmiName?: string } }).spec?.vmiName ?? '';
    const vmi = store.tryGet('virtualmachineinstances.kubevirt.io', vmiName, m.metadata.namespace) as (StoredObject & MigrationStateView) | undefined;
    const vms = vmi?.status?.migrationState?.migrationUid === m.metadata.uid ? vmi.status.migrationState : undefined;
    const source = own?.sourceNode ?? vms?.sourceNode ?? vmi?.status?.nodeName;
    const target = own?.targetNode ?? vms?.targetNode;
    return { ...(source ? { source } : {}), ...(target ? { target } : {}) };
  };

  /** startAt: when the fault itself began, if it waited for its moment (a handler kill waits for a Running migration). */
  const inject = async (kind: FaultKind): Promise<{ detail: string; endAt: number; startAt?: number } | undefined> => {
    switch (kind) {
      case 'kill-leader': {
        const l = await leader();
        if (!l) return undefined;
        const pid = l.pid;
        await l.kill();
        await waitForLeader(pid);
        return { detail: `kill -9 ${l.name} (leader, pid ${pid})`, endAt: Date.now() };
      }
      case 'kill-standby': {
        const l = await leader();
        const standby = env.controllers.find((c) => c !== l && c.running);
        if (!standby) return undefined;
        await standby.kill();
        await waitRunning(standby);
        return { detail: `kill -9 ${standby.name} (standby)`, endAt: Date.now() };
      }
      case 'stop-leader': {
        const l = await leader();
        if (!l?.pid) return undefined;
        const pid = l.pid;
        l.signal('SIGSTOP');
        const stoppedMs = (LEASE.durationS + 2) * 1000;
        await sleep(stoppedMs);
        const successor = await leader();
        l.signal('SIGCONT');
        // The stale leader must notice it lost the lease and step down (exit), not act.
        const contAt = Date.now();
        const deadline = contAt + 15_000;
        while (Date.now() < deadline && l.pid === pid) await sleep(100);
        if (l.pid === pid) observations.push(`stale leader ${l.name} (pid ${pid}) still ran 15 s after SIGCONT (successor ${successor?.name ?? 'none'})`);
        return { detail: `SIGSTOP ${l.name} (leader, pid ${pid}) for ${stoppedMs} ms, successor ${successor?.name ?? 'none'}`, endAt: contAt };
      }
      case 'kill-source-handler':
      case 'kill-target-handler': {
        const m = await runningVmim();
        if (!m) {
          handlerKillMisses++;
          return undefined;
        }
        const ends = migrationEnds(m);
        const node = kind === 'kill-source-handler' ? ends.source : ends.target;
        const h = node ? env.handlers.get(node) : undefined;
        if (!h || !node) {
          timeline.add(Date.now(), `fault ${kind}: ${m.metadata.name} is Running but its ${kind === 'kill-source-handler' ? 'source' : 'target'} node is not known`, true);
          return undefined;
        }
        const at = Date.now();
        await h.kill();
        checker.nodeDied(node, at);
        // The phase may have moved on between the watch event and the kill signal: say which it was.
        const still = runningNow.has(m.metadata.uid);
        if (still) handlerKillsMidRunning++;
        await waitRunning(h);
        return { detail: `kill -9 handler of ${node} (${kind === 'kill-source-handler' ? 'source' : 'target'} of ${m.metadata.name}, ${still ? 'in Running' : 'just past Running'})`, endAt: Date.now(), startAt: at };
      }
      case 'kill-nats-1':
      case 'kill-nats-2': {
        const n = kind === 'kill-nats-1' ? 1 : 2;
        const victims = [...env.nats.members].sort(() => faultRandom.next() - 0.5).slice(0, n);
        for (const v of victims) await env.nats.kill(v.name);
        await sleep(faultRandom.int(2000, 5000));
        for (const v of victims) await env.nats.restart(v.name);
        return { detail: `kill -9 ${victims.map((v) => v.name).join(' and ')}, restarted`, endAt: Date.now() };
      }
      case 'api-faults': {
        const ms = faultRandom.int(4000, 8000);
        const before = { ...apiFaults.counts };
        apiFaults.enable({ conflict: 0.15, throttle: 0.05, internal: 0.05, slow: 0.1, watchClose: 0.3, gone: 0.3, delayEvents: 0.3 });
        // Watches opened before the window are closed too (half of them): their clients resume, and may meet a 410.
        apiFaults.closeOpenWatches(0.5);
        await sleep(ms);
        apiFaults.disable();
        const injected = Object.entries(apiFaults.counts).map(([k, v]) => `${k} ${v - before[k as keyof typeof before]}`).join(', ');
        return { detail: `API faults for ${ms} ms (${injected})`, endAt: Date.now() };
      }
      case 'nats-messages': {
        if (!proxy) return undefined;
        const ms = faultRandom.int(3000, 6000);
        proxy.enable({ drop: 0.05, duplicate: 0.05, delay: 0.05, delayMs: [50, 800], reorder: 0.05 });
        await sleep(ms);
        proxy.disable();
        return { detail: `NATS message faults for ${ms} ms`, endAt: Date.now() };
      }
      case 'nats-cut': {
        if (!proxy) return undefined;
        const n = proxy.cut();
        return { detail: `cut ${n} NATS connections`, endAt: Date.now() };
      }
    }
  };

  const faulting = (async () => {
    while (!stopWork && !halted) {
      await sleep(500);
      if (firstFinish === undefined && checker.finished() > 0) firstFinish = Date.now();
      if (!baselineEnd) {
        if (checker.finished() >= baseline) {
          baselineEnd = { at: Date.now(), finished: checker.finished() };
          timeline.add(baselineEnd.at, `baseline done: ${baselineEnd.finished} migrations without faults; faults start`, true);
        }
        continue;
      }
      await sleep(faultRandom.int(o.faultGapMs?.[0] ?? 1000, o.faultGapMs?.[1] ?? 3000));
      if (stopWork || halted) break;
      const kind = faultRandom.pick(kinds);
      const at = Date.now();
      const hold = checker.holdUp(at);
      timeline.add(at, `fault ${kind}…`);
      let r: { detail: string; endAt: number; startAt?: number } | undefined;
      try {
        r = await inject(kind);
      } catch (err) {
        timeline.add(Date.now(), `fault ${kind} could not be injected: ${(err as Error).message}`, true);
      }
      if (!r) {
        checker.holdUpEnded(hold, at);
        continue;
      }
      const allowance = kind.startsWith('kill') || kind === 'stop-leader' ? PROCESS_RECOVERY_MS : 10_000;
      checker.holdUpEnded(hold, r.endAt + allowance);
      faults.push({ kind, at: r.startAt ?? at, endAt: r.endAt, detail: r.detail });
      count[kind] = (count[kind] ?? 0) + 1;
      timeline.add(r.endAt, `fault ${kind}: ${r.detail}`, true);
    }
  })();

  // Until enough migrations are done, or a violation.
  let lastReport = 0;
  const timeUp = () => (o.maxMs !== undefined && Date.now() - t0 > o.maxMs) || o.signal?.aborted === true;
  while (!halted && checker.finished() < o.migrations && !timeUp()) {
    await sleep(500);
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      log(`  ${checker.finished()}/${o.migrations} migrations done, ${faults.length} faults, ${openVmims().length} in flight, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  if (timeUp()) observations.push(`stopped after ${((Date.now() - t0) / 60_000).toFixed(1)} min with ${checker.finished()} of ${o.migrations} migrations finished (${o.signal?.aborted ? 'interrupted' : 'time limit'})`);
  const faultsEnd = Date.now();
  const finishedAtFaultsEnd = checker.finished();
  stopWork = true;
  await faulting;
  await workload;
  apiFaults.disable();
  proxy?.disable();
  for (const m of env.nats.members) if (!m.server) await env.nats.restart(m.name);
  timeline.add(Date.now(), 'faults stopped; waiting for quiescence', true);

  // After the faults: the open drain finishes, every migration ends, then nothing may be left over.
  let objects: unknown;
  if (!halted) {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && (openVmims().length > 0 || (drain && !drain.done) || runbook)) {
      if (runbook) tendRunbook(runbook);
      await sleep(500);
    }
    if (drain && !drain.done) checker.violations.push({ invariant: 'quiescence', at: Date.now(), subject: drain.node, message: `kubectl drain ${drain.node} did not complete within 120 s after the faults stopped` });
    if (runbook) checker.violations.push({ invariant: 'runbook', at: Date.now(), subject: `maintenancewindow/${runbook.name}`, message: `runbook did not end and give its nodes back within 120 s after the faults stopped` });
    drain?.proc?.kill();
    if (drain) {
      const d = drain;
      await new Promise<void>((resolve) => {
        uncordon(d.node, resolve);
        setTimeout(resolve, 15_000);
      });
    }
    await sleep(3000);
    feed();
    const handlerJobs: ActiveHandlerJob[] = [];
    const handlerDomains = new Map<string, Array<{ name: string; state: string }>>();
    // Servers restarted by the last fault may still be re-forming their routes (a kill of two of three
    // at the very end left handlers unreachable from the observer for over 10 s): each handler gets 30 s
    // to answer, asked every 5 s; one that never does has lost its subscriptions, not its route.
    const askUntil = Date.now() + 30_000;
    const listJobs = async (node: string) => {
      for (;;) {
        try {
          return await requestCommand(observer, node, 'list-jobs', {}, { timeoutMs: 5000 });
        } catch (err) {
          if (Date.now() >= askUntil) throw err;
        }
      }
    };
    for (const node of env.handlers.keys()) {
      try {
        const r = await listJobs(node);
        for (const j of r.jobs) handlerJobs.push({ node, role: j.role, migrationUid: j.migrationUid, state: j.state, domain: j.domain });
        handlerDomains.set(node, r.domains.map((d) => ({ name: d.name, state: d.state })));
      } catch (err) {
        checker.violations.push({ invariant: 'quiescence', at: Date.now(), subject: node, message: `handler of ${node} does not answer list-jobs within 30 s after the faults: ${(err as Error).message}` });
      }
    }
    checker.violations.push(...quiescenceViolations({
      at: Date.now(),
      vmis: store.list('virtualmachineinstances.kubevirt.io').items,
      pods: store.list('pods').items,
      pdbs: store.list('poddisruptionbudgets.policy').items,
      vmims: vmims(),
      checker,
      handlerJobs,
      nodes: store.list('nodes').items,
      handlerDomains,
      maintenanceWindows: store.list(MW_REF).items,
    }));
    // Tombstones of finished migrations are kept until the controller's forget-job (lost when a handler or the
    // leader dies at that moment) or the 24 h / 10 000 backstop: bounded, so counted here rather than failed.
    const tombstones = handlerJobs.filter((j) => !['starting', 'running', 'preparing', 'prepared'].includes(j.state));
    observations.push(`after quiescence the handlers hold ${tombstones.length} tombstone(s) of finished migrations (forget-job missed; the 24 h backstop drops them)${tombstones.length ? `: ${Object.entries(tombstones.reduce<Record<string, number>>((a, j) => ({ ...a, [j.node]: (a[j.node] ?? 0) + 1 }), {})).map(([n, c]) => `${n} ${c}`).join(', ')}` : ''}`);
    if (checker.violations.length === 0) await replayResults();
  }

  /** A result processed twice changes nothing: finished results are published again (new message ids, past dedup) and nothing may move. */
  async function replayResults(): Promise<void> {
    const replays = results.filter((r) => r.outcome === 'completed').slice(-3).concat(results.filter((r) => r.outcome !== 'completed').slice(-2));
    if (replays.length === 0) return;
    const snapshot = () => JSON.stringify([
      vmims().map((m) => [m.metadata.uid, m.metadata.resourceVersion]),
      store.list('virtualmachineinstances.kubevirt.io').items.map((v) => [v.metadata.uid, v.metadata.resourceVersion]),
    ]);
    const before = snapshot();
    const truthBefore = JSON.stringify([...checker.domains].map(([d, m]) => [d, [...m]]));
    const js = observer.jetstream();
    for (const r of replays) await js.publish(subjects.result(r.migrationUid, r.node), json.encode(r), { msgID: `chaos-replay-${r.migrationUid}-${r.attempt}-${r.outcome}` });
    await sleep(4000);
    feed();
    const after = snapshot();
    const truthAfter = JSON.stringify([...checker.domains].map(([d, m]) => [d, [...m]]));
    observations.push(`replayed ${replays.length} results (${replays.map((r) => r.outcome).join(', ')}) after quiescence`);
    if (before !== after || truthBefore !== truthAfter) {
      checker.violations.push({ invariant: 'idempotent-result', at: Date.now(), subject: replays.map((r) => r.migrationUid).join(','), message: `results processed a second time changed ${before !== after ? 'VMIMs or VMIs' : 'where guests run'}` });
    }
  }

  const violations = checker.violations;
  if (violations.length > 0) {
    const v = violations[0]!;
    const related = (o: StoredObject) => JSON.stringify(o).includes(v.subject.split('/').pop()!.replace(/^default_/, ''));
    objects = {
      vmims: vmims().filter(related),
      vmis: store.list('virtualmachineinstances.kubevirt.io').items.filter(related),
      pods: store.list('pods').items.filter(related),
      truth: Object.fromEntries([...checker.domains].map(([d, m]) => [d, Object.fromEntries(m)])),
    };
  }

  // Recovery: from the fault to the next progress (any status change) of the migrations it caught in flight.
  const recovery: CampaignResult['recovery'] = {};
  for (const f of faults) {
    const affected = new Set(statusChanges.filter((c) => c.at <= f.at).map((c) => c.uid));
    const next = statusChanges.find((c) => c.at >= f.endAt && affected.has(c.uid));
    if (next) f.recoveryMs = next.at - f.at;
  }
  for (const kind of new Set(faults.map((f) => f.kind))) {
    const xs = faults.filter((f) => f.kind === kind && f.recoveryMs !== undefined).map((f) => f.recoveryMs! / 1000);
    recovery[kind] = { samples: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99) };
  }
  const perMinute = (n: number, ms: number) => (ms > 0 ? (n * 60_000) / ms : 0);
  const durations = checker.durations();
  const result: CampaignResult = {
    seed: o.seed,
    migrations: { finished: checker.finished(), byPhase: checker.phaseCounts(), userCreated, deletedMidFlight, drains, runbooks },
    faults: count,
    faultDetail: { api: { ...apiFaults.counts }, nats: proxy ? { ...proxy.counts } : {} },
    violations,
    recovery,
    throughput: {
      withoutFaults: baselineEnd && firstFinish !== undefined ? perMinute(baselineEnd.finished - 1, baselineEnd.at - firstFinish) : 0,
      withFaults: baselineEnd ? perMinute(finishedAtFaultsEnd - baselineEnd.finished, faultsEnd - baselineEnd.at) : 0,
    },
    migrationSeconds: { p50: percentile(durations, 50), p99: percentile(durations, 99) },
    peaks: { ...checker.peaks },
    durationMs: Date.now() - t0,
    observations: [
      ...observations,
      ...(handlerKillsMidRunning + handlerKillMisses > 0 ? [`handler kills: ${handlerKillsMidRunning} while the migration was in Running, ${(count['kill-source-handler'] ?? 0) + (count['kill-target-handler'] ?? 0) - handlerKillsMidRunning} just after it left Running, ${handlerKillMisses} not injected (no migration reached Running within 30 s)`] : []),
      ...new Set(checker.notes), ...processExits.filter((e) => e.signal === null).map((e) => `${e.name} exited on its own with code ${e.code} at +${((e.at - t0) / 1000).toFixed(1)} s`)],
    timeline: violations.length > 0 ? timeline.tail() : timeline.tail(40),
    ...(objects ? { objects } : {}),
    dir: env.dir,
  };
  if (violations.length > 0) {
    mkdirSync(env.dir, { recursive: true });
    writeFileSync(path.join(env.dir, 'violation.json'), JSON.stringify(result, null, 2));
  }
  clearInterval(feeder);
  vmimWatch.stop();
  await observer.close();
  await env.stop();
  await proxy?.close();
  // A temporary directory goes unless it holds a violation's evidence (logs, journals, violation.json).
  if (!o.dir && violations.length === 0) rmSync(dir, { recursive: true, force: true });
  return result;
}
