import type {
  DomainInfo,
  DomainState,
  GuestSpec,
  HypervisorDriver,
  JobStats,
  MigrationControls,
  MigrationJob,
  MigrationOutcome,
} from '../../../src/hypervisor/driver.js';

/**
 * A driver whose migrations end exactly when the test says so: for tests about
 * what the handler does at the moment a job ends. Everything else behaves like
 * a small hypervisor: domains appear, move to 'incoming', run, and leave.
 */
export class ScriptedDriver implements HypervisorDriver {
  readonly kind = 'sim' as const;
  readonly domains = new Map<string, DomainInfo>();
  readonly jobs: ScriptedJob[] = [];
  readonly calls: string[] = [];
  /** Makes the next call of that method throw. */
  readonly failNext = new Set<'prepareIncoming' | 'migrate' | 'ensureRunning'>();
  private nextPort = 49152;

  constructor(readonly node: string) {}

  private check(method: 'prepareIncoming' | 'migrate' | 'ensureRunning'): void {
    if (this.failNext.delete(method)) throw new Error(`${method} failed on ${this.node} (scripted)`);
  }

  async listDomains(): Promise<DomainInfo[]> {
    return [...this.domains.values()].map((d) => ({ ...d }));
  }

  async ensureRunning(guest: GuestSpec): Promise<void> {
    this.calls.push(`ensureRunning ${guest.name}`);
    this.check('ensureRunning');
    if (!this.domains.has(guest.name)) this.domains.set(guest.name, { name: guest.name, state: 'running', memoryBytes: guest.memoryBytes });
  }

  async prepareIncoming(guest: GuestSpec, migrationId: string): Promise<{ address: string }> {
    this.calls.push(`prepareIncoming ${guest.name} ${migrationId}`);
    this.check('prepareIncoming');
    this.domains.set(guest.name, { name: guest.name, state: 'incoming', memoryBytes: guest.memoryBytes });
    return { address: `tcp://${this.node}:${this.nextPort++}` };
  }

  async finishIncoming(name: string, migrationId: string): Promise<DomainState | 'missing'> {
    this.calls.push(`finishIncoming ${name} ${migrationId}`);
    const d = this.domains.get(name);
    if (!d) return 'missing';
    d.state = 'running';
    return d.state;
  }

  async cancelIncoming(name: string, migrationId: string): Promise<void> {
    this.calls.push(`cancelIncoming ${name} ${migrationId}`);
    if (this.domains.get(name)?.state === 'incoming') this.domains.delete(name);
  }

  async migrate(name: string, target: { node: string; address: string }, controls: MigrationControls, migrationId: string): Promise<MigrationJob> {
    this.calls.push(`migrate ${name} ${target.node} ${target.address} ${migrationId}`);
    this.check('migrate');
    const domain = this.domains.get(name);
    if (!domain || domain.state !== 'running') throw new Error(`domain ${name} is not running on ${this.node}`);
    const job = new ScriptedJob(migrationId, domain.memoryBytes, controls);
    this.jobs.push(job);
    return job;
  }

  async forget(name: string): Promise<void> {
    this.calls.push(`forget ${name}`);
    this.domains.delete(name);
  }

  async close(): Promise<void> {}
}

export class ScriptedJob implements MigrationJob {
  readonly done: Promise<MigrationOutcome>;
  readonly applied: string[] = [];
  private settle!: (o: MigrationOutcome) => void;
  private current: JobStats;

  constructor(readonly migrationId: string, memoryBytes: number, controls: MigrationControls) {
    this.done = new Promise((resolve) => { this.settle = resolve; });
    this.current = {
      phase: 'running',
      mode: 'PreCopy',
      elapsedMs: 0,
      dataTotal: memoryBytes,
      dataProcessed: 0,
      dataRemaining: memoryBytes,
      memoryBandwidth: 0,
      dirtyRate: 0,
      iteration: 1,
      autoConvergeThrottle: 0,
      bandwidthLimit: controls.bandwidth,
      expectedDowntimeMs: Infinity,
    };
  }

  get phase() { return this.current.phase; }

  /** Moves the job along, as a hypervisor reports it. */
  advance(bytes: number): void {
    const c = this.current;
    this.current = { ...c, dataProcessed: c.dataProcessed + bytes, dataRemaining: Math.max(0, c.dataRemaining - bytes), iteration: c.iteration + 1 };
  }

  async stats(): Promise<JobStats> { return { ...this.current }; }
  async setBandwidth(bps: number): Promise<void> { this.applied.push(`bandwidth ${bps}`); this.current.bandwidthLimit = bps; }
  async setMaxDowntime(ms: number): Promise<void> { this.applied.push(`downtime ${ms}`); }
  async startPostCopy(): Promise<void> { this.applied.push('post-copy'); this.current.mode = 'PostCopy'; }

  async abort(reason: string): Promise<void> {
    if (this.current.phase !== 'running') throw new Error('no migration job is running');
    this.applied.push(`abort ${reason}`);
    // Like libvirt, cancellation lands a moment after the request is accepted.
    setTimeout(() => this.end({ status: 'aborted', reason, stats: { ...this.current, phase: 'aborted' } }), 20);
  }

  complete(downtimeMs: number): void {
    this.end({ status: 'completed', mode: this.current.mode, downtimeMs, stats: { ...this.current, phase: 'completed', dataRemaining: 0, downtimeMs } });
  }

  /** The driver lost sight of the job and cannot tell how it ended. */
  lose(reason: string): void {
    this.end({ status: 'unknown', reason, stats: { ...this.current } });
  }

  fail(reason: string): void {
    this.end({ status: 'failed', reason, stats: { ...this.current, phase: 'failed' } });
  }

  private end(o: MigrationOutcome): void {
    if (this.current.phase !== 'running') return;
    this.current = o.stats;
    this.settle(o);
  }
}
