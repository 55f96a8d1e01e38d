import type { VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { SimJournalEntry } from '../hypervisor/simJournal.js';

/**
 * The chaos campaign's invariant checker. Pure: it is fed, in time order, the
 * sim hypervisors' ground truth (journal entries: what runs where, which
 * migration jobs run) and the VMIMs as the API stored them, and says which
 * promise was broken and when. It never asks the controller what it thinks.
 */
export type Invariant =
  | 'single-copy' // never two running copies of a guest
  | 'guest-lost' // never none, outside a switchover (and not for long)
  | 'failed-on-source' // a failed or aborted migration leaves the guest running on its source
  | 'parallel-limit' // cluster, outbound and inbound parallel migration limits
  | 'bandwidth' // NIC capacity each way, and the cluster bandwidth budget
  | 'phase-order' // phases never go backwards
  | 'phase-once' // each phase recorded once
  | 'bounded-time' // every VMIM terminal within its bound plus the faults' hold-ups
  | 'quiescence' // after the faults stop: drains done, nothing orphaned or leaked
  | 'runbook' // a runbook ends Completed in bounded time and gives every node it held back in service
  | 'idempotent-result'; // a result processed twice changes nothing

export interface Violation {
  invariant: Invariant;
  at: number;
  /** The guest, migration or object it is about. */
  subject: string;
  message: string;
}

export interface Limits {
  cluster: number;
  outboundPerNode: number;
  inboundPerNode: number;
  /** Bytes/s each way per node. */
  nicCapacity: (node: string) => number;
  /** Bytes/s over all migrations; 0 = none. */
  bandwidthBudget: number;
}

export interface CheckerOptions {
  limits: Limits;
  /** A migration that left Pending reaches a final phase within this (plus hold-ups). */
  migrationBoundMs: number;
  /** A guest may have no running copy while in transit (post-copy, switchover) for this long (plus hold-ups). */
  transitBoundMs: number;
}

const PHASE_ORDER = ['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running', 'Succeeded', 'Failed'] as const;
const FINAL = new Set(['Succeeded', 'Failed']);
const rank = (p: string) => {
  const i = PHASE_ORDER.indexOf(p as (typeof PHASE_ORDER)[number]);
  // Succeeded and Failed are both the end: neither comes after the other.
  return i === 7 ? 6 : i;
};

interface Job { node: string; target: string; domain: string; migrationId: string; bandwidth: number }
interface Tracked { uid: string; name: string; vmi: string; lastPhase: string; seen: Set<string>; leftPendingAt?: number; finalAt?: number }

/** Ground-truth domain name of a VMI: KubeVirt's `<namespace>_<name>`. */
export const domainOf = (namespace: string, name: string) => `${namespace}_${name}`;

export class InvariantChecker {
  /** domain → node → state. */
  readonly domains = new Map<string, Map<string, string>>();
  readonly jobs = new Map<string, Job>();
  private readonly noneSince = new Map<string, number>();
  /** Guests that were seen on no node, not in transit. */
  private readonly lost = new Set<string>();
  /** Migrations whose source finished sending: their incoming copy holds the guest until the target resumes it. */
  private readonly completed = new Set<string>();
  private readonly incomingOf = new Map<string, string>();
  private readonly vmims = new Map<string, Tracked>();
  /** [start, end) of periods when faults held things up; end undefined while it lasts. */
  private readonly holdUps: Array<{ from: number; to: number | undefined }> = [];
  readonly violations: Violation[] = [];
  /** Oddities that break no invariant but an operator would want to know about. */
  readonly notes: string[] = [];
  /** Highest job counts seen, for the report. */
  readonly peaks = { cluster: 0, outbound: 0, inbound: 0 };

  constructor(private readonly o: CheckerOptions) {}

  private readonly reported = new Set<string>();

  /** One violation per invariant and subject: the first is the evidence, repeats add nothing. */
  private fail(v: Violation, variant = ''): void {
    const key = `${v.invariant}|${v.subject}|${variant}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.violations.push(v);
  }

  /** A fault that holds things up from `from` (to `to`, or until holdUpEnded). */
  holdUp(from: number, to?: number): number {
    this.holdUps.push({ from, to });
    return this.holdUps.length - 1;
  }

  holdUpEnded(id: number, at: number): void {
    const h = this.holdUps[id];
    if (h && h.to === undefined) h.to = at;
  }

  /** Time faults held things up within [from, to]; overlapping hold-ups count once. */
  heldUpWithin(from: number, to: number): number {
    const spans = this.holdUps
      .map((h) => [Math.max(from, h.from), Math.min(to, h.to ?? to)] as const)
      .filter(([a, b]) => b > a)
      .sort((x, y) => x[0] - y[0]);
    let total = 0;
    let end = -Infinity;
    for (const [a, b] of spans) {
      if (b <= end) continue;
      total += b - Math.max(a, end);
      end = b;
    }
    return total;
  }

  /** The handler of `node` died at `at`: its jobs died with it (the sim's migrations live in its process). */
  nodeDied(node: string, at: number): void {
    for (const [k, j] of this.jobs) if (j.node === node) this.jobs.delete(k);
    void at;
  }

  journal(e: SimJournalEntry): void {
    if (e.job) this.jobEntry(e);
    else this.stateEntry(e);
  }

  private jobEntry(e: SimJournalEntry): void {
    const key = `${e.node}/${e.domain}/${e.migrationId ?? ''}`;
    if (e.job === 'end') {
      this.jobs.delete(key);
      if (e.outcome === 'completed' && e.migrationId) this.completed.add(e.migrationId);
      return;
    }
    if (e.job === 'start') {
      this.jobs.set(key, { node: e.node, target: e.targetNode ?? '?', domain: e.domain, migrationId: e.migrationId ?? '', bandwidth: e.bandwidth ?? 0 });
      this.checkLimits(e.at, e.domain);
    } else if (e.job === 'bandwidth') {
      const j = this.jobs.get(key);
      if (j) j.bandwidth = e.bandwidth ?? 0;
      this.checkBandwidth(e.at, e.domain);
    }
  }

  private checkLimits(at: number, subject: string): void {
    const { limits } = this.o;
    const all = [...this.jobs.values()];
    this.peaks.cluster = Math.max(this.peaks.cluster, all.length);
    if (all.length > limits.cluster) {
      this.fail({ invariant: 'parallel-limit', at, subject, message: `${all.length} migrations run at once in the cluster (limit ${limits.cluster}): ${all.map((j) => `${j.domain} ${j.node}→${j.target}`).join(', ')}` });
    }
    const count = (pick: (j: Job) => string) => {
      const m = new Map<string, number>();
      for (const j of all) m.set(pick(j), (m.get(pick(j)) ?? 0) + 1);
      return m;
    };
    for (const [node, n] of count((j) => j.node)) {
      this.peaks.outbound = Math.max(this.peaks.outbound, n);
      if (n > limits.outboundPerNode) this.fail({ invariant: 'parallel-limit', at, subject, message: `${n} outbound migrations from ${node} (limit ${limits.outboundPerNode})` });
    }
    for (const [node, n] of count((j) => j.target)) {
      this.peaks.inbound = Math.max(this.peaks.inbound, n);
      if (n > limits.inboundPerNode) this.fail({ invariant: 'parallel-limit', at, subject, message: `${n} inbound migrations to ${node} (limit ${limits.inboundPerNode})` });
    }
    this.checkBandwidth(at, subject);
  }

  private checkBandwidth(at: number, subject: string): void {
    const { limits } = this.o;
    const all = [...this.jobs.values()];
    // An unlimited job (0) may take its whole NIC: it counts as the NIC's capacity.
    const bw = (j: Job) => (j.bandwidth > 0 ? j.bandwidth : Math.min(limits.nicCapacity(j.node), limits.nicCapacity(j.target)));
    const sum = (js: Job[]) => js.reduce((s, j) => s + bw(j), 0);
    const nodes = new Set(all.flatMap((j) => [j.node, j.target]));
    const tolerance = 1.001; // rounding of bytes/s in quantities
    for (const node of nodes) {
      const out = sum(all.filter((j) => j.node === node));
      const inb = sum(all.filter((j) => j.target === node));
      const cap = limits.nicCapacity(node);
      if (out > cap * tolerance) this.fail({ invariant: 'bandwidth', at, subject, message: `outbound ${fmt(out)} B/s from ${node} exceeds its NIC (${fmt(cap)} B/s)` });
      if (inb > cap * tolerance) this.fail({ invariant: 'bandwidth', at, subject, message: `inbound ${fmt(inb)} B/s to ${node} exceeds its NIC (${fmt(cap)} B/s)` });
    }
    if (limits.bandwidthBudget > 0 && sum(all) > limits.bandwidthBudget * tolerance) {
      this.fail({ invariant: 'bandwidth', at, subject, message: `${fmt(sum(all))} B/s of migrations exceed the cluster budget (${fmt(limits.bandwidthBudget)} B/s)` });
    }
  }

  private stateEntry(e: SimJournalEntry): void {
    let where = this.domains.get(e.domain);
    if (!where) this.domains.set(e.domain, (where = new Map()));
    if (e.state === 'gone') where.delete(e.node);
    else where.set(e.node, e.state);
    const ik = `${e.domain}@${e.node}`;
    if (e.state === 'incoming' && e.migrationId) this.incomingOf.set(ik, e.migrationId);
    else if (e.state !== 'incoming') this.incomingOf.delete(ik);
    const running = [...where].filter(([, s]) => s === 'running').map(([n]) => n);
    if (running.length > 1) {
      this.fail({ invariant: 'single-copy', at: e.at, subject: e.domain, message: `${e.domain} runs on ${running.join(' and ')} at once` });
    }
    if (running.length === 1) {
      // A guest that comes back from nowhere was booted afresh: whatever ran before is gone.
      if (this.lost.has(e.domain) && e.state === 'running' && !e.migrationId) {
        this.fail({ invariant: 'guest-lost', at: e.at, subject: e.domain, message: `${e.domain} was booted afresh on ${e.node} after it had been lost` }, 'fresh-boot');
      }
      this.lost.delete(e.domain);
      this.noneSince.delete(e.domain);
      return;
    }
    if (running.length === 0) {
      // Checked on every change: a copy in transit that is then dropped leaves nothing.
      if (!this.inTransit(e.domain, where)) {
        this.lost.add(e.domain);
        this.fail({ invariant: 'guest-lost', at: e.at, subject: e.domain, message: `${e.domain} runs nowhere and is not being migrated (${describe(where)})` });
      }
      if (!this.noneSince.has(e.domain)) this.noneSince.set(e.domain, e.at);
    }
  }

  /**
   * The guest is between two copies: an incoming copy exists and the source let
   * go (post-copy: paused; switchover: shut off or already forgotten after its
   * job completed).
   */
  private inTransit(domain: string, where: Map<string, string>): boolean {
    const states = [...where.values()];
    if (states.includes('incoming') && (states.includes('paused') || states.includes('shutoff'))) return true;
    return [...where].some(([node, s]) => s === 'incoming' && this.completed.has(this.incomingOf.get(`${domain}@${node}`) ?? ''));
  }

  /** The VMIM as stored at `at`. */
  vmim(m: VirtualMachineInstanceMigration, at: number): void {
    const uid = m.metadata.uid ?? m.metadata.name;
    const name = `${m.metadata.namespace ?? 'default'}/${m.metadata.name}`;
    let t = this.vmims.get(uid);
    if (!t) this.vmims.set(uid, (t = { uid, name, vmi: domainOf(m.metadata.namespace ?? 'default', m.spec.vmiName), lastPhase: '', seen: new Set() }));
    const phase = m.status?.phase ?? '';
    const recorded = (m.status?.phaseTransitionTimestamps ?? []).map((p) => p.phase);
    const dup = recorded.find((p, i) => recorded.indexOf(p) !== i);
    if (dup) this.fail({ invariant: 'phase-once', at, subject: name, message: `${name} records phase ${dup} twice: ${recorded.join(' → ')}` });
    for (let i = 1; i < recorded.length; i++) {
      if (rank(recorded[i]!) < rank(recorded[i - 1]!)) {
        this.fail({ invariant: 'phase-order', at, subject: name, message: `${name} recorded ${recorded[i]} after ${recorded[i - 1]}: ${recorded.join(' → ')}` });
        break;
      }
    }
    if (phase === '' || phase === t.lastPhase) return;
    if (t.lastPhase !== '' && (rank(phase) < rank(t.lastPhase) || FINAL.has(t.lastPhase))) {
      this.fail({ invariant: 'phase-order', at, subject: name, message: `${name} went from ${t.lastPhase} back to ${phase}` });
    } else if (t.seen.has(phase)) {
      this.fail({ invariant: 'phase-once', at, subject: name, message: `${name} entered ${phase} a second time` });
    }
    t.seen.add(phase);
    t.lastPhase = phase;
    if (phase !== 'Pending' && t.leftPendingAt === undefined) t.leftPendingAt = at;
    if (FINAL.has(phase) && t.finalAt === undefined) {
      t.finalAt = at;
      if (phase === 'Failed') this.checkFailedOnSource(m, t, at);
    }
  }

  /** The VMIM was deleted at `at`: it ends there (a deletion mid-flight is a user's cancel). */
  vmimDeleted(uid: string, at: number): void {
    const t = this.vmims.get(uid);
    if (t && t.finalAt === undefined) {
      t.finalAt = at;
      t.lastPhase = `${t.lastPhase || 'Pending'} (deleted)`;
    }
  }

  /** Migrations not final yet. */
  open(): string[] {
    return [...this.vmims.values()].filter((t) => t.finalAt === undefined).map((t) => `${t.name} (${t.lastPhase || 'no phase'})`);
  }

  /** Migrations that reached a final phase or were deleted. */
  finished(): number {
    return [...this.vmims.values()].filter((t) => t.finalAt !== undefined).length;
  }

  private checkFailedOnSource(m: VirtualMachineInstanceMigration, t: Tracked, at: number): void {
    const ms = m.status?.migrationState;
    const source = ms?.sourceNode;
    if (!source) return; // failed before anything started: "exactly one copy" covers it
    if (ms?.migrationUid && ms.migrationUid !== m.metadata.uid) {
      // The state is another migration's (copied from the VMI): this one never started, so it moved nothing.
      this.notes.push(`${t.name} ended Failed carrying migrationState of another migration (${ms.migrationUid}, source ${source})`);
      return;
    }
    const where = this.domains.get(t.vmi);
    const state = where?.get(source);
    if (state === 'running') return;
    this.fail({ invariant: 'failed-on-source', at, subject: t.name, message: `${t.name} is Failed (${ms?.failureReason ?? 'no reason'}) but ${t.vmi} is ${state ?? 'absent'} on its source ${source} (${describe(where)})` });
  }

  /** Time-based checks at `now`: guests with no copy for too long, migrations past their bound. */
  tick(now: number): void {
    for (const [domain, since] of this.noneSince) {
      const allowed = this.o.transitBoundMs + this.heldUpWithin(since, now);
      if (now - since > allowed) {
        this.fail({ invariant: 'guest-lost', at: now, subject: domain, message: `${domain} has had no running copy for ${fmtS(now - since)} (allowed ${fmtS(allowed)}: ${describe(this.domains.get(domain))})` });
        this.noneSince.delete(domain);
      }
    }
    for (const t of this.vmims.values()) {
      if (t.finalAt !== undefined || t.leftPendingAt === undefined) continue;
      const allowed = this.o.migrationBoundMs + this.heldUpWithin(t.leftPendingAt, now);
      if (now - t.leftPendingAt > allowed) {
        this.fail({ invariant: 'bounded-time', at: now, subject: t.name, message: `${t.name} is still ${t.lastPhase} ${fmtS(now - t.leftPendingAt)} after it left Pending (bound ${fmtS(allowed)} with the faults' hold-ups)` });
        t.finalAt = now; // reported once
      }
    }
  }

  /** Migrations seen, by their last phase. */
  phaseCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.vmims.values()) out[t.lastPhase || '(none)'] = (out[t.lastPhase || '(none)'] ?? 0) + 1;
    return out;
  }

  /** Seconds from leaving Pending to the final phase, of every finished migration. */
  durations(): number[] {
    return [...this.vmims.values()].flatMap((t) => (t.finalAt !== undefined && t.leftPendingAt !== undefined ? [(t.finalAt - t.leftPendingAt) / 1000] : []));
  }

  /** Where the guest runs now, per the ground truth (undefined: nowhere, or on several nodes). */
  runningNode(domain: string): string | undefined {
    const running = [...(this.domains.get(domain) ?? [])].filter(([, s]) => s === 'running').map(([n]) => n);
    return running.length === 1 ? running[0] : undefined;
  }
}



function describe(where: Map<string, string> | undefined): string {
  if (!where || where.size === 0) return 'on no node';
  return [...where].map(([n, s]) => `${s} on ${n}`).join(', ');
}

const fmt = (n: number) => n.toExponential(3);
const fmtS = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
