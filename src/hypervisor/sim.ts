/**
 * The `sim` hypervisor driver: a node's domains kept in memory, and migrations
 * run by the pre-copy model (./precopy.ts) on an injected clock.
 *
 * Each node (each process) has its own SimDriver; the target side never sees the
 * source's memory. The controller joins the two halves: after the source reports
 * completion it tells the target to finishIncoming.
 *
 * A running job's model is brought up to the clock's "now" whenever it is read or
 * steered, so a control change applies from the moment it is made; the tick
 * (every tickMs of the clock) only notices completion. Outcomes are therefore
 * reported up to one tick late, with the model's exact statistics.
 */
import { systemClock, type Clock, type TimerHandle } from '../util/clock.js';
import type {
  DomainInfo,
  DomainState,
  GuestSpec,
  HypervisorDriver,
  JobStats,
  MigrationControls,
  MigrationJob,
  MigrationOutcome,
} from './driver.js';
import {
  abortPrecopy,
  advance,
  isFinished,
  jobStats,
  setBandwidth,
  setMaxDowntime,
  startPostCopy,
  startPrecopy,
  timeToFinishMs,
  type GuestModel,
  type PrecopyState,
} from './precopy.js';
import { openJobs, replayJournal, type SimJournal } from './simJournal.js';

export interface SimDriverOptions {
  node: string;
  clock?: Clock;
  /** How often (clock ms) running jobs check for completion. Default 100. */
  tickMs?: number;
  /** Model ms per clock ms. Default 1. */
  timeScale?: number;
  /** Bytes/s a migration gets when its bandwidth is 0 (unlimited). Default 1.25e9 (10 Gbit/s). */
  nicBandwidth?: number;
  /** Used for guests whose spec leaves them out. */
  defaultDirtyRate?: number;
  defaultWorkingSet?: number;
  defaultZeroFraction?: number;
  /**
   * Where this node's domains outlive the driver: every state change is
   * appended, and a new driver on the same journal starts with the domains it
   * leaves (a restarted handler finds its guests, as a real node's QEMU
   * processes survive the handler). Jobs do not survive: a migration whose
   * driver died is gone, its source still running (pre-copy) or paused (post-copy).
   */
  journal?: SimJournal;
  /**
   * How a source finds out whether its target listens (sim nodes in separate
   * processes read each other's journals). Without it the source assumes it does.
   * A real source connects to the target and fails when nothing listens, or
   * when the target's domain vanishes before the switch-over; so does the sim.
   */
  targetListening?: (targetNode: string, domain: string, migrationId: string) => boolean;
}

/** A lightly loaded guest: 16 MiB/s over a 256 MiB hot set, a third of memory never touched. */
const DEFAULT_DIRTY_RATE = 16 * 2 ** 20;
const DEFAULT_WORKING_SET = 256 * 2 ** 20;
const DEFAULT_ZERO_FRACTION = 0.3;

interface SimDomain {
  name: string;
  state: DomainState;
  guest: GuestModel;
  /** For an incoming domain (and the one it became): the migration that prepared it. */
  migrationId?: string;
}

export class SimDriver implements HypervisorDriver {
  readonly kind = 'sim' as const;
  readonly node: string;
  private readonly clock: Clock;
  private readonly tickMs: number;
  private readonly timeScale: number;
  private readonly nicBandwidth: number;
  private readonly defaults: { dirtyRate: number; workingSet: number; zeroFraction: number };
  private readonly domains = new Map<string, SimDomain>();
  /** Running jobs by domain name. */
  private readonly jobs = new Map<string, SimMigrationJob>();
  private closed = false;
  private readonly journal: SimJournal | undefined;
  private readonly targetListening: SimDriverOptions['targetListening'];

  constructor(options: SimDriverOptions) {
    this.node = options.node;
    this.clock = options.clock ?? systemClock;
    this.tickMs = options.tickMs ?? 100;
    this.timeScale = options.timeScale ?? 1;
    this.nicBandwidth = options.nicBandwidth ?? 1.25e9;
    this.defaults = {
      dirtyRate: options.defaultDirtyRate ?? DEFAULT_DIRTY_RATE,
      workingSet: options.defaultWorkingSet ?? DEFAULT_WORKING_SET,
      zeroFraction: options.defaultZeroFraction ?? DEFAULT_ZERO_FRACTION,
    };
    this.journal = options.journal;
    this.targetListening = options.targetListening;
    if (this.journal) {
      const entries = this.journal.read();
      // Jobs of the driver that died with its process: over, as far as anyone can tell.
      for (const open of openJobs(entries)) {
        this.journal.append({ ...open, at: this.clock.now(), job: 'end', outcome: 'lost' });
      }
      for (const e of replayJournal(entries).values()) {
        if (e.state === 'gone') continue;
        const guest = this.guestModel({ name: e.domain, memoryBytes: e.memoryBytes ?? 2 ** 30 });
        this.domains.set(e.domain, { name: e.domain, state: e.state, guest, ...(e.migrationId ? { migrationId: e.migrationId } : {}) });
      }
    }
    for (const [name, value] of [['tickMs', this.tickMs], ['timeScale', this.timeScale], ['nicBandwidth', this.nicBandwidth]] as const) {
      if (!(value > 0) || !Number.isFinite(value)) {
        throw new RangeError(`sim driver for node ${this.node}: ${name} must be a finite number > 0, got ${value}`);
      }
    }
  }

  async listDomains(): Promise<DomainInfo[]> {
    return [...this.domains.values()].map((d) => ({ name: d.name, state: d.state, memoryBytes: d.guest.memoryBytes }));
  }

  /**
   * Boots the guest if it is absent. An existing domain is left as it is: a
   * shut-off one migrated away and booting it again would run the guest twice.
   */
  async ensureRunning(guest: GuestSpec): Promise<void> {
    const existing = this.domains.get(guest.name);
    if (existing?.state === 'incoming') {
      throw new Error(`sim node ${this.node}: cannot boot ${guest.name}: it is waiting for incoming migration ${existing.migrationId}`);
    }
    if (existing) {
      // The guest's load (dirty rate, working set) is what the spec says now; a running
      // guest not migrating takes it up, as a real guest's load changes. Its memory stays.
      if (existing.state === 'running' && !this.jobs.has(guest.name)) {
        existing.guest = { ...this.guestModel({ ...guest, memoryBytes: existing.guest.memoryBytes }) };
      }
      return;
    }
    // With a journal every guest is known from the start: one that is absent here is not here, and booting
    // it would start a second, empty guest (or hide that the real one was lost).
    if (this.journal) throw new Error(`sim node ${this.node}: no domain ${guest.name} on this node`);
    this.put({ name: guest.name, state: 'running', guest: this.guestModel(guest) });
  }

  /**
   * Creates the incoming domain. Preparing the same migration again is a no-op; a
   * leftover from another migration (or a shut-off copy of the guest) is replaced.
   */
  async prepareIncoming(guest: GuestSpec, migrationId: string): Promise<{ address: string }> {
    const existing = this.domains.get(guest.name);
    if (existing && (existing.state === 'running' || existing.state === 'paused')) {
      throw new Error(`sim node ${this.node}: cannot receive ${guest.name} (migration ${migrationId}): it is already ${existing.state} here`);
    }
    if (!(existing?.state === 'incoming' && existing.migrationId === migrationId)) {
      this.put({ name: guest.name, state: 'incoming', guest: this.guestModel(guest), migrationId });
    }
    return { address: simAddress(this.node, migrationId) };
  }

  async finishIncoming(name: string, migrationId: string): Promise<DomainState | 'missing'> {
    const domain = this.domains.get(name);
    if (!domain || domain.migrationId !== migrationId) return 'missing';
    if (domain.state === 'incoming') this.setState(domain, 'running');
    return domain.state;
  }

  /** Drops the incoming domain this migration prepared, if any; never a running one. */
  async cancelIncoming(name: string, migrationId: string): Promise<void> {
    const domain = this.domains.get(name);
    if (domain?.state === 'incoming' && domain.migrationId === migrationId) this.remove(domain);
  }

  async migrate(
    name: string,
    target: { node: string; address: string },
    controls: MigrationControls,
    migrationId: string,
  ): Promise<MigrationJob> {
    const what = `sim node ${this.node}: cannot migrate ${name} (migration ${migrationId})`;
    if (this.closed) throw new Error(`${what}: the driver is closed`);
    const domain = this.domains.get(name);
    if (!domain) throw new Error(`${what}: no such domain on this node`);
    const running = this.jobs.get(name);
    if (running) throw new Error(`${what}: migration ${running.migrationId} of this domain is already in progress`);
    if (domain.state !== 'running') throw new Error(`${what}: the domain is ${domain.state}, not running`);
    if (target.node === this.node) throw new Error(`${what}: the target is this node`);
    const expectedPrefix = `sim://${target.node}/`;
    if (!target.address.startsWith(expectedPrefix)) {
      throw new Error(`${what}: target address "${target.address}" is not a sim address on node ${target.node} (expected ${expectedPrefix}…)`);
    }
    if (!(controls.bandwidth >= 0) || !Number.isFinite(controls.bandwidth)) {
      throw new RangeError(`${what}: bandwidth must be a finite number ≥ 0 (0 = unlimited), got ${controls.bandwidth}`);
    }
    const listening = this.targetListening;
    if (listening && !listening(target.node, name, migrationId)) {
      throw new Error(`${what}: nothing listens at ${target.address}: node ${target.node} holds no incoming domain for this migration`);
    }
    let model: PrecopyState;
    try {
      model = startPrecopy(domain.guest, { ...controls, bandwidth: this.resolveBandwidth(controls.bandwidth) });
    } catch (err) {
      throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
    }
    const job = new SimMigrationJob(migrationId, name, model, controls.bandwidth === 0, {
      clock: this.clock,
      tickMs: this.tickMs,
      timeScale: this.timeScale,
      resolveBandwidth: (bps) => this.resolveBandwidth(bps),
      onModel: (state) => this.onJobModel(name, state),
      onEnd: (outcome) => this.onJobEnd(name, outcome, migrationId),
      onBandwidth: (bps) => this.recordJob(domain, migrationId, 'bandwidth', { bandwidth: bps }),
      ...(listening ? { targetListening: () => listening(target.node, name, migrationId) } : {}),
    });
    this.jobs.set(name, job);
    this.recordJob(domain, migrationId, 'start', { targetNode: target.node, bandwidth: controls.bandwidth });
    return job;
  }

  /** Source side after success: the guest left. Refuses to drop a guest that still runs here. */
  async forget(name: string): Promise<void> {
    const domain = this.domains.get(name);
    if (!domain) return;
    if (domain.state !== 'shutoff' || this.jobs.has(name)) {
      throw new Error(`sim node ${this.node}: refusing to forget ${name}: it is ${domain.state} here, not migrated away`);
    }
    this.remove(domain);
  }

  /** Stops every timer; running jobs end as aborted with reason "driver closed". */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of [...this.jobs.values()]) job.stop('driver closed');
  }

  private resolveBandwidth(bytesPerSecond: number): number {
    return bytesPerSecond === 0 ? this.nicBandwidth : bytesPerSecond;
  }

  private guestModel(spec: GuestSpec): GuestModel {
    return {
      memoryBytes: spec.memoryBytes,
      dirtyRate: spec.dirtyRate ?? this.defaults.dirtyRate,
      workingSet: Math.min(spec.workingSet ?? this.defaults.workingSet, spec.memoryBytes),
      zeroFraction: spec.zeroFraction ?? this.defaults.zeroFraction,
    };
  }

  /** In post-copy the guest runs on the target: libvirt shows the source paused. */
  private onJobModel(name: string, state: PrecopyState): void {
    const domain = this.domains.get(name);
    if (domain && state.stage === 'postcopy' && domain.state !== 'paused') this.setState(domain, 'paused');
  }

  private onJobEnd(name: string, outcome: MigrationOutcome, migrationId: string): void {
    this.jobs.delete(name);
    const domain = this.domains.get(name);
    if (!domain) return;
    this.recordJob(domain, migrationId, 'end', { outcome: outcome.status });
    if (outcome.status === 'completed') this.setState(domain, 'shutoff');
    else if (outcome.stats.mode === 'PreCopy') this.setState(domain, 'running');
  }

  private put(domain: SimDomain): void {
    this.domains.set(domain.name, domain);
    this.record(domain, domain.state);
  }

  private setState(domain: SimDomain, state: DomainState): void {
    domain.state = state;
    this.record(domain, state);
  }

  private remove(domain: SimDomain): void {
    this.domains.delete(domain.name);
    this.record(domain, 'gone');
  }

  private recordJob(domain: SimDomain, migrationId: string, job: 'start' | 'bandwidth' | 'end', extra: { targetNode?: string; bandwidth?: number; outcome?: string }): void {
    this.journal?.append({ at: this.clock.now(), node: this.node, domain: domain.name, state: domain.state, migrationId, job, ...extra });
  }

  private record(domain: SimDomain, state: DomainState | 'gone'): void {
    this.journal?.append({
      at: this.clock.now(),
      node: this.node,
      domain: domain.name,
      state,
      memoryBytes: domain.guest.memoryBytes,
      ...(domain.migrationId ? { migrationId: domain.migrationId } : {}),
    });
  }
}

export function simAddress(node: string, migrationId: string): string {
  return `sim://${node}/${migrationId}`;
}

interface JobHost {
  clock: Clock;
  tickMs: number;
  timeScale: number;
  resolveBandwidth(bytesPerSecond: number): number;
  onModel(state: PrecopyState): void;
  onEnd(outcome: MigrationOutcome): void;
  onBandwidth(bytesPerSecond: number): void;
  /** Asked before the switch-over: a pre-copy whose target is gone fails and the guest stays. */
  targetListening?: () => boolean;
}

class SimMigrationJob implements MigrationJob {
  readonly done: Promise<MigrationOutcome>;
  private resolveDone!: (outcome: MigrationOutcome) => void;
  private outcome: MigrationOutcome | undefined;
  private timer: TimerHandle | undefined;
  private syncedAt: number;

  constructor(
    readonly migrationId: string,
    private readonly domain: string,
    private model: PrecopyState,
    /** Bandwidth 0 was asked for: the model runs at NIC speed, stats report limit 0. */
    private unlimited: boolean,
    private readonly host: JobHost,
  ) {
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
    this.syncedAt = host.clock.now();
    this.schedule();
  }

  async stats(): Promise<JobStats> {
    this.sync();
    return this.currentStats();
  }

  async setBandwidth(bytesPerSecond: number): Promise<void> {
    if (!(bytesPerSecond >= 0) || !Number.isFinite(bytesPerSecond)) {
      throw new RangeError(`${this.describe()}: bandwidth must be a finite number ≥ 0 (0 = unlimited), got ${bytesPerSecond}`);
    }
    this.steer((s) => setBandwidth(s, this.host.resolveBandwidth(bytesPerSecond)));
    this.unlimited = bytesPerSecond === 0;
    this.host.onBandwidth(bytesPerSecond);
  }

  async setMaxDowntime(ms: number): Promise<void> {
    this.steer((s) => setMaxDowntime(s, ms));
  }

  async startPostCopy(): Promise<void> {
    this.steer(startPostCopy);
  }

  /** Resolves at once (the sim aborts synchronously); `done` then reports aborted. */
  async abort(reason: string): Promise<void> {
    this.sync();
    if (this.outcome?.status === 'aborted') return;
    this.steer((s) => abortPrecopy(s, reason));
  }

  /** Driver shutdown: ends the job whatever its stage, and drops its timer. */
  stop(reason: string): void {
    this.sync();
    if (this.outcome) return;
    if (this.model.stage === 'postcopy') {
      this.finish({ status: 'failed', reason: `${reason} during post-copy`, stats: this.currentStats() });
    } else {
      this.model = abortPrecopy(this.model, reason);
      this.finish({ status: 'aborted', reason, stats: this.currentStats() });
    }
  }

  /** Applies a model change now; model errors come back with the job's context. */
  private steer(change: (s: PrecopyState) => PrecopyState): void {
    this.sync();
    try {
      this.model = change(this.model);
    } catch (err) {
      throw new Error(`${this.describe()}: ${(err as Error).message}`, { cause: err });
    }
    this.afterChange();
    // A faster rate may finish it before the next tick.
    if (!this.outcome && this.timer !== undefined) {
      this.host.clock.clearTimeout(this.timer);
      this.schedule();
    }
  }

  private sync(): void {
    if (this.outcome) return;
    const now = this.host.clock.now();
    const dt = (now - this.syncedAt) * this.host.timeScale;
    this.syncedAt = now;
    if (dt > 0) this.model = advance(this.model, dt);
    this.afterChange();
  }

  private afterChange(): void {
    if (this.outcome) return;
    this.host.onModel(this.model);
    if (!isFinished(this.model)) return;
    const stats = this.currentStats();
    if (this.model.stage === 'completed' && this.model.mode === 'PreCopy' && this.host.targetListening && !this.host.targetListening()) {
      this.finish({ status: 'failed', reason: 'the connection to the target was lost before the switch-over: its incoming domain is gone', stats });
    } else if (this.model.stage === 'completed') {
      this.finish({ status: 'completed', mode: this.model.mode, downtimeMs: this.model.downtimeMs, stats });
    } else {
      this.finish({ status: 'aborted', reason: this.model.abortReason ?? 'aborted', stats });
    }
  }

  private finish(outcome: MigrationOutcome): void {
    this.outcome = outcome;
    if (this.timer !== undefined) this.host.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.host.onEnd(outcome);
    this.resolveDone(outcome);
  }

  /** Wakes at the next tick, or sooner when the model says it completes sooner, so outcomes are not a tick late. */
  private schedule(): void {
    const left = timeToFinishMs(this.model) / this.host.timeScale;
    const ms = Number.isFinite(left) ? Math.min(this.host.tickMs, Math.max(1, Math.ceil(left))) : this.host.tickMs;
    this.timer = this.host.clock.setTimeout(() => {
      this.timer = undefined;
      this.sync();
      if (!this.outcome) this.schedule();
    }, ms);
  }

  private currentStats(): JobStats {
    const stats = jobStats(this.model);
    return this.unlimited ? { ...stats, bandwidthLimit: 0 } : stats;
  }

  private describe(): string {
    return `sim migration ${this.migrationId} of ${this.domain}`;
  }
}
