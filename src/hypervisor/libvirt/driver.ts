import { systemClock, type Clock } from '../../util/clock.js';
import { silentLogger, type Logger } from '../../util/log.js';
import type {
  DomainInfo, DomainState, GuestSpec, HypervisorDriver, JobStats, MigrationControls, MigrationJob, MigrationMode,
} from '../driver.js';
import { formatAddress, parseAddress, unixSocketUri } from './address.js';
import { mibToBandwidth } from './bandwidth.js';
import { domainStateOf, inPostCopy, mayHoldOnlyCopy } from './domainState.js';
import { isLibvirtError } from './errors.js';
import { jobErrorMessage, phaseOfJobType, toJobStats, type LibvirtJobStats } from './jobStats.js';
import { hasLocalWritableDisk, migrationFlags, migrationParams } from './migrationFlags.js';
import { LibvirtMigrationJob } from './migrationJob.js';
import { findFreePort } from './ports.js';
import {
  DomainStateCode, ErrorCode, JobOperation, JobStatsFlag, JobType, PausedReason, paramsToRecord, ShutoffReason, UndefineFlag,
  type DomainRef,
} from './protocol.js';
import { LibvirtRemote } from './remote.js';

export interface LibvirtDriverOptions {
  /** libvirtd's unix socket, e.g. `<launcher dir>/run/libvirt-sock`. */
  socketPath?: string;
  /** Alternatively its URI, `qemu+unix:///system?socket=<path>` (only unix sockets are spoken). */
  uri?: string;
  /** This node's name (for messages). */
  node: string;
  /** First port tried for incoming migrations; without it the kernel picks free ports. */
  migrationPortBase?: number;
  /** Address the target QEMU listens on for the memory stream (default 127.0.0.1). */
  migrationHost?: string;
  /**
   * Domain XML for a guest that is not defined here yet. In KubeVirt the
   * launcher defines the domain; in the test world this stands in for it.
   * Without it, ensureRunning() of an undefined guest fails.
   */
  domainTemplate?: (guest: GuestSpec) => string;
  log?: Logger;
  clock?: Clock;
  /** How often a running migration's job statistics are fetched (KubeVirt: 400 ms). */
  pollIntervalMs?: number;
  /** How long migrate() waits for libvirt to show the new job before returning it. */
  jobStartTimeoutMs?: number;
  /**
   * Outgoing migrations this node runs at once; one more is refused before
   * anything starts. Default: libvirtd's max_client_requests (5) − 2. Each
   * migration's perform call blocks a daemon worker for as long as it runs; the
   * margin keeps aborts, statistics and speed changes answered.
   */
  maxOutboundMigrations?: number;
}

/** libvirtd's default max_client_requests. */
export const LIBVIRTD_MAX_CLIENT_REQUESTS = 5;

/** What a (possibly restarted) handler can learn about a domain's outgoing migration. */
export interface MigrationInspection {
  domain: string;
  state: DomainState | 'missing';
  /** An outgoing migration job is running now. */
  migrating: boolean;
  mode?: MigrationMode;
  /** Live statistics when migrating; libvirt's record of the last finished job otherwise. */
  stats?: JobStats;
  /** libvirt's error message of the last finished job, when it failed. */
  lastError?: string;
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

function socketFromUri(uri: string): string {
  const m = /^[a-z0-9]+\+unix:\/\/\/[^?]*\?(.*)$/i.exec(uri);
  const socket = m ? new URLSearchParams(m[1]).get('socket') : null;
  if (!socket) throw new Error(`LibvirtDriver speaks to libvirtd over a unix socket; cannot use URI ${JSON.stringify(uri)} (expected qemu+unix:///system?socket=PATH)`);
  return socket;
}

/**
 * The HypervisorDriver for real libvirtd + QEMU, spoken to over libvirt's
 * remote protocol on the daemon's unix socket (no libvirt library, no virsh).
 *
 * Migrations are peer-to-peer the way KubeVirt does them: the source daemon
 * connects to the target daemon itself, so the target needs nothing prepared
 * but an address (its libvirt URI and a free port for QEMU).
 *
 * Safety rule for target-side cleanup (cancelIncoming): a domain is destroyed
 * only while it is still waiting for incoming memory (paused for migration);
 * a running or otherwise paused domain may hold the only copy of the guest
 * (migration completed after all, or post-copy has begun) and is left alone.
 * Call it once the source's job has ended (failed or aborted), as the
 * interface says: while the source still runs its job, the target could be
 * resumed between our look and the destroy. forget() likewise only undefines
 * a domain that is shut off here, and ensureRunning() refuses to boot a
 * definition whose guest was migrated away.
 */
export class LibvirtDriver implements HypervisorDriver {
  readonly kind = 'libvirt' as const;
  readonly socketPath: string;
  private readonly node: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  private readonly jobStartTimeoutMs: number;
  private readonly migrationHost: string;
  private readonly opts: LibvirtDriverOptions;
  private conn: Promise<LibvirtRemote> | null = null;
  private closed = false;
  /** Ports handed out by prepareIncoming, by migration id, until finish/cancel. */
  private readonly ports = new Map<string, number>();
  /** Outgoing migrations this instance started or attached to, by domain. */
  private readonly jobs = new Map<string, LibvirtMigrationJob>();
  /** Outgoing migrations running or being started: counted against maxOutboundMigrations. */
  private outbound = 0;
  readonly maxOutboundMigrations: number;
  /** The perform calls' own connections, closed with the driver (the migrations go on in libvirtd). */
  private readonly performConns = new Set<LibvirtRemote>();

  constructor(opts: LibvirtDriverOptions) {
    if (!opts.socketPath && !opts.uri) throw new Error('LibvirtDriver needs socketPath or uri');
    this.opts = opts;
    this.socketPath = opts.socketPath ?? socketFromUri(opts.uri!);
    this.node = opts.node;
    this.log = (opts.log ?? silentLogger).child({ driver: 'libvirt', node: opts.node });
    this.clock = opts.clock ?? systemClock;
    this.pollIntervalMs = opts.pollIntervalMs ?? 400;
    this.jobStartTimeoutMs = opts.jobStartTimeoutMs ?? 5000;
    this.migrationHost = opts.migrationHost ?? '127.0.0.1';
    this.maxOutboundMigrations = opts.maxOutboundMigrations ?? LIBVIRTD_MAX_CLIENT_REQUESTS - 2;
    if (!Number.isInteger(this.maxOutboundMigrations) || this.maxOutboundMigrations < 1) {
      throw new Error(`maxOutboundMigrations must be a whole number of at least 1, got ${opts.maxOutboundMigrations}`);
    }
  }

  /** Outgoing migrations running (or starting) on this node now. */
  get outboundMigrations(): number {
    return this.outbound;
  }

  /** Takes an outbound slot now (synchronously, so concurrent starts cannot both get the last one). */
  private takeOutboundSlot(name: string): () => void {
    if (this.outbound >= this.maxOutboundMigrations) {
      throw new Error(`cannot migrate ${name}: ${this.outbound} outgoing migrations already run on ${this.node}, the most this driver runs at once (maxOutboundMigrations ${this.maxOutboundMigrations})`);
    }
    this.outbound++;
    return once(() => { this.outbound--; });
  }

  /** The libvirt URI other daemons use to reach this one. */
  get uri(): string {
    return unixSocketUri(this.socketPath);
  }

  /** After a failed reconnect: no new attempt before this time (clock ms); calls fail at once with the last error. */
  private reconnectAfter = 0;
  private reconnectGapMs = 0;
  private lastOpenError: Error | undefined;

  /**
   * The shared connection, reopened if libvirtd went away and came back. While
   * the daemon stays unreachable, attempts are spaced out (100 ms doubling to
   * 5 s): every poll and command would otherwise knock on the socket at once.
   */
  private async remote(): Promise<LibvirtRemote> {
    if (this.closed) throw new Error(`libvirt driver for ${this.node} is closed`);
    if (this.conn) {
      const current = await this.conn.catch(() => null);
      if (current && !current.closed) return current;
    }
    const now = this.clock.now();
    if (this.lastOpenError && now < this.reconnectAfter) {
      throw new Error(`${this.lastOpenError.message} (next attempt in ${this.reconnectAfter - now} ms)`, { cause: this.lastOpenError });
    }
    const opening = LibvirtRemote.open(this.socketPath);
    this.conn = opening;
    // A daemon that dies is noticed (keepalive) and the next call reconnects.
    void opening.then((r) => r.onClose((reason) => this.log.warn({ err: reason.message }, 'connection to libvirtd lost; the next call reconnects')), () => undefined);
    try {
      const r = await opening;
      this.reconnectGapMs = 0;
      this.lastOpenError = undefined;
      return r;
    } catch (err) {
      if (this.conn === opening) this.conn = null;
      const e = new Error(`cannot reach libvirtd of ${this.node} at ${this.socketPath}: ${(err as Error).message}`, { cause: err });
      this.reconnectGapMs = Math.min(Math.max(this.reconnectGapMs * 2, 100), 5000);
      this.reconnectAfter = this.clock.now() + this.reconnectGapMs;
      this.lastOpenError = e;
      throw e;
    }
  }

  /** A connection of its own (for one perform call). */
  private async open(): Promise<LibvirtRemote> {
    if (this.closed) throw new Error(`libvirt driver for ${this.node} is closed`);
    try {
      return await LibvirtRemote.open(this.socketPath);
    } catch (err) {
      throw new Error(`cannot reach libvirtd of ${this.node} at ${this.socketPath}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async lookup(r: LibvirtRemote, name: string): Promise<DomainRef | null> {
    try {
      return await r.lookupDomainByName(name);
    } catch (err) {
      if (isLibvirtError(err, ErrorCode.NO_DOMAIN)) return null;
      throw err;
    }
  }

  private async liveJob(r: LibvirtRemote, dom: DomainRef): Promise<LibvirtJobStats | null> {
    try {
      const reply = await r.getJobStats(dom);
      return { type: reply.type, params: paramsToRecord(reply.params) };
    } catch {
      // The target of a migration has no outgoing job to report ("statistics
      // are available only on the source host"); an inactive domain none at all.
      return null;
    }
  }

  private static isOutgoingMigration(job: LibvirtJobStats | null): boolean {
    if (!job || (job.type !== JobType.BOUNDED && job.type !== JobType.UNBOUNDED)) return false;
    const op = job.params['operation'];
    return op === undefined || op === JobOperation.MIGRATION_OUT;
  }

  private async stateOf(r: LibvirtRemote, dom: DomainRef): Promise<{ state: DomainState; raw: { state: number; reason: number } }> {
    const raw = await r.getState(dom);
    let migratingOut = false;
    if (raw.state === DomainStateCode.PAUSED && raw.reason === PausedReason.MIGRATION) {
      migratingOut = LibvirtDriver.isOutgoingMigration(await this.liveJob(r, dom));
    }
    return { state: domainStateOf(raw.state, raw.reason, migratingOut), raw };
  }

  async listDomains(): Promise<DomainInfo[]> {
    const r = await this.remote();
    const out: DomainInfo[] = [];
    for (const dom of await r.listAllDomains()) {
      try {
        const { state } = await this.stateOf(r, dom);
        out.push({ name: dom.name, state, memoryBytes: (await r.getMaxMemoryKiB(dom)) * 1024 });
      } catch (err) {
        // Gone between the listing and the look (a migration just finished).
        if (!isLibvirtError(err, ErrorCode.NO_DOMAIN)) throw err;
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async ensureRunning(guest: GuestSpec): Promise<void> {
    const r = await this.remote();
    let dom = await this.lookup(r, guest.name);
    if (!dom) {
      if (!this.opts.domainTemplate) {
        throw new Error(`domain ${guest.name} is not defined on ${this.node} and the driver has no domain template to define it`);
      }
      dom = await r.defineXml(this.opts.domainTemplate(guest));
      this.log.info({ domain: guest.name }, 'domain defined from template');
    }
    const { state, reason } = await r.getState(dom);
    if (state === DomainStateCode.RUNNING || state === DomainStateCode.BLOCKED) return;
    if (state === DomainStateCode.SHUTOFF) {
      if (reason === ShutoffReason.MIGRATED) {
        // Its guest now runs on another node: booting this copy would make two.
        throw new Error(`domain ${guest.name} on ${this.node} was migrated away; not starting a second copy (forget() it first)`);
      }
      await r.createDomain(dom);
      this.log.info({ domain: guest.name }, 'domain started');
      return;
    }
    if (state === DomainStateCode.PAUSED && reason === PausedReason.USER) {
      await r.resume(dom);
      return;
    }
    if (state === DomainStateCode.PAUSED && reason === PausedReason.STARTING_UP) return;
    throw new Error(`domain ${guest.name} on ${this.node} is in libvirt state ${state} (reason ${reason}); cannot make it run`);
  }

  async prepareIncoming(guest: GuestSpec, migrationId: string): Promise<{ address: string }> {
    const r = await this.remote();
    const dom = await this.lookup(r, guest.name);
    if (dom) {
      const raw = await r.getState(dom);
      if (mayHoldOnlyCopy(raw.state, raw.reason)) {
        throw new Error(`domain ${guest.name} already runs on ${this.node} (libvirt state ${raw.state}/${raw.reason}); it cannot be a migration target here`);
      }
    }
    // Not awaited: a daemon that has not run a domain yet (a new target launcher)
    // loads QEMU's capabilities from its cache on its first domain XML, ~30 ms
    // inside the incoming prepare. Asking for the default emulator's domain
    // capabilities loads them now, while the controller records TargetReady and
    // starts the source. (Not the host's capabilities: those cover every QEMU
    // binary installed, and one without a cache entry is probed, for seconds.)
    void r.domainCapabilities().catch((err: unknown) =>
      this.log.debug({ domain: guest.name, migrationId, err: (err as Error).message }, 'warming the capabilities of the target daemon failed'));
    let port = this.ports.get(migrationId);
    if (port === undefined) {
      port = await findFreePort(this.migrationHost, new Set(this.ports.values()), this.opts.migrationPortBase);
      this.ports.set(migrationId, port);
    }
    const address = formatAddress({ destUri: this.uri, migrateUri: `tcp://${this.migrationHost}:${port}` });
    this.log.info({ domain: guest.name, migrationId, port }, 'ready for incoming migration');
    return { address };
  }

  async finishIncoming(name: string, migrationId: string): Promise<DomainState | 'missing'> {
    this.ports.delete(migrationId);
    const r = await this.remote();
    const dom = await this.lookup(r, name);
    if (!dom) return 'missing';
    try {
      return (await this.stateOf(r, dom)).state;
    } catch (err) {
      if (isLibvirtError(err, ErrorCode.NO_DOMAIN)) return 'missing';
      throw err;
    }
  }

  async cancelIncoming(name: string, migrationId: string): Promise<void> {
    this.ports.delete(migrationId);
    const r = await this.remote();
    const dom = await this.lookup(r, name);
    if (!dom) return;
    const raw = await r.getState(dom);
    if (raw.state === DomainStateCode.SHUTOFF) {
      // A definition left behind, no guest in it.
      if (await r.isPersistent(dom)) await r.undefine(dom, UndefineFlag.MANAGED_SAVE | UndefineFlag.SNAPSHOTS_METADATA);
      this.log.info({ domain: name, migrationId }, 'removed leftover definition of cancelled incoming domain');
      return;
    }
    if (mayHoldOnlyCopy(raw.state, raw.reason)) {
      this.log.warn({ domain: name, migrationId, state: raw.state, reason: raw.reason, postCopy: inPostCopy(raw.state, raw.reason) },
        'not destroying incoming domain: it may hold the only copy of the guest');
      return;
    }
    try {
      await r.destroy(dom);
      if (await r.isPersistent(dom).catch(() => false)) await r.undefine(dom, UndefineFlag.MANAGED_SAVE | UndefineFlag.SNAPSHOTS_METADATA);
      this.log.info({ domain: name, migrationId }, 'destroyed half-arrived domain');
    } catch (err) {
      // libvirt may have cleaned it up itself meanwhile (the source's abort).
      if (!isLibvirtError(err, ErrorCode.NO_DOMAIN) && !isLibvirtError(err, ErrorCode.OPERATION_INVALID)) throw err;
    }
  }

  /**
   * `opts.ready`: what must be in place before libvirt is asked to migrate
   * (the launcher driver's source proxy); it is awaited after this driver's
   * own preparation, so the two overlap.
   */
  async migrate(name: string, target: { node: string; address: string }, controls: MigrationControls, migrationId: string, opts: { ready?: Promise<unknown> } = {}): Promise<MigrationJob> {
    const { destUri, migrateUri } = parseAddress(target.address);
    const existing = this.jobs.get(name);
    if (existing && !existing.settled) {
      if (existing.migrationId === migrationId) return existing;
      throw new Error(`${name} on ${this.node} is already migrating (migration ${existing.migrationId})`);
    }
    const release = this.takeOutboundSlot(name);
    let r: LibvirtRemote;
    let dom: DomainRef;
    let performConn: LibvirtRemote;
    let flags: number;
    // The perform call blocks for the whole migration: it gets a connection of its own
    // (as virsh does), so the daemon's per-client request limit never holds up the
    // aborts, statistics and speed changes sent on the shared one. Opened while the
    // domain is checked (each step is a round trip on a migration's critical path).
    const opening = this.open();
    opening.catch(() => undefined);
    try {
      r = await this.remote();
      const found = await this.lookup(r, name);
      if (!found) throw new Error(`cannot migrate ${name}: no such domain on ${this.node}`);
      dom = found;
      const [raw, xml] = await Promise.all([r.getState(dom), r.getXmlDesc(dom)]);
      if (raw.state !== DomainStateCode.RUNNING) {
        throw new Error(`cannot migrate ${name} from ${this.node}: it is not running (libvirt state ${raw.state}/${raw.reason})`);
      }
      flags = migrationFlags(controls, { localDisk: hasLocalWritableDisk(xml) });
      // Applies to the migration about to start: libvirt keeps it for the domain.
      if (controls.maxDowntimeMs > 0) await r.migrateSetMaxDowntime(dom, controls.maxDowntimeMs);
      performConn = await opening;
      await opts.ready;
    } catch (err) {
      release();
      // The perform connection was opened for this migration only.
      void opening.then((c) => c.close(), () => undefined);
      throw err;
    }

    this.log.info({ domain: name, migrationId, targetNode: target.node, destUri, migrateUri, flags, controls }, 'starting peer-to-peer migration');
    const perform = performConn.migratePerform3Params(dom, destUri, migrationParams(migrateUri, controls), flags);
    let performEnded = false;
    this.performConns.add(performConn);
    const performDone = () => {
      performEnded = true;
      this.performConns.delete(performConn);
      void performConn.close();
    };
    perform.then(performDone, performDone);

    const job = LibvirtMigrationJob.started({
      remote: () => this.remote(), dom, migrationId, node: this.node, clock: this.clock, pollIntervalMs: this.pollIntervalMs,
      log: this.log, bandwidthLimit: controls.bandwidth, postCopyAllowed: controls.postCopy, mode: 'PreCopy',
      onSettled: () => {
        release();
        if (this.jobs.get(name) === job) this.jobs.delete(name);
      },
    }, perform);
    this.jobs.set(name, job);

    // Return once libvirt shows the job, so controls sent right away reach it.
    const deadline = this.clock.now() + this.jobStartTimeoutMs;
    while (!performEnded && this.clock.now() < deadline) {
      if (LibvirtDriver.isOutgoingMigration(await this.liveJob(r, dom))) break;
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, 25));
    }
    return job;
  }

  async forget(name: string): Promise<void> {
    const r = await this.remote();
    const dom = await this.lookup(r, name);
    if (!dom) return;
    const raw = await r.getState(dom);
    if (raw.state !== DomainStateCode.SHUTOFF) {
      throw new Error(`refusing to forget ${name} on ${this.node}: it is not shut off here (libvirt state ${raw.state}/${raw.reason})`);
    }
    try {
      await r.undefine(dom, UndefineFlag.MANAGED_SAVE | UndefineFlag.SNAPSHOTS_METADATA);
      this.log.info({ domain: name }, 'forgot migrated-away domain');
    } catch (err) {
      if (!isLibvirtError(err, ErrorCode.NO_DOMAIN)) throw err;
    }
  }

  /**
   * For a restarted handler: is an outgoing migration of `name` running here,
   * and how far is it (or how did the last one end)? Works across driver
   * instances: everything comes from libvirtd.
   */
  async inspectMigration(name: string): Promise<MigrationInspection> {
    const r = await this.remote();
    const dom = await this.lookup(r, name);
    if (!dom) return { domain: name, state: 'missing', migrating: false };
    const { state, raw } = await this.stateOf(r, dom);
    const mode: MigrationMode = inPostCopy(raw.state, raw.reason) ? 'PostCopy' : 'PreCopy';
    const live = await this.liveJob(r, dom);
    const bandwidthLimit = mibToBandwidth(await r.migrateGetMaxSpeed(dom).catch(() => 0));
    if (LibvirtDriver.isOutgoingMigration(live)) {
      return { domain: name, state, migrating: true, mode, stats: toJobStats(live!, { mode, bandwidthLimit }, 'running') };
    }
    let record: LibvirtJobStats | null = null;
    try {
      const reply = await r.getJobStats(dom, JobStatsFlag.COMPLETED | JobStatsFlag.KEEP_COMPLETED);
      record = reply.type === JobType.NONE ? null : { type: reply.type, params: paramsToRecord(reply.params) };
    } catch {
      record = null;
    }
    if (!record) return { domain: name, state, migrating: false };
    const phase = phaseOfJobType(record.type) ?? 'failed';
    const lastError = jobErrorMessage(record);
    return { domain: name, state, migrating: false, stats: toJobStats(record, { mode, bandwidthLimit }, phase), ...(lastError ? { lastError } : {}) };
  }

  /**
   * Takes over an outgoing migration of `name` that is running in libvirtd
   * (started by an earlier handler process): returns a MigrationJob that polls
   * it, steers it and settles when it ends; null when none is running.
   */
  async attachMigration(name: string, migrationId: string): Promise<MigrationJob | null> {
    const existing = this.jobs.get(name);
    if (existing && !existing.settled) return existing;
    const r = await this.remote();
    const dom = await this.lookup(r, name);
    if (!dom) return null;
    const live = await this.liveJob(r, dom);
    if (!LibvirtDriver.isOutgoingMigration(live)) return null;
    const raw = await r.getState(dom);
    const mode: MigrationMode = inPostCopy(raw.state, raw.reason) ? 'PostCopy' : 'PreCopy';
    const bandwidthLimit = mibToBandwidth(await r.migrateGetMaxSpeed(dom).catch(() => 0));
    // It runs whether or not there is room: count it, so that new starts wait for it.
    this.outbound++;
    const release = once(() => { this.outbound--; });
    const job = LibvirtMigrationJob.attached({
      remote: () => this.remote(), dom, migrationId, node: this.node, clock: this.clock, pollIntervalMs: this.pollIntervalMs,
      // Whether post-copy was enabled is not visible from outside; libvirt refuses the switch if not.
      log: this.log, bandwidthLimit, postCopyAllowed: true, mode,
      onSettled: () => {
        release();
        if (this.jobs.get(name) === job) this.jobs.delete(name);
      },
    }, toJobStats(live!, { mode, bandwidthLimit }, 'running'));
    this.jobs.set(name, job);
    this.log.info({ domain: name, migrationId }, 'attached to running migration');
    return job;
  }

  /**
   * Drops the connection. Migrations keep running inside libvirtd (a
   * peer-to-peer migration does not depend on the client that started it);
   * their jobs here settle as failed with a reason saying so, and a new driver
   * can attachMigration() to them.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const conn = this.conn;
    this.conn = null;
    const r = conn ? await conn.catch(() => null) : null;
    for (const job of this.jobs.values()) job.abandon(`libvirt driver for ${this.node} closed while the migration was running; it continues in libvirtd`);
    this.jobs.clear();
    await Promise.all([...this.performConns].map((c) => c.close()));
    this.performConns.clear();
    if (r) await r.close();
  }
}
