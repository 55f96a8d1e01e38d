/**
 * What the console's server sends the browser: one snapshot of the cluster
 * as an operator looks at it during maintenance. Plain data (no classes, no
 * imports), shared by the server (src/console/) and the page (console/).
 */

export interface ConsoleVm {
  namespace: string;
  name: string;
  phase: string;
  memoryBytes: number;
  /** A migration of this VM is in flight. */
  migrating: boolean;
}

export interface ConsoleNode {
  name: string;
  ready: boolean;
  schedulable: boolean;
  /** Tainted for evacuation (ferry drain, a runbook). */
  draining: boolean;
  vms: ConsoleVm[];
}

export interface PhaseStamp {
  phase: string;
  at: string;
}

export interface ConsoleMigration {
  namespace: string;
  name: string;
  uid: string;
  vmi: string;
  phase: string;
  sourceNode?: string;
  targetNode?: string;
  created?: string;
  /** When it reached Succeeded or Failed. */
  finished?: string;
  /** Bytes of guest memory to copy, copied, left; copy rate in bytes/s. */
  dataTotal?: number;
  dataProcessed?: number;
  dataRemaining?: number;
  bytesPerSecond?: number;
  etaSeconds?: number;
  iteration?: number;
  mode?: string;
  failureReason?: string;
  /** Why it waits in the queue (the controller's admission reason), while Pending. */
  queueReason?: string;
  /** The node whose evacuation created it. */
  evacuationOf?: string;
  abortRequested: boolean;
  phases: PhaseStamp[];
}

export interface ConsoleDrain {
  node: string;
  /** When the drain taint was put on (or the console first saw it). */
  startedAt: string;
  vmsLeft: number;
  /** VMs seen on the node since the console saw the drain start. */
  vmsTotal: number;
  bytesLeft: number;
  /** Bytes/s leaving the node now. */
  bytesPerSecond: number;
  /** At the current rate, when the node will be empty. */
  predictedEnd?: string;
  /** When the console saw the node become empty. */
  finishedAt?: string;
}

export interface ConsoleRunbookNode {
  name: string;
  phase: string;
  batch?: number;
  vmsMoved?: number;
  vmsTotal?: number;
  predictedFinish?: string;
  finishedAt?: string;
  reason?: string;
}

export interface ConsoleRunbook {
  name: string;
  phase: string;
  paused: boolean;
  progress?: string;
  windowStart?: string;
  windowEnd?: string;
  /** The plan's predicted end, fixed when the runbook started. */
  predictedEnd?: string;
  /** The current estimate. */
  eta?: string;
  finishedAt?: string;
  nodes: ConsoleRunbookNode[];
}

export interface ConsoleSnapshot {
  at: string;
  /** The API server the console reads, and whose credentials it acts with. */
  server: string;
  nodes: ConsoleNode[];
  migrations: ConsoleMigration[];
  drains: ConsoleDrain[];
  runbooks: ConsoleRunbook[];
}

export type ConsoleAction =
  | { action: 'migrate'; namespace: string; vmi: string; node?: string }
  | { action: 'cancel'; namespace: string; name: string }
  | { action: 'drain'; node: string }
  | { action: 'uncordon'; node: string }
  | { action: 'pause' | 'resume'; runbook: string };

/** What an action answers: done, or the API server's refusal as it worded it. */
export type ActionResult = { ok: true; message: string } | { ok: false; status: number; message: string };
