/**
 * The limits core's vocabulary: what the controller (or a benchmark) hands to
 * `decide` and what it gets back. All sizes are bytes, rates bytes/s, times ms.
 */

/** Evacuations go first, then user requests, then background work; FIFO within a class. */
export type Priority = 'evacuation' | 'user' | 'background';

export interface LimitsConfig {
  /** KubeVirt `parallelMigrationsPerCluster`, default 5. */
  parallelMigrationsPerCluster: number;
  /** KubeVirt `parallelOutboundMigrationsPerNode`, default 2. */
  parallelOutboundMigrationsPerNode: number;
  /** Ferry's own limit on migrations landing on one node, default 2. */
  parallelInboundMigrationsPerNode: number;
  /** Bytes/s the cluster may spend on migrations; 0 = no budget beyond the NICs. */
  bandwidthBudget: number;
  /** Bytes/s of a node's NIC unless the node overrides it. */
  defaultNicCapacity: number;
  /** KubeVirt `bandwidthPerMigration`: a cap on every migration; 0 = unlimited. */
  bandwidthPerMigration: number;
  /**
   * Set when some parallel limit is not pinned (see ./adaptive.ts): admission
   * then reserves each migration's efficient share instead of its bare
   * convergence need, and the unpinned limits above hold adaptive values.
   */
  adaptive?: AdaptiveSettings;
}

export interface AdaptiveSettings {
  /** s/GiB (0 = off): a migration starts only with a share that finishes well inside it. */
  completionTimeoutPerGiB: number;
  /** Which count limits someone set (hard caps); the others are adaptive. */
  pinned: { cluster: boolean; outbound: boolean; inbound: boolean };
}

export interface NodeState {
  name: string;
  /** Overrides `defaultNicCapacity` for this node. */
  nicCapacity?: number;
  /** False when cordoned or draining: nothing may land here. */
  schedulable: boolean;
  /** Memory still free for a target launcher; unknown = don't check. */
  freeMemory?: number;
}

/** What the core needs to know about a migration to share bandwidth with it. */
export interface BandwidthDemand {
  id: string;
  sourceNode: string;
  /** Unknown until the target pod is scheduled; then it only loads its source NIC. */
  targetNode?: string;
  memoryBytes: number;
  dirtyRate: number;
  workingSet?: number;
  /** Policy cap (MigrationPolicy bandwidthPerMigration); 0/undefined = none. */
  bandwidthCap?: number;
  maxDowntimeMs?: number;
  /** A migration allowed to throttle its guest or switch to post-copy can live with less than it needs. */
  allowAutoConverge?: boolean;
  allowPostCopy?: boolean;
}

export interface RunningMigration extends BandwidthDemand {
  priority: Priority;
  dataRemaining?: number;
  /**
   * Its source has said its job is over: it sends nothing more, but it keeps
   * its place in the count limits until its outcome is recorded. It gets no
   * bandwidth, so the next migration can start while this one is finalised.
   */
  sourceDone?: boolean;
}

export interface QueuedMigration extends BandwidthDemand {
  /** Pinned by the VMIM (addedNodeSelector / an explicit target); otherwise placement picks one. */
  targetNode?: string;
  priority: Priority;
  enqueuedAt: number;
}

export interface Decision {
  /** In start order; `targetNode` is set when placement chose the node. */
  start: Array<{ id: string; targetNode?: string }>;
  /** Bytes/s for every running and every newly started migration. */
  bandwidth: Record<string, number>;
  /** Queued id → why it did not start, in a sentence a user can act on. */
  waiting: Record<string, string>;
}

export interface DecideInput {
  config: LimitsConfig;
  nodes: NodeState[];
  running: RunningMigration[];
  queued: QueuedMigration[];
  now: number;
}
