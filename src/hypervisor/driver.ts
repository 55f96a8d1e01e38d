/**
 * The hypervisor driver: what a handler needs from the thing that actually runs
 * guests on its node. Two implementations: `sim` (pre-copy model) and `libvirt`.
 * All sizes in bytes, rates in bytes/s, times in ms unless named otherwise.
 */

/** What the driver needs to know about a guest; filled from the VMI by the controller. */
export interface GuestSpec {
  /** Domain name, KubeVirt style: `<namespace>_<vmi name>`. */
  name: string;
  memoryBytes: number;
  /** Sim only: steady-state dirty rate, hot working set and zero-page fraction of the guest. */
  dirtyRate?: number;
  workingSet?: number;
  zeroFraction?: number;
  /**
   * Per-VM launchers (KubeVirt's layout): the VMI's active pods (pod UID →
   * node), by which a handler finds the guest's launcher on its node, and
   * whether migration connections between handlers go without TLS
   * (KubeVirt's migrations.disableTLS). Ignored by node-wide drivers.
   */
  launcher?: LauncherRef;
}

export interface LauncherRef {
  activePods: Record<string, string>;
  disableTLS?: boolean;
}

/** What a target publishes for the source, as KubeVirt's targetNodeAddress / targetDirectMigrationNodePorts. */
export interface PublishedTarget {
  targetNodeAddress: string;
  targetDirectMigrationNodePorts: Record<string, number>;
}

export interface MigrationControls {
  /** Bytes/s; 0 = unlimited. */
  bandwidth: number;
  maxDowntimeMs: number;
  autoConverge: boolean;
  /** Enables the post-copy capability; the switch itself is startPostCopy(). */
  postCopy: boolean;
}

export type JobPhase = 'running' | 'completed' | 'failed' | 'aborted';
export type MigrationMode = 'PreCopy' | 'PostCopy';

/** Job statistics, with the same meaning as libvirt's virDomainGetJobStats fields. */
export interface JobStats {
  phase: JobPhase;
  mode: MigrationMode;
  elapsedMs: number;
  dataTotal: number;
  dataProcessed: number;
  dataRemaining: number;
  /** Current transfer rate. */
  memoryBandwidth: number;
  dirtyRate: number;
  iteration: number;
  /** Auto-converge CPU throttle in percent (0 when not throttled). */
  autoConvergeThrottle: number;
  /** Bandwidth limit currently applied (0 = unlimited). */
  bandwidthLimit: number;
  expectedDowntimeMs?: number;
  /** Actual stop-and-copy downtime, once completed. */
  downtimeMs?: number;
}

export type MigrationOutcome =
  | { status: 'completed'; mode: MigrationMode; downtimeMs: number; stats: JobStats }
  | { status: 'failed'; reason: string; stats: JobStats }
  | { status: 'aborted'; reason: string; stats: JobStats }
  /** The driver lost sight of the job and could not find out how it ended: the guest may be on either node. */
  | { status: 'unknown'; reason: string; stats: JobStats };

export interface MigrationJob {
  readonly migrationId: string;
  stats(): Promise<JobStats>;
  setBandwidth(bytesPerSecond: number): Promise<void>;
  setMaxDowntime(ms: number): Promise<void>;
  startPostCopy(): Promise<void>;
  /** Cancels the job; the guest keeps running on the source. Resolves when the request is accepted. */
  abort(reason: string): Promise<void>;
  /** Settles once, with how the job ended; never rejects. */
  readonly done: Promise<MigrationOutcome>;
}

export type DomainState = 'running' | 'paused' | 'incoming' | 'shutoff';

export interface DomainInfo {
  name: string;
  state: DomainState;
  memoryBytes: number;
}

export interface HypervisorDriver {
  readonly kind: 'sim' | 'libvirt';
  listDomains(): Promise<DomainInfo[]>;
  /** Source side: make sure the launcher's guest exists and runs here (sim: boot it). */
  ensureRunning(guest: GuestSpec): Promise<void>;
  /** Target side: get ready to receive `guest`; returns the address the source migrates to. */
  prepareIncoming(guest: GuestSpec, migrationId: string): Promise<{ address: string; published?: PublishedTarget }>;
  /** Target side, after the source reported completion: the guest must now run here. */
  finishIncoming(name: string, migrationId: string): Promise<DomainState | 'missing'>;
  /** Target side, after failure or abort: drop whatever was prepared. Idempotent. */
  cancelIncoming(name: string, migrationId: string): Promise<void>;
  /** Source side: start migrating `name` to `target`. */
  migrate(name: string, target: { node: string; address: string }, controls: MigrationControls, migrationId: string): Promise<MigrationJob>;
  /** Source side, after success: the guest left; forget it. Idempotent. */
  forget(name: string): Promise<void>;
  close(): Promise<void>;
}
