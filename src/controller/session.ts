import type { V1Pod } from '@kubernetes/client-node';
import type { MigrationConfiguration } from '../api/migrationConfig.js';
import { Labels, type MigrationState, type VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, type MigrationPhase, type VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { Pod } from '../api/core.js';
import type { MigrationTrace } from '../tracing/migration.js';
import type { Command } from '../bus/subjects.js';
import type { CommandReply, CommandRequest } from '../bus/protocol.js';
import type { FerryConfig } from '../config/ferryConfig.js';
import type { Priority } from '../limits/types.js';
import { isConflict, isNotFound, statusCode, VMI_RESOURCE, VMIM_RESOURCE, type JsonPatchOp, type KubeClient } from '../kube/client.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { AbortAnswer, Inspection, MigrationActorInput } from '../../statecharts/migration.js';
import type { EventRecorder } from './eventRecorder.js';
import { domainName, guestMemoryBytes, guestSpecFor } from './guest.js';
import { NodeSide, NotSentError } from './nodeSide.js';
import { buildTargetPod, targetPodName } from './targetPod.js';
import { launcherRef } from './launcherRef.js';
import { sourcePodToRemove } from './sourcePod.js';
import { formatProxyAddress } from '../launcher/proxyAddress.js';

/**
 * Telling why a migration waits (its `Queued` condition, src/controller/statusWriter.ts):
 * the first reason at once (it rides on the Pending write), then a new kind of reason no
 * sooner than this after the last… (a drain of 2,000 VMs re-words a queued migration's
 * reason every few seconds; told each time, it was one API write in five)
 */
const QUEUED_TELL_MIN_MS = 15_000;
/** …and the same kind with new figures no sooner than this. */
const QUEUED_TELL_REFRESH_MS = 60_000;

/** What a session needs from the controller that owns it (caches and shared clients). */
export interface SessionEnv {
  kube: KubeClient;
  nodes: NodeSide;
  log: Logger;
  events: EventRecorder;
  config: FerryConfig;
  clock: Clock;
  vmi: (namespace: string, name: string) => VirtualMachineInstance | undefined;
  podsOfVmi: (namespace: string, vmiUid: string) => Pod[];
  /** The launcher pods of the VM whose pod carries this migration's label, found without the VMI. */
  podsOfMigration?: (namespace: string, migrationUid: string) => Pod[];
  /** Resolves when this replica may write (still the leader); throws when it may not. */
  fence: () => Promise<void>;
  /**
   * Where the in-flight migrationState lives. 'vmi' (standalone, default): on
   * the VMI, as KubeVirt's controller writes it. 'vmim' (beside KubeVirt): on
   * the VMIM Ferry owns, because KubeVirt's virt-handler acts on the VMI's
   * markers (migrationState.sourceNode/targetNode, the migrationTargetNodeName
   * label); the VMI then gets only the final state a completed migration leaves.
   */
  markersOn?: 'vmi' | 'vmim';
  /**
   * Bandwidth this migration may use now without any node's NIC or the cluster
   * budget carrying more than its capacity, counting what other migrations may
   * still be sending (an unacknowledged reduction is not yet in effect).
   */
  headroom?: (s: MigrationSession, sourceNode: string, targetNode: string) => number;
}

/** The facts of a migration its I/O needs: the chart's context (see statecharts/migration.ts). */
export type Facts = Pick<MigrationActorInput, 'sourceNode' | 'targetNode' | 'targetPod' | 'targetAddress' | 'mode' | 'sourceLost' | 'targetLost' | 'abortReason'>;

/**
 * Everything one migration does to the outside world: the Kubernetes writes and
 * the handler commands its statechart's named actors stand for. The facts come
 * from the chart's context (passed in), not from fields here; what this class
 * keeps is the admission's bookkeeping (slot, bandwidth, placement), which
 * lives outside the chart because the limits core decides it for all at once.
 * Each step is idempotent and checks its own postcondition, because a
 * restarted controller replays the phase it resumes in.
 */
export class MigrationSession {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly vmiName: string;
  readonly attempt = 1;
  readonly priority: Priority;
  readonly enqueuedAt: number;
  /** The VMIM's spec.addedNodeSelector (ferry migrate --node sets kubernetes.io/hostname). */
  readonly addedNodeSelector: Readonly<Record<string, string>> | undefined;
  log: Logger;
  private readonly baseLog: Logger;
  phase: MigrationPhase = 'Pending';
  /** Where the VMI ran when the migration was admitted (admission counts outbound slots by it). */
  sourceNode: string | undefined;
  /** The target the chart learned (mirrored for admission's inbound counts). */
  targetNode: string | undefined;
  /** The placement the limits core chose, if any (pins the target pod). */
  pinnedTarget: string | undefined;
  /** Bandwidth the limits core allotted (bytes/s) and what the source was last told. */
  allottedBandwidth = 0;
  appliedBandwidth: number | undefined;
  /** A bandwidth change sent but not acknowledged: until it is, the higher of the two may be in effect. */
  bandwidthInFlight: number | undefined;

  /** The most this migration may be sending now, as far as the controller can know. */
  mayBeSending(): number {
    if (!this.sourceStarted || this.sourceEnded || FINAL_PHASES.has(this.phase)) return 0;
    return Math.max(this.appliedBandwidth ?? 0, this.bandwidthInFlight ?? 0);
  }
  sourceStarted = false;
  /** No steering command (set-bandwidth) before this time: the source said it has no such job running. */
  steerPausedUntil = 0;
  /** This controller wrote the start time (with the target's address) to the migration state. */
  private startRecorded = false;
  /** The source reported its job over (progress or result): it sends nothing more, and has no job to steer. */
  sourceEnded = false;
  lastDirtyRate = 0;
  lastRemaining: number | undefined;
  memoryBytes: number;
  waitingReason: string | undefined;
  /** Cluster configuration with the matching MigrationPolicy applied, fixed when the migration is first seen. */
  effective: MigrationConfiguration;
  policyName: string | undefined;
  appliedDowntimeMs: number;
  /** Restored from the VMI's migrationState on restart (the chart's input). */
  readonly restored: { sourceNode?: string; sourcePod?: string; targetNode?: string; targetPod?: string; targetAddress?: string };
  /** This migration's trace (src/tracing): commands are sent inside its current phase's span. */
  trace: MigrationTrace | undefined;

  constructor(
    private readonly env: SessionEnv,
    vmim: VirtualMachineInstanceMigration,
    vmi: VirtualMachineInstance | undefined,
    policy: { name?: string | undefined; effective: MigrationConfiguration },
  ) {
    this.effective = policy.effective;
    this.policyName = policy.name;
    this.appliedDowntimeMs = env.config.maxDowntimeMs;
    this.uid = vmim.metadata.uid ?? '';
    this.namespace = vmim.metadata.namespace ?? 'default';
    this.name = vmim.metadata.name;
    this.vmiName = vmim.spec.vmiName;
    this.addedNodeSelector = vmim.spec.addedNodeSelector;
    const ann = vmim.metadata.annotations ?? {};
    this.priority = ann['kubevirt.io/evacuationMigration'] !== undefined ? 'evacuation' : ann['ferry.dev/priority'] === 'background' ? 'background' : 'user';
    this.enqueuedAt = Date.parse(vmim.metadata.creationTimestamp ?? '') || env.clock.now();
    // `name` is the logger's own key: the migration goes under `vmim`.
    this.baseLog = env.log.child({ namespace: this.namespace, vmim: this.name, uid: this.uid, vmi: this.vmiKey });
    this.log = this.baseLog.child({ phase: this.phase });
    this.memoryBytes = vmi ? guestMemoryBytes(vmi) : 1024 ** 3;
    const ms = this.markersOnVmim ? vmim.status?.migrationState ?? undefined : vmi?.status?.migrationState;
    if (this.markersOnVmim && ms?.migrationUid === this.uid) this.vmimMarkers = { ...ms };
    this.restored = {};
    if (ms && ms.migrationUid === this.uid) {
      for (const k of ['sourceNode', 'sourcePod', 'targetNode', 'targetPod'] as const) if (ms[k]) this.restored[k] = ms[k];
      // Proxied migrations publish the handler's address and ports, KubeVirt's way.
      if (ms.targetNodeAddress) {
        this.restored.targetAddress = ms.targetDirectMigrationNodePorts
          ? formatProxyAddress({ targetNodeAddress: ms.targetNodeAddress, targetDirectMigrationNodePorts: ms.targetDirectMigrationNodePorts })
          : ms.targetNodeAddress;
      }
      this.sourceNode = ms.sourceNode;
      this.targetNode = ms.targetNode;
      // The start time is recorded with the target's address, just before the source is asked:
      // a restart in between counts the source as possibly sending, which only over-counts bandwidth.
      this.sourceStarted = ms.startTimestamp !== undefined;
    } else {
      this.sourceNode = vmi?.status?.nodeName;
    }
  }

  /** This migration's logger without the phase (for lines that name a phase themselves). */
  get logBase(): Logger {
    return this.baseLog;
  }

  /** Beside KubeVirt: this migration's state as written to its VMIM so far. */
  private vmimMarkers: MigrationState = {};

  private get markersOnVmim(): boolean {
    return this.env.markersOn === 'vmim';
  }

  /** This migration's recorded state, wherever it is kept; undefined before the hand-off. */
  private markers(vmi: VirtualMachineInstance | undefined): MigrationState | undefined {
    const ms = this.markersOnVmim ? this.vmimMarkers : vmi?.status?.migrationState ?? undefined;
    return ms?.migrationUid === this.uid ? ms : undefined;
  }

  /** Merges into the VMIM's migrationState (beside KubeVirt, where the in-flight state lives). */
  private async patchVmimMarkers(fields: MigrationState): Promise<void> {
    const clean = stripUndefined(fields);
    await this.env.kube.patchCustomStatus(VMIM_RESOURCE, this.namespace, this.name, { status: { migrationState: clean } });
    this.vmimMarkers = { ...this.vmimMarkers, ...clean };
  }

  /** Every log line about this migration carries its current phase. */
  setPhase(phase: MigrationPhase): void {
    this.phase = phase;
    this.log = this.baseLog.child({ phase });
  }

  get vmiKey(): string {
    return `${this.namespace}/${this.vmiName}`;
  }

  get ref() {
    return { migrationUid: this.uid, attempt: this.attempt, vmi: this.vmiKey };
  }

  /** The target's domain name for this VMI (what list-jobs reports). */
  get domain(): string {
    return `${this.namespace}_${this.vmiName}`;
  }

  /** The guest as handlers need it, with the VMI's launcher pods (per-VM launchers are found by pod UID). */
  private guestOf(vmi: VirtualMachineInstance) {
    const pods = vmi.metadata.uid ? this.env.podsOfVmi(this.namespace, vmi.metadata.uid) : [];
    return { ...guestSpecFor(vmi), launcher: launcherRef(vmi, pods, this.effective.disableTLS) };
  }

  private currentVmi(): VirtualMachineInstance {
    const vmi = this.env.vmi(this.namespace, this.vmiName);
    if (!vmi) throw new NotSentError(`VMI ${this.vmiKey} not found`);
    return vmi;
  }

  private command<C extends Command>(node: string, command: C, payload: CommandRequest<C>): Promise<CommandReply<C>> {
    const send = () => this.env.nodes.command(node, command, payload);
    return this.trace ? this.trace.run(send) : send();
  }

  involved() {
    return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', namespace: this.namespace, name: this.name, uid: this.uid };
  }

  /**
   * Admission keeps this migration queued for `why`. True when that should be
   * told now (the caller writes it to the VMIM's `Queued` condition): the first
   * reason at once, then a new kind of reason after QUEUED_TELL_MIN_MS and the
   * same kind with changed figures after QUEUED_TELL_REFRESH_MS. A busy drain
   * re-words most reasons on every start and end; a write each time would be
   * most of the controller's writes.
   */
  waiting(why: string, kind: string): boolean {
    this.waitingReason = why;
    const told = this.queuedTold;
    if (told?.why === why) return false;
    const now = this.env.clock.now();
    if (told && now - told.at < (told.kind === kind ? QUEUED_TELL_REFRESH_MS : QUEUED_TELL_MIN_MS)) return false;
    this.queuedTold = { why, kind, at: now };
    return true;
  }

  /** The last reason told. */
  private queuedTold: { why: string; kind: string; at: number } | undefined;

  event(type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.env.events.record(this.involved(), type, reason, message);
  }

  /** The source launcher pod: the VMI's pod on the node the VMI runs on. */
  sourceLauncherPod(sourceNode?: string): Pod | undefined {
    const vmi = this.env.vmi(this.namespace, this.vmiName);
    if (!vmi?.metadata.uid) return undefined;
    const node = sourceNode ?? vmi.status?.nodeName;
    return this.env
      .podsOfVmi(this.namespace, vmi.metadata.uid)
      .find((p) => p.spec?.nodeName === node && p.metadata.labels?.[Labels.migrationJobUID] !== this.uid && !p.metadata.deletionTimestamp);
  }

  targetLauncherPods(): Pod[] {
    const vmi = this.env.vmi(this.namespace, this.vmiName);
    if (!vmi?.metadata.uid) return [];
    return this.env.podsOfVmi(this.namespace, vmi.metadata.uid).filter((p) => p.metadata.labels?.[Labels.migrationJobUID] === this.uid);
  }

  /** The node the target pod must land on: the user's hostname wins over the placement's choice. */
  targetConstraint(): string | undefined {
    const user = this.addedNodeSelector?.['kubernetes.io/hostname'];
    if (user) return user;
    // Any other user selector is the scheduler's to honour; a placement pin could contradict it.
    if (this.addedNodeSelector && Object.keys(this.addedNodeSelector).length > 0) return undefined;
    return this.pinnedTarget;
  }

  // ---- the chart's actors ----

  /** Creates the target pod under a name fixed by the migration: a retried create finds its own pod. */
  async createTargetPod(): Promise<void> {
    if (this.targetLauncherPods().length > 0) return;
    const vmi = this.currentVmi();
    const source = this.sourceLauncherPod();
    const pod = buildTargetPod({
      vmim: { metadata: { name: this.name, namespace: this.namespace, uid: this.uid }, spec: { vmiName: this.vmiName, ...(this.addedNodeSelector ? { addedNodeSelector: { ...this.addedNodeSelector } } : {}) } },
      vmi,
      sourcePod: source,
      targetNode: this.targetConstraint(),
      name: targetPodName(this.vmiName, this.uid, this.attempt),
    });
    let created: V1Pod;
    try {
      created = await this.env.kube.createPod(this.namespace, pod);
    } catch (err) {
      if (statusCode(err) === 409) return; // ours, from an earlier try whose answer was lost
      throw err;
    }
    // No Event of its own: the `Migrating` one names the pod, and a pod that cannot start has the scheduler's.
    this.log.info({ targetPod: created.metadata?.name, on: this.targetConstraint() }, 'created target pod');
  }

  /**
   * Hand-off: the VMI's migrationState names both sides, as KubeVirt's controller
   * writes it. A new migration replaces the whole state (nothing of an earlier
   * migration survives); the write is guarded by the resourceVersion it read.
   */
  async handOff(facts: Facts): Promise<void> {
    const vmi = this.currentVmi();
    const existing = vmi.status?.migrationState;
    if (existing?.migrationUid && existing.migrationUid !== this.uid && !existing.completed && !existing.failed) {
      throw new Error(`VMI ${this.vmiKey} is already being migrated by ${existing.migrationUid}`);
    }
    const sourceNode = facts.sourceNode ?? vmi.status?.nodeName;
    if (existing?.migrationUid !== this.uid && facts.sourceNode && vmi.status?.nodeName !== facts.sourceNode) {
      // Admitted from a cache that still showed the VM where an earlier migration had just moved it from
      // (chaos seed 13, delayed watch events). The hand-off write is guarded by this copy's
      // resourceVersion, so a stale copy cannot pass here: this copy is current, and the VM is elsewhere.
      // Going on would ask a node that no longer runs the guest to send it, and take the target's
      // empty arrival for the guest. Nothing was started anywhere: fail, and a retry starts from where it is.
      throw Object.assign(new Error(`VMI ${this.vmiKey} runs on ${vmi.status?.nodeName ?? 'no node'}, not on ${facts.sourceNode}, where this migration was admitted from (it moved since)`), { definite: true });
    }
    const state: MigrationState = {
      migrationUid: this.uid,
      sourceNode,
      sourcePod: this.sourceLauncherPod(sourceNode)?.metadata.name,
      targetNode: facts.targetNode,
      targetPod: facts.targetPod,
      mode: 'PreCopy',
      migrationConfiguration: { ...this.effective },
      ...(this.policyName ? { migrationPolicyName: this.policyName } : {}),
    };
    await this.env.fence();
    if (this.markersOnVmim) {
      // No marker on the VMI: virt-handler would take part (deploy/README.md, beside KubeVirt).
      await this.patchVmimMarkers({ ...state, ...stripUndefined(this.markers(vmi) ?? {}) });
      return;
    }
    if (existing?.migrationUid === this.uid) {
      // A replay: keep what this migration already recorded (its start time, its address).
      await this.patchMigrationState({ ...state, ...stripUndefined(existing) });
    } else {
      await this.patchVmiStatusJson([
        { op: 'test', path: '/metadata/resourceVersion', value: vmi.metadata.resourceVersion },
        { op: 'add', path: '/status/migrationState', value: stripUndefined(state) },
      ]);
    }
    await this.env.kube.patchCustom(VMI_RESOURCE, this.namespace, this.vmiName, {
      metadata: { labels: { [Labels.migrationTargetNodeName]: facts.targetNode ?? null } },
    });
  }

  async prepareTarget(facts: Facts): Promise<{ address: string }> {
    if (!facts.targetNode) throw new NotSentError('no target node known');
    const vmi = this.currentVmi();
    const reply = await this.command(facts.targetNode, 'prepare-target', {
      ...this.ref,
      guest: this.guestOf(vmi),
      sourceNode: facts.sourceNode ?? vmi.status?.nodeName ?? '',
    });
    await this.env.fence();
    // One write: the address a restarted controller starts the source with, and the start time
    // (the source is asked next, so the intent is recorded before any request can go out).
    // Written at once, before TargetReady: a restart resumes from TargetReady with this address.
    const existing = this.markers(vmi);
    await this.patchMigrationState({
      ...(reply.published ?? { targetNodeAddress: reply.address }),
      targetNodeDomainDetected: false,
      ...(existing?.startTimestamp || this.startRecorded ? {} : { startTimestamp: new Date(this.env.clock.now()).toISOString(), mode: 'PreCopy' as const }),
    });
    // The informer's copy may not show it yet when startSource looks.
    this.startRecorded = true;
    return { address: reply.address };
  }

  /**
   * The start time is normally recorded with the target's address (prepareTarget);
   * it is written here only when missing (a migration recorded by an older
   * controller). The request is the last step, so any error after it is the
   * command's own and says whether it may have taken effect.
   */
  async startSource(facts: Facts): Promise<void> {
    const { sourceNode, targetNode, targetAddress } = facts;
    if (!sourceNode || !targetNode || !targetAddress) {
      throw new NotSentError(`cannot start: source ${sourceNode ?? '?'}, target ${targetNode ?? '?'}, address ${targetAddress ?? '?'}`);
    }
    const vmi = this.currentVmi();
    const cfg = this.effective;
    const bandwidth = await this.startingBandwidth(sourceNode, targetNode);
    const existing = this.markers(vmi);
    if (!this.startRecorded && !existing?.startTimestamp) {
      await this.env.fence();
      try {
        await this.patchMigrationState({ startTimestamp: new Date(this.env.clock.now()).toISOString(), mode: 'PreCopy' });
      } catch (err) {
        throw Object.assign(err instanceof Error ? err : new Error(String(err)), { definite: true });
      }
    }
    this.sourceStarted = true;
    // Until the source answers, this is what it may be sending (not the allotment, which later passes change).
    this.bandwidthInFlight = bandwidth;
    let reply: CommandReply<'start-source'>;
    try {
      reply = await this.command(sourceNode, 'start-source', {
      ...this.ref,
      guest: this.guestOf(vmi),
      targetNode,
      targetAddress,
      controls: { bandwidth, maxDowntimeMs: this.appliedDowntimeMs, autoConverge: cfg.allowAutoConverge, postCopy: cfg.allowPostCopy },
      });
    } catch (err) {
      this.appliedBandwidth = Math.max(this.appliedBandwidth ?? 0, bandwidth);
      throw err;
    } finally {
      this.bandwidthInFlight = undefined;
    }
    this.appliedBandwidth = bandwidth;
    if (reply.state !== 'started' && reply.state !== 'running') {
      // A job this source already ended (a replayed start): its result may be gone; find out where the guest is.
      throw new Error(`source ${sourceNode} reports migration ${this.uid} as ${reply.state}, not running`);
    }
    this.log.info({ reply: reply.state, bandwidth }, 'source migration started');
    this.event('Normal', 'Migrating', `Migrating ${this.vmiKey} from ${sourceNode} to ${targetNode}${facts.targetPod ? ` (target pod ${this.namespace}/${facts.targetPod})` : ''}`);
  }

  /** Asks the source to cancel its job; the answer (not the silence) decides what the chart does next. */
  async requestAbort(facts: Facts): Promise<AbortAnswer> {
    const reason = facts.abortReason ?? 'aborted';
    if (this.handedOff()) {
      await this.patchMigrationState({ abortRequested: true, abortStatus: 'Aborting' }).catch((err: unknown) =>
        this.log.warn({ err: String(err) }, 'could not mark the abort on the VMI'),
      );
    }
    if (!facts.sourceNode) return { state: 'not-found' };
    const reply = await this.command(facts.sourceNode, 'abort', { ...this.ref, reason });
    this.log.info({ state: reply.state, reason }, 'abort requested at source');
    return { state: reply.state };
  }

  /** The switch is believed only when the source confirms it; the VMI's mode follows, best effort. */
  async startPostCopy(facts: Facts): Promise<void> {
    if (!facts.sourceNode) throw new NotSentError('no source node known');
    await this.command(facts.sourceNode, 'post-copy', this.ref);
    this.event('Normal', 'PostCopy', `Switched ${this.vmiKey} to post-copy`);
    await this.patchMigrationState({ mode: 'PostCopy' }).catch((err: unknown) =>
      this.log.warn({ err: String(err) }, 'could not record post-copy mode on the VMI'),
    );
  }

  /**
   * The bandwidth to start with: the allotment, but no more than is free now on
   * both NICs and in the budget. Reductions of other migrations that made room
   * for this one may not have landed yet; starting at the full allotment then
   * would put a NIC over its capacity for a moment. Admission raises it to the
   * allotment once they have. Waits (bounded) while nothing is free.
   */
  private async startingBandwidth(sourceNode: string, targetNode: string): Promise<number> {
    const want = this.allottedBandwidth;
    if (!this.env.headroom || want <= 0) return want;
    const began = this.env.clock.now();
    const deadline = began + 10_000;
    for (;;) {
      const free = Math.floor(this.env.headroom(this, sourceNode, targetNode));
      // Below 1 MiB/s a start is pointless; 0 would mean "unlimited" to libvirt.
      if (free >= Math.min(want, 1024 * 1024)) {
        const waitedMs = this.env.clock.now() - began;
        if (waitedMs > 0) this.log.info({ waitedMs, want, free }, 'waited for bandwidth to start with');
        return Math.min(want, free);
      }
      if (this.env.clock.now() >= deadline) {
        throw new NotSentError(`no bandwidth free on ${sourceNode} → ${targetNode} after 10 s (other migrations' reductions not acknowledged)`);
      }
      await new Promise<void>((r) => this.env.clock.setTimeout(r, 200));
    }
  }

  async setBandwidth(bytesPerSecond: number): Promise<void> {
    if (!this.sourceNode || !this.sourceStarted || this.sourceEnded) return;
    this.bandwidthInFlight = bytesPerSecond;
    try {
      await this.command(this.sourceNode, 'set-bandwidth', { ...this.ref, bytesPerSecond });
      this.appliedBandwidth = bytesPerSecond;
    } catch (err) {
      // It may have landed: count the higher of the two as possibly in effect.
      this.appliedBandwidth = Math.max(this.appliedBandwidth ?? 0, bytesPerSecond);
      throw err;
    } finally {
      this.bandwidthInFlight = undefined;
    }
  }

  async setDowntime(maxDowntimeMs: number): Promise<void> {
    if (!this.sourceNode || !this.sourceStarted) return;
    await this.command(this.sourceNode, 'set-downtime', { ...this.ref, maxDowntimeMs });
    this.appliedDowntimeMs = maxDowntimeMs;
    this.log.info({ maxDowntimeMs }, 'raised max downtime (downtime stepping)');
  }

  /** Where does the guest run? Both handlers are asked; see arbiter.ts for the rule. */
  async inspect(facts: Facts): Promise<Inspection> {
    const r = await this.env.nodes.inspect({
      migrationUid: this.uid,
      domain: this.domain,
      sourceNode: facts.sourceNode ?? this.sourceNode,
      targetNode: facts.targetNode,
      sourceLost: facts.sourceLost,
    });
    // Only positive knowledge: a cancelled arrival (how a prepared target's domain shows varies by driver).
    const targetGone = r.target.answered && r.target.job?.state === 'cancelled';
    this.log.info({ verdict: r.kind, why: r.why, targetGone }, 'asked both handlers where the guest runs');
    return { kind: r.kind, why: r.why, sourceJob: r.sourceJob, targetGone };
  }

  /**
   * The guest runs on the target: tell the target handler to take it over, move
   * the VMI to the target node, then remove the source launcher pod. In that
   * order, so that no moment shows the VM without a launcher pod. Each step
   * checks its own postcondition, so a retry after partial progress finishes
   * the steps still missing instead of skipping them.
   */
  async finalizeSuccess(facts: Facts, mode: 'PreCopy' | 'PostCopy'): Promise<void> {
    const { targetNode } = facts;
    if (!targetNode || !facts.targetPod) throw new Error('target unknown at completion');
    let vmi = this.currentVmi();
    // A lost target cannot be asked: the source's completion says the guest went there, and
    // with the node. The VMI must still name it, so that whoever recovers the node's VMs sees it.
    if (facts.targetLost) this.log.error({ targetNode }, 'migration completed onto a node that is now lost; recording where the guest went');
    else await this.command(targetNode, 'finish-target', { ...this.ref, domain: domainName(vmi) });
    await this.env.fence();
    const targetPod = this.targetLauncherPods().find((p) => p.metadata.name === facts.targetPod);
    const ms = vmi.status?.migrationState;
    const now = new Date(this.env.clock.now()).toISOString();
    if (this.markersOnVmim && (vmi.status?.nodeName !== targetNode || ms?.migrationUid !== this.uid || !ms.completed)) {
      // The VMI's first sight of this migration is its end, whole, as a completed KubeVirt migration leaves it.
      const final: MigrationState = {
        ...this.vmimMarkers,
        migrationUid: this.uid,
        completed: true,
        failed: false,
        mode,
        endTimestamp: this.vmimMarkers.endTimestamp ?? now,
        targetNodeDomainDetected: true,
        targetNodeDomainReadyTimestamp: this.vmimMarkers.targetNodeDomainReadyTimestamp ?? now,
        ...(this.vmimMarkers.abortStatus === 'Aborting' ? { abortStatus: 'Failed' as const } : {}),
      };
      await this.patchVmiStatusJson([
        { op: 'add', path: '/status/migrationState', value: stripUndefined(final) },
        { op: 'add', path: '/status/nodeName', value: targetNode },
      ]);
      await this.patchVmimMarkers(final);
      vmi = this.currentVmi();
    }
    // Standalone, the VMI's whole move is one status write: node, closed migration state, the
    // target pod as the active one, the guest's address on it, and the evacuation mark lifted.
    const ops: JsonPatchOp[] = [];
    if (!this.markersOnVmim && (vmi.status?.nodeName !== targetNode || ms?.migrationUid !== this.uid || !ms.completed)) {
      const closed: MigrationState = {
        migrationUid: this.uid,
        completed: true,
        failed: false,
        mode,
        endTimestamp: ms?.endTimestamp ?? now,
        targetNodeDomainDetected: true,
        targetNodeDomainReadyTimestamp: ms?.targetNodeDomainReadyTimestamp ?? now,
        // A completed migration is not being aborted, whatever was asked.
        ...(ms?.abortStatus === 'Aborting' ? { abortStatus: 'Failed' as const } : {}),
      };
      ops.push({ op: 'add', path: '/status/nodeName', value: targetNode });
      if (ms?.migrationUid === this.uid) for (const [k, v] of Object.entries(closed)) ops.push({ op: 'add', path: `/status/migrationState/${k}`, value: v });
      else ops.push({ op: 'add', path: '/status/migrationState', value: stripUndefined(closed) });
      if (facts.sourceNode && vmi.status?.evacuationNodeName === facts.sourceNode) ops.push({ op: 'remove', path: '/status/evacuationNodeName' });
    }
    // activePods is a map: only a replacement drops the source's entry.
    const wantPods = targetPod?.metadata.uid ? { [targetPod.metadata.uid]: targetNode } : undefined;
    if (wantPods && JSON.stringify(vmi.status?.activePods ?? {}) !== JSON.stringify(wantPods)) ops.push({ op: 'add', path: '/status/activePods', value: wantPods });
    // The guest keeps its MAC but now answers on the target pod's network.
    const podIP = targetPod?.status?.podIP;
    const ifaces = (vmi.status as { interfaces?: Array<Record<string, unknown>> } | undefined)?.interfaces;
    if (podIP && ifaces && ifaces.length > 0 && ifaces[0]?.['ipAddress'] !== podIP) {
      ops.push({ op: 'add', path: '/status/interfaces', value: ifaces.map((i, n) => (n === 0 ? { ...i, ipAddress: podIP, ipAddresses: [podIP] } : i)) });
    }
    if (ops.length > 0) {
      await this.patchVmiStatusJson(ops, 'moved to its target');
      vmi = this.currentVmi();
    }
    const labels = vmi.metadata.labels ?? {};
    if (labels[Labels.nodeName] !== targetNode || labels[Labels.migrationTargetNodeName] !== undefined) {
      await this.env.kube.patchCustom(VMI_RESOURCE, this.namespace, this.vmiName, {
        metadata: { labels: { [Labels.nodeName]: targetNode, [Labels.migrationTargetNodeName]: null } },
      });
    }
    const source = sourcePodToRemove({
      uid: this.uid,
      markersMode: this.markersOnVmim,
      fromVmim: this.vmimMarkers.sourcePod,
      vmiState: ms,
      onSourceNode: () => this.sourceLauncherPod(facts.sourceNode)?.metadata.name,
      targetPod: facts.targetPod,
    });
    if (source) await this.env.kube.deletePod(this.namespace, source);
    this.log.info({ from: facts.sourceNode, to: targetNode, mode }, 'migration succeeded; VMI moved');
  }

  /**
   * Lets the handlers drop their record (tombstone) of this migration: the
   * VMIM is final and its outcome written, so nobody will ask them again.
   */
  async forgetJob(facts: Facts): Promise<void> {
    const nodes = [...new Set([facts.sourceNode ?? this.sourceNode, facts.targetNode].filter((n): n is string => !!n))];
    await Promise.all(
      nodes.map((node) =>
        this.command(node, 'forget-job', this.ref).then(
          (r) => this.log.info({ node, forgotten: r.forgotten }, 'handler told to forget the finished job'),
          (err: unknown) => this.log.warn({ node, err: String(err) }, 'could not tell the handler to forget the finished job; its backstop prunes it'),
        ),
      ),
    );
  }

  recordSuccess(facts: Facts): void {
    this.event('Normal', 'Migrated', `VirtualMachineInstance ${this.vmiKey} migrated from ${facts.sourceNode ?? '?'} to ${facts.targetNode ?? '?'}`);
  }

  handedOff(): boolean {
    if (this.markersOnVmim) return this.vmimMarkers.migrationUid === this.uid;
    const vmi = this.env.vmi(this.namespace, this.vmiName);
    return vmi?.status?.migrationState?.migrationUid === this.uid;
  }

  private async patchVmiStatus(status: Record<string, unknown>): Promise<void> {
    try {
      await this.env.kube.patchCustomStatus(VMI_RESOURCE, this.namespace, this.vmiName, { status });
    } catch (err) {
      if (isNotFound(err)) throw new Error(`VMI ${this.vmiKey} not found`);
      throw err;
    }
  }

  private async patchVmiStatusJson(ops: JsonPatchOp[], during = 'handed off'): Promise<void> {
    try {
      await this.env.kube.patchCustomStatusJson(VMI_RESOURCE, this.namespace, this.vmiName, ops);
    } catch (err) {
      if (isNotFound(err)) throw new Error(`VMI ${this.vmiKey} not found`);
      if (isConflict(err) || statusCode(err) === 422) throw new Error(`VMI ${this.vmiKey} changed while it was being ${during}; retrying`);
      throw err;
    }
  }

  /** Merges into this migration's state only: the uid guard keeps a stale writer off a newer migration. */
  private async patchMigrationState(fields: MigrationState): Promise<void> {
    if (this.markersOnVmim) return this.patchVmimMarkers(fields);
    const ops: JsonPatchOp[] = [{ op: 'test', path: '/status/migrationState/migrationUid', value: this.uid }];
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) ops.push({ op: 'add', path: `/status/migrationState/${k}`, value: v });
    try {
      await this.env.kube.patchCustomStatusJson(VMI_RESOURCE, this.namespace, this.vmiName, ops);
    } catch (err) {
      if (isNotFound(err)) throw new Error(`VMI ${this.vmiKey} not found`);
      if (isConflict(err) || statusCode(err) === 422) throw new Error(`VMI ${this.vmiKey} no longer records migration ${this.uid}`);
      throw err;
    }
  }
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
