/**
 * What a migration simulation asks a policy, and what it gets back. A policy is
 * the only thing that differs between ways of running migrations (Ferry's
 * limits core, KubeVirt's defaults): the cluster, the network and the pre-copy
 * model are the simulator's.
 */

/** A VM as the simulation sees it. Bytes, bytes/s. */
export interface SimVm {
  name: string;
  /** Where it runs when the simulation starts. */
  node: string;
  memory: number;
  dirtyRate: number;
  workingSet: number;
  zeroFraction: number;
}

export interface SimNode {
  name: string;
  nic: number;
  memory: number;
  /** Memory of the VMs that live here. */
  used: number;
  /** Memory held by target pods of migrations landing here. */
  reserved: number;
  /** Cordoned for evacuation: nothing may land here. */
  drained: boolean;
}

/** A VM waiting to leave a drained node. */
export interface QueuedVm {
  vm: SimVm;
  /** Where it runs now. */
  node: string;
  /** When it (re-)entered the queue: first come first served. */
  enqueuedAt: number;
}

export interface RunningVm {
  vm: SimVm;
  source: string;
  target: string;
}

export interface ClusterView {
  now: number;
  nodes: readonly SimNode[];
  /** Ready to start, in queue order. */
  queue: readonly QueuedVm[];
  running: readonly RunningVm[];
}

export interface PolicyDecision {
  start: Array<{ vm: string; target: string }>;
  /** Rate limit (bytes/s) per running or started VM; a VM left out is unlimited. */
  limits: Map<string, number>;
}

/** What the migrations themselves are allowed to do, as the handler would be told. */
export interface MigrationRules {
  progressTimeoutMs: number;
  completionTimeoutPerGiB: number;
  autoConverge: boolean;
  postCopy: boolean;
  maxDowntimeMs: number;
}

/** How a controller decides what runs. */
export interface Policy {
  readonly name: string;
  readonly limits: { cluster: number; outbound: number; inbound: number };
  readonly rules: MigrationRules;
  decide(view: ClusterView): PolicyDecision;
  /** Wall-clock ms per decision, when the policy measures it. */
  readonly latencies?: number[];
  /**
   * CPU ms per decision (the process's, so garbage collection counts), beside
   * wall-clock: on a shared machine a decision may wait for a core, which wall
   * time shows and CPU time does not.
   */
  readonly cpuTimes?: number[];
}
