import { performance } from 'node:perf_hooks';
import { Node } from '../api/core.js';
import { parseObject } from '../api/meta.js';
import type { MigrationConfiguration } from '../api/migrationConfig.js';
import { parseQuantity } from '../api/quantity.js';
import { Labels, type VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES } from '../api/vmim.js';
import { CommandError } from '../bus/rpc.js';
import type { FerryConfig } from '../config/ferryConfig.js';
import { decide } from '../limits/decide.js';
import { pinnedIn, resolveLimits, type PinnedLimits } from '../limits/adaptive.js';
import type { Decision, LimitsConfig, NodeState, QueuedMigration, RunningMigration } from '../limits/types.js';
import { ADMITTED, waitingReasonClass, type ControllerMetrics } from '../metrics/index.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { guestSpecFor } from './guest.js';
import type { MigrationSession } from './session.js';
import type { Tracked } from './tracked.js';

export interface AdmissionDeps {
  config: FerryConfig;
  clock: Clock;
  log: Logger;
  metrics?: ControllerMetrics | undefined;
  /** The cluster's migrations configuration (KubeVirt CR), as last loaded. */
  migrations: () => MigrationConfiguration;
  /** The parallel limits the KubeVirt CR sets itself (unpinned limits are adaptive). */
  kubevirtPins: () => PinnedLimits;
  tracked: () => Iterable<Tracked>;
  find: (uid: string) => Tracked | undefined;
  vmi: (namespace: string, name: string) => VirtualMachineInstance | undefined;
  /** The Node cache's objects. */
  nodes: () => readonly unknown[];
  /** The launcher pods' cache objects (what the scheduler counts against a node's memory, as far as Ferry sees). */
  pods?: () => readonly unknown[];
  synced: () => boolean;
  stopped: () => boolean;
}

/**
 * Admission and bandwidth: which pending migrations start, where, and what
 * bandwidth each running one gets, decided by the limits core for all of them
 * at once. Admission happens here only, in one synchronous pass, so two
 * migrations can never both take the last slot.
 */
export class Admission {
  private admitScheduled = false;
  /** Nodes unschedulable at the last pass (undefined before the first). */
  private unschedulableSeen: Set<string> | undefined;
  /** No new placement before this time: a node just went out of service, and more of a drain's may follow. */
  private placementHoldUntil = 0;
  private holdTimer: unknown;

  constructor(private readonly d: AdmissionDeps) {}


  /** Runs admission once on the next microtask, however often it is asked for before then. */
  schedule(): void {
    if (this.admitScheduled || this.d.stopped()) return;
    this.admitScheduled = true;
    queueMicrotask(() => {
      this.admitScheduled = false;
      if (!this.d.stopped() && this.d.synced()) this.admit();
    });
  }

  /**
   * What `s` may send now from `source` to `target` without any NIC or the
   * cluster budget going over: capacity minus what every other started
   * migration may still be sending (its acknowledged or in-flight setting,
   * whichever is higher). The limits core shares out allotments; this keeps
   * the moments between a decision and its acknowledgements inside them too.
   */
  headroom(s: MigrationSession, source: string, target: string): number {
    const config = this.limitsConfig();
    const nic = new Map(this.nodeStates().map((n) => [n.name, n.nicCapacity ?? config.defaultNicCapacity]));
    const cap = (node: string) => nic.get(node) ?? config.defaultNicCapacity;
    let out = 0;
    let inbound = 0;
    let total = 0;
    for (const t of this.d.tracked()) {
      const o = t.session;
      if (o === s) continue;
      const bw = o.mayBeSending();
      if (bw <= 0) continue;
      total += bw;
      if (o.sourceNode === source) out += bw;
      if ((o.targetNode ?? o.pinnedTarget) === target) inbound += bw;
    }
    let free = Math.min(cap(source) - out, cap(target) - inbound);
    if (config.bandwidthBudget > 0) free = Math.min(free, config.bandwidthBudget - total);
    return Math.max(0, free);
  }

  limitsConfig(): LimitsConfig {
    const m = this.d.migrations();
    return resolveLimits({
      pins: [this.d.kubevirtPins(), pinnedIn(this.d.config.limits)],
      bandwidthBudget: this.d.config.limits.bandwidthBudget,
      defaultNicCapacity: this.d.config.limits.defaultNicCapacity,
      bandwidthPerMigration: m.bandwidthPerMigration,
      completionTimeoutPerGiB: m.completionTimeoutPerGiB,
    });
  }

  nodeStates(withMemory = false): NodeState[] {
    const out: NodeState[] = [];
    const used = withMemory ? this.memoryInUse() : undefined;
    for (const raw of this.d.nodes()) {
      const n = parsedNode(raw);
      if (!n) continue;
      const ready = (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
      const st: NodeState = { name: n.metadata.name, schedulable: ready && !n.spec?.unschedulable };
      const nic = n.metadata.annotations?.[this.d.config.limits.nicCapacityAnnotation];
      if (nic) {
        try { st.nicCapacity = parseQuantity(nic); } catch { this.d.log.warn({ node: n.metadata.name, nic }, 'ignoring unparsable NIC capacity annotation'); }
      }
      const alloc = used ? allocatableMemory(raw) : undefined;
      if (alloc !== undefined) st.freeMemory = alloc - (used!.get(n.metadata.name) ?? 0);
      out.push(st);
    }
    return out;
  }

  /**
   * Memory the scheduler will count on each node: the launcher pods bound
   * there, and the target pods of started migrations not bound yet (placement
   * pinned them; without this a burst of starts would pick the same roomy node
   * for all and the scheduler would refuse the ones past its memory, leaving
   * them unschedulable until their timeout). Pods Ferry does not watch are the
   * scheduler's to count: it remains the arbiter.
   */
  private memoryInUse(): Map<string, number> {
    const used = new Map<string, number>();
    const bound = new Set<string>();
    for (const raw of this.d.pods?.() ?? []) {
      const p = podMemory(raw);
      if (!p?.node) continue;
      used.set(p.node, (used.get(p.node) ?? 0) + p.bytes);
      if (p.migration) bound.add(p.migration);
    }
    for (const t of this.d.tracked()) {
      const s = t.session;
      if (s.phase === 'Pending' || FINAL_PHASES.has(s.phase) || bound.has(s.uid)) continue;
      const target = s.targetNode ?? s.pinnedTarget;
      if (target) used.set(target, (used.get(target) ?? 0) + s.memoryBytes);
    }
    return used;
  }

  /**
   * Asks the limits core which pending migrations may start and what bandwidth
   * every running one gets, then acts on it. Admission happens here only, in
   * one synchronous pass, so two migrations can never both take the last slot.
   */
  private admit(): void {
    const hold = this.placementHold();
    const running: RunningMigration[] = [];
    const queued: QueuedMigration[] = [];
    const pending: MigrationSession[] = [];
    for (const t of this.d.tracked()) {
      const s = t.session;
      // A finished migration holds its slot until its final phase is stored: the API must
      // never show more migrations under way than the limits allow.
      if (FINAL_PHASES.has(s.phase) && t.finalWritten) continue;
      const vmi = this.d.vmi(s.namespace, s.vmiName);
      const guest = vmi ? guestSpecFor(vmi) : undefined;
      const dirtyRate = s.lastDirtyRate || guest?.dirtyRate || 0;
      const workingSet = guest?.workingSet;
      if (s.phase === 'Pending') {
        if (!vmi?.status?.nodeName) continue;
        s.sourceNode = vmi.status.nodeName;
        pending.push(s);
        const q: QueuedMigration = { id: s.uid, sourceNode: s.sourceNode, priority: s.priority, enqueuedAt: s.enqueuedAt, memoryBytes: s.memoryBytes, dirtyRate, maxDowntimeMs: s.appliedDowntimeMs, allowAutoConverge: s.effective.allowAutoConverge, allowPostCopy: s.effective.allowPostCopy };
        if (workingSet) q.workingSet = workingSet;
        if (capOf(s.effective.bandwidthPerMigration) > 0) q.bandwidthCap = capOf(s.effective.bandwidthPerMigration);
        // `ferry migrate --node` / spec.addedNodeSelector's hostname pins the placement.
        const userTarget = s.addedNodeSelector?.['kubernetes.io/hostname'];
        if (userTarget) q.targetNode = userTarget;
        queued.push(q);
      } else {
        const r: RunningMigration = { id: s.uid, sourceNode: s.sourceNode ?? '', priority: s.priority, memoryBytes: s.memoryBytes, dirtyRate, maxDowntimeMs: s.appliedDowntimeMs, allowAutoConverge: s.effective.allowAutoConverge, allowPostCopy: s.effective.allowPostCopy };
        if (workingSet) r.workingSet = workingSet;
        if (capOf(s.effective.bandwidthPerMigration) > 0) r.bandwidthCap = capOf(s.effective.bandwidthPerMigration);
        const target = s.targetNode ?? s.pinnedTarget;
        if (target) r.targetNode = target;
        if (s.lastRemaining !== undefined) r.dataRemaining = s.lastRemaining;
        // Its source sends nothing more (mayBeSending is 0): the next migration may have its bandwidth
        // while this one is finalised (target told, VMI moved, source pod removed, phase stored).
        if (s.sourceEnded) r.sourceDone = true;
        running.push(r);
      }
    }
    if (running.length === 0 && queued.length === 0) return;
    const nodes = this.nodeStates(true);
    const config = this.limitsConfig();
    const t0 = performance.now();
    // While placements are held only the running ones are decided (their bandwidth); the queue waits.
    const decision = decide({ config, nodes, running, queued: hold ? [] : queued, now: this.d.clock.now() });
    this.d.metrics?.decided(performance.now() - t0);
    if (!hold) this.admitUnplaceable(decision, pending, running, nodes, config);
    for (const st of decision.start) {
      const t = this.d.find(st.id);
      if (!t) continue;
      t.session.pinnedTarget = st.targetNode;
      t.session.allottedBandwidth = decision.bandwidth[st.id] ?? 0;
      t.session.waitingReason = undefined;
      t.session.phase = 'Scheduling'; // counted as running from now on, before the snapshot arrives
      t.actor.send({ type: 'ADMITTED' });
      this.d.metrics?.admission('started', ADMITTED);
    }
    for (const s of pending) {
      const why = decision.waiting[s.uid];
      if (why && why !== s.waitingReason) {
        this.d.metrics?.admission('queued', waitingReasonClass(why));
        s.log.info({ reason: why }, 'migration queued');
      }
      if (why && s.waiting(why, waitingReasonClass(why))) this.d.find(s.uid)?.writer.queued(conditionReason(waitingReasonClass(why)), why);
    }
    for (const r of running) {
      const t = this.d.find(r.id);
      const bw = decision.bandwidth[r.id];
      if (!t || bw === undefined) continue;
      t.session.allottedBandwidth = bw;
      const applied = t.session.appliedBandwidth;
      if (!t.session.sourceStarted || t.session.sourceEnded || t.session.phase !== 'Running' || t.session.bandwidthInFlight !== undefined) continue;
      if (this.d.clock.now() < t.session.steerPausedUntil) continue;
      // A raise only into room others have acknowledged giving up; the next pass raises the rest.
      const target = t.session.targetNode ?? t.session.pinnedTarget;
      const next = applied !== undefined && bw > applied && t.session.sourceNode && target
        ? Math.max(applied, Math.min(bw, Math.floor(this.headroom(t.session, t.session.sourceNode, target))))
        : bw;
      if (applied === undefined || Math.abs(applied - next) > Math.max(1, applied * 0.01)) {
        t.session.setBandwidth(next).then(
          () => {
            t.writer.bandwidth(next);
            // Room given back may let another migration rise now.
            if (next < (applied ?? Infinity)) this.schedule();
          },
          (err: unknown) => {
            t.session.log.warn({ err: String(err), bandwidth: next }, 'could not change bandwidth');
            if (err instanceof CommandError && err.code === 'not-found') {
              // Nothing to steer there: no retry on every pass (its allotment stays counted), and the chart asks where the guest is.
              t.session.steerPausedUntil = this.d.clock.now() + STEER_PAUSE_MS;
              t.actor.send({ type: 'SOURCE_JOB_MISSING', reason: `the source has no such job running: ${err.message}` });
            }
          },
        );
      }
    }
  }

  /**
   * True while new placements wait for a burst of cordons to settle. A drain of
   * several nodes cordons them one after another; a migration placed in
   * between on a node cordoned a moment later fails (src/controller/stalePlacement.ts),
   * or lands on it and has to move again. So when a node goes out of service,
   * nothing new is placed for PLACEMENT_SETTLE_MS after the last such change
   * (running migrations keep being steered); a pass runs when the hold ends.
   */
  private placementHold(): boolean {
    const off = new Set<string>();
    for (const raw of this.d.nodes()) {
      const n = parsedNode(raw);
      if (!n) continue;
      const ready = (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
      if (!ready || n.spec?.unschedulable) off.add(n.metadata.name);
    }
    const now = this.d.clock.now();
    const seen = this.unschedulableSeen;
    if (seen && [...off].some((n) => !seen.has(n))) this.placementHoldUntil = now + PLACEMENT_SETTLE_MS;
    this.unschedulableSeen = off;
    const left = this.placementHoldUntil - now;
    if (left <= 0) return false;
    if (this.holdTimer !== undefined) this.d.clock.clearTimeout(this.holdTimer);
    this.holdTimer = this.d.clock.setTimeout(() => {
      this.holdTimer = undefined;
      this.schedule();
    }, left);
    return true;
  }

  /**
   * A migration with no schedulable node to go to at all would wait forever in
   * the queue. KubeVirt's answer is to create the target pod anyway and fail
   * once it has been unschedulable for the timeout; users expect that (and the
   * scheduler's reason), so those start when the parallel limits allow.
   */
  private admitUnplaceable(decision: Decision, pending: MigrationSession[], running: RunningMigration[], nodes: NodeState[], config: LimitsConfig): void {
    const started = new Set(decision.start.map((s) => s.id));
    let cluster = running.length + started.size;
    const outbound = new Map<string, number>();
    const count = (node: string) => outbound.set(node, (outbound.get(node) ?? 0) + 1);
    for (const r of running) count(r.sourceNode);
    for (const s of pending) if (started.has(s.uid) && s.sourceNode) count(s.sourceNode);
    for (const s of pending) {
      const src = s.sourceNode;
      // A user-named node that does not exist or takes nothing is the scheduler's to report, as in KubeVirt.
      const userTarget = s.addedNodeSelector?.['kubernetes.io/hostname'];
      const candidates = userTarget ? nodes.filter((n) => n.name === userTarget) : nodes;
      if (!src || started.has(s.uid) || candidates.some((n) => n.schedulable && n.name !== src)) continue;
      if (cluster >= config.parallelMigrationsPerCluster || (outbound.get(src) ?? 0) >= config.parallelOutboundMigrationsPerNode) continue;
      cluster++;
      count(src);
      decision.start.push({ id: s.uid });
      delete decision.waiting[s.uid];
      s.log.info('no schedulable node besides the source; starting anyway so the scheduler can report why');
    }
  }
}

/**
 * libvirt takes the per-migration bandwidth in whole MiB/s and reads 0 as "no
 * limit", as KubeVirt passes it: a cap under 1 MiB/s is no cap.
 */
function capOf(bandwidthPerMigration: number): number {
  const MiB = 1024 * 1024;
  return Math.floor(bandwidthPerMigration / MiB) * MiB;
}

/**
 * Admission reads every node on every pass (and the start path on every
 * headroom poll): parse each cached object once. The informer replaces an
 * object when its version changes, so the raw object is the key.
 */
/** How long a source that said it has no such job running is left unsteered. */
const STEER_PAUSE_MS = 5000;
/** How long new placements wait after a node goes out of service (see placementHold). */
export const PLACEMENT_SETTLE_MS = 500;

const parsedNodes = new WeakMap<object, Node | null>();
function parsedNode(raw: unknown): Node | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  let n = parsedNodes.get(raw);
  if (n === undefined) {
    const r = parseObject(Node, raw);
    n = r.ok ? r.value : null;
    parsedNodes.set(raw, n);
  }
  return n ?? undefined;
}

/** A node's allocatable memory (its capacity when it states none); undefined when it says neither. */
function allocatableMemory(raw: unknown): number | undefined {
  const st = (raw as { status?: { allocatable?: Record<string, unknown>; capacity?: Record<string, unknown> } }).status;
  const q = st?.allocatable?.['memory'] ?? st?.capacity?.['memory'];
  if (typeof q !== 'string' && typeof q !== 'number') return undefined;
  try {
    return parseQuantity(q);
  } catch {
    return undefined;
  }
}

interface PodMemory {
  node: string | undefined;
  bytes: number;
  /** The migration whose target this pod is, if it is one. */
  migration: string | undefined;
}

/** A launcher pod's memory requests and node, read once per object version; undefined once it has ended. */
const podMemories = new WeakMap<object, PodMemory | null>();
function podMemory(raw: unknown): PodMemory | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  let m = podMemories.get(raw);
  if (m === undefined) {
    const p = raw as { metadata?: { labels?: Record<string, string> }; spec?: { nodeName?: string; containers?: Array<{ resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> } }> }; status?: { phase?: string } };
    const phase = p.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') m = null;
    else {
      let bytes = 0;
      for (const c of p.spec?.containers ?? []) {
        const q = c.resources?.requests?.['memory'] ?? c.resources?.limits?.['memory'];
        if (typeof q === 'string' || typeof q === 'number') {
          try { bytes += parseQuantity(q); } catch { /* the scheduler reports a pod it cannot read */ }
        }
      }
      m = { node: p.spec?.nodeName, bytes, migration: p.metadata?.labels?.[Labels.migrationJobUID] };
    }
    podMemories.set(raw, m);
  }
  return m ?? undefined;
}

/** `outbound-limit` → `OutboundLimit`: a condition's reason is one CamelCase word. */
function conditionReason(kind: string): string {
  return kind.split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}
