import type { NatsConnection } from 'nats';
import type { V1Pod } from '@kubernetes/client-node';
import type { MigrationConfiguration } from '../api/migrationConfig.js';
import { Labels, type MigrationState, type VirtualMachineInstance } from '../api/vmi.js';
import type { MigrationPhase, VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { Pod } from '../api/core.js';
import { requestCommand } from '../bus/rpc.js';
import type { Command } from '../bus/subjects.js';
import type { CommandReply, CommandRequest } from '../bus/protocol.js';
import type { FerryConfig } from '../config/ferryConfig.js';
import type { Priority } from '../limits/types.js';
import { isNotFound, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import type { Logger } from '../util/log.js';
import type { EventRecorder } from './eventRecorder.js';
import { domainName, guestMemoryBytes, guestSpecFor } from './guest.js';
import { buildTargetPod } from './targetPod.js';
import { launcherRef } from './launcherRef.js';
import { formatProxyAddress } from '../launcher/proxyAddress.js';

/** What a session needs from the controller that owns it (caches and shared clients). */
export interface SessionEnv {
  kube: KubeClient;
  nc: NatsConnection;
  log: Logger;
  events: EventRecorder;
  config: FerryConfig;
  vmi: (namespace: string, name: string) => VirtualMachineInstance | undefined;
  podsOfVmi: (namespace: string, vmiUid: string) => Pod[];
  onRoundTrip?: (command: Command, ms: number, ok: boolean) => void;
  /**
   * Where the in-flight migrationState lives. 'vmi' (standalone): on the VMI,
   * as KubeVirt's controller writes it. 'vmim' (beside KubeVirt): on the VMIM
   * Ferry owns, because KubeVirt's virt-handler acts on the VMI's markers
   * (migrationState.sourceNode/targetNode, the migrationTargetNodeName label);
   * the VMI then gets only the final state a completed KubeVirt migration leaves.
   */
  markersOn?: 'vmi' | 'vmim';
}

export interface ResultEvent {
  type: 'MIGRATION_COMPLETED' | 'MIGRATION_FAILED' | 'MIGRATION_ABORTED';
  mode?: 'PreCopy' | 'PostCopy';
  downtimeMs?: number;
  reason?: string;
}

/**
 * Everything one migration does to the outside world: the Kubernetes writes and
 * the handler commands its statechart's named actions and actors stand for.
 * Each step is idempotent, because a restarted controller replays the entry
 * actions of the phase it resumes in.
 */
export class MigrationSession {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly vmiName: string;
  readonly attempt = 1;
  readonly priority: Priority;
  readonly enqueuedAt: number;
  log: Logger;
  private readonly baseLog: Logger;
  phase: MigrationPhase = 'Pending';
  /** Filled as the migration goes; also restored from the VMI's migrationState on restart. */
  sourceNode: string | undefined;
  sourcePod: string | undefined;
  targetNode: string | undefined;
  targetPod: string | undefined;
  targetAddress: string | undefined;
  /** The placement the limits core chose, if any (pins the target pod). */
  pinnedTarget: string | undefined;
  /** Bandwidth the limits core allotted (bytes/s) and what the source was last told. */
  allottedBandwidth = 0;
  appliedBandwidth: number | undefined;
  sourceStarted = false;
  lastDirtyRate = 0;
  lastRemaining: number | undefined;
  memoryBytes: number;
  /** Dedupes level-triggered facts so the chart only hears about changes. */
  lastFact = '';
  targetPodSeen = false;
  waitingReason: string | undefined;
  /** Cluster configuration with the matching MigrationPolicy applied, fixed when the migration is first seen. */
  effective: MigrationConfiguration;
  policyName: string | undefined;
  appliedDowntimeMs: number;

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
    const ann = vmim.metadata.annotations ?? {};
    this.priority = ann['kubevirt.io/evacuationMigration'] !== undefined ? 'evacuation' : ann['ferry.dev/priority'] === 'background' ? 'background' : 'user';
    this.enqueuedAt = Date.parse(vmim.metadata.creationTimestamp ?? '') || Date.now();
    this.baseLog = env.log.child({ namespace: this.namespace, name: this.name, uid: this.uid, vmi: this.vmiKey });
    this.log = this.baseLog.child({ phase: this.phase });
    this.memoryBytes = vmi ? guestMemoryBytes(vmi) : 1024 ** 3;
    const ms = this.markersOnVmim ? vmim.status?.migrationState ?? undefined : vmi?.status?.migrationState;
    if (ms && ms.migrationUid === this.uid) {
      this.markers = { ...ms };
      this.sourceNode = ms.sourceNode;
      this.sourcePod = ms.sourcePod;
      this.targetNode = ms.targetNode;
      this.targetPod = ms.targetPod;
      // Proxied migrations publish the handler's address and ports, KubeVirt's way.
      this.targetAddress = ms.targetNodeAddress && ms.targetDirectMigrationNodePorts
        ? formatProxyAddress({ targetNodeAddress: ms.targetNodeAddress, targetDirectMigrationNodePorts: ms.targetDirectMigrationNodePorts })
        : ms.targetNodeAddress;
      this.sourceStarted = ms.startTimestamp !== undefined;
    } else {
      this.sourceNode = vmi?.status?.nodeName;
    }
  }

  /** Everything written to the migrationState so far (the final VMI state is built from it beside KubeVirt). */
  private markers: MigrationState = {};

  private get markersOnVmim(): boolean {
    return this.env.markersOn === 'vmim';
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

  /** The guest as handlers need it, with the VMI's launcher pods (per-VM launchers are found by pod UID). */
  private guestOf(vmi: VirtualMachineInstance) {
    const pods = vmi.metadata.uid ? this.env.podsOfVmi(this.namespace, vmi.metadata.uid) : [];
    return { ...guestSpecFor(vmi), launcher: launcherRef(vmi, pods, this.effective.disableTLS) };
  }

  private currentVmi(): VirtualMachineInstance {
    const vmi = this.env.vmi(this.namespace, this.vmiName);
    if (!vmi) throw new Error(`VMI ${this.vmiKey} not found`);
    return vmi;
  }

  private command<C extends Command>(node: string, command: C, payload: CommandRequest<C>): Promise<CommandReply<C>> {
    const opts = this.env.onRoundTrip
      ? { timeoutMs: this.env.config.commandTimeoutMs, onRoundTrip: this.env.onRoundTrip }
      : { timeoutMs: this.env.config.commandTimeoutMs };
    return requestCommand(this.env.nc, node, command, payload, opts);
  }

  private involved() {
    return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', namespace: this.namespace, name: this.name, uid: this.uid };
  }

  event(type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.env.events.record(this.involved(), type, reason, message);
  }

  /** The source launcher pod: the VMI's pod on the node the VMI runs on. */
  sourceLauncherPod(): Pod | undefined {
    const vmi = this.env.vmi(this.namespace, this.vmiName);
    if (!vmi?.metadata.uid) return undefined;
    const node = this.sourceNode ?? vmi.status?.nodeName;
    return this.env
      .podsOfVmi(this.namespace, vmi.metadata.uid)
      .find((p) => p.spec?.nodeName === node && p.metadata.labels?.[Labels.migrationJobUID] !== this.uid && !p.metadata.deletionTimestamp);
  }

  targetLauncherPods(): Pod[] {
    const vmi = this.env.vmi(this.namespace, this.vmiName);
    if (!vmi?.metadata.uid) return [];
    return this.env.podsOfVmi(this.namespace, vmi.metadata.uid).filter((p) => p.metadata.labels?.[Labels.migrationJobUID] === this.uid);
  }

  // ---- named actions and actors of the chart ----

  async createTargetPod(): Promise<void> {
    if (this.targetLauncherPods().length > 0) return;
    const vmi = this.currentVmi();
    const source = this.sourceLauncherPod();
    this.sourceNode = vmi.status?.nodeName;
    this.sourcePod = source?.metadata.name;
    const pod = buildTargetPod({
      vmim: { metadata: { name: this.name, namespace: this.namespace, uid: this.uid }, spec: { vmiName: this.vmiName } },
      vmi,
      sourcePod: source,
      targetNode: this.pinnedTarget,
    });
    const created: V1Pod = await this.env.kube.createPod(this.namespace, pod);
    this.event('Normal', 'SuccessfulCreate', `Created migration target pod ${this.namespace}/${created.metadata?.name ?? '?'}${this.pinnedTarget ? ` on ${this.pinnedTarget}` : ''}`);
    this.log.info({ targetPod: created.metadata?.name }, 'created target pod');
  }

  /** Hand-off: the VMI's migrationState names both sides, as KubeVirt's controller writes it. */
  async handOff(): Promise<void> {
    const vmi = this.currentVmi();
    const existing = vmi.status?.migrationState;
    if (existing?.migrationUid && existing.migrationUid !== this.uid && !existing.completed && !existing.failed) {
      throw new Error(`VMI ${this.vmiKey} is already being migrated by ${existing.migrationUid}`);
    }
    const cfg = this.effective;
    const state: MigrationState = {
      migrationUid: this.uid,
      sourceNode: this.sourceNode ?? vmi.status?.nodeName,
      sourcePod: this.sourcePod ?? this.sourceLauncherPod()?.metadata.name,
      targetNode: this.targetNode,
      targetPod: this.targetPod,
      mode: 'PreCopy',
      migrationConfiguration: { ...cfg },
      ...(this.policyName ? { migrationPolicyName: this.policyName } : {}),
    };
    if (this.markersOnVmim) {
      // No marker on the VMI: virt-handler would take part.
      await this.patchMigrationState(state);
      return;
    }
    this.markers = { ...(existing?.migrationUid === this.uid ? existing : {}), ...state };
    await this.patchVmiStatus({ migrationState: existing?.migrationUid === this.uid ? { ...existing, ...state } : state });
    await this.env.kube.patchCustom(VMI_RESOURCE, this.namespace, this.vmiName, {
      metadata: { labels: { [Labels.migrationTargetNodeName]: this.targetNode ?? null } },
    });
  }

  async prepareTarget(): Promise<{ address: string }> {
    if (!this.targetNode) throw new Error('no target node known');
    const vmi = this.currentVmi();
    const reply = await this.command(this.targetNode, 'prepare-target', {
      ...this.ref,
      guest: this.guestOf(vmi),
      sourceNode: this.sourceNode ?? '',
    });
    this.targetAddress = reply.address;
    await this.patchMigrationState({ ...(reply.published ?? { targetNodeAddress: reply.address }), targetNodeDomainDetected: false });
    return { address: reply.address };
  }

  async startSource(): Promise<void> {
    if (!this.sourceNode || !this.targetNode || !this.targetAddress) {
      throw new Error(`cannot start: source ${this.sourceNode ?? '?'}, target ${this.targetNode ?? '?'}, address ${this.targetAddress ?? '?'}`);
    }
    const vmi = this.currentVmi();
    const cfg = this.effective;
    const bandwidth = this.allottedBandwidth;
    const reply = await this.command(this.sourceNode, 'start-source', {
      ...this.ref,
      guest: this.guestOf(vmi),
      targetNode: this.targetNode,
      targetAddress: this.targetAddress,
      controls: { bandwidth, maxDowntimeMs: this.appliedDowntimeMs, autoConverge: cfg.allowAutoConverge, postCopy: cfg.allowPostCopy },
    });
    this.appliedBandwidth = bandwidth;
    this.sourceStarted = true;
    if (!this.markers.startTimestamp) await this.patchMigrationState({ startTimestamp: new Date().toISOString(), mode: 'PreCopy' });
    this.log.info({ reply: reply.state, bandwidth }, 'source migration started');
    this.event('Normal', 'Migrating', `Migrating ${this.vmiKey} from ${this.sourceNode} to ${this.targetNode}`);
  }

  /**
   * Asks the source to cancel its job. Returns true when the source confirms it
   * never had one (nothing to wait for); otherwise the result arrives later.
   */
  async requestAbort(reason: string): Promise<boolean> {
    if (this.handedOff()) await this.patchMigrationState({ abortRequested: true, abortStatus: 'Aborting' }).catch(() => undefined);
    if (!this.sourceNode) return true;
    const reply = await this.command(this.sourceNode, 'abort', { ...this.ref, reason });
    this.log.info({ state: reply.state, reason }, 'abort requested at source');
    return reply.state === 'not-found' || reply.state === 'cancelled';
  }

  async startPostCopy(): Promise<void> {
    if (!this.sourceNode) return;
    await this.command(this.sourceNode, 'post-copy', this.ref);
    await this.patchMigrationState({ mode: 'PostCopy' });
    this.event('Normal', 'PostCopy', `Switched ${this.vmiKey} to post-copy`);
  }

  async setBandwidth(bytesPerSecond: number): Promise<void> {
    if (!this.sourceNode || !this.sourceStarted) return;
    await this.command(this.sourceNode, 'set-bandwidth', { ...this.ref, bytesPerSecond });
    this.appliedBandwidth = bytesPerSecond;
  }

  async setDowntime(maxDowntimeMs: number): Promise<void> {
    if (!this.sourceNode || !this.sourceStarted) return;
    await this.command(this.sourceNode, 'set-downtime', { ...this.ref, maxDowntimeMs });
    this.appliedDowntimeMs = maxDowntimeMs;
    this.log.info({ maxDowntimeMs }, 'raised max downtime (downtime stepping)');
  }

  /** What the source handler knows of this job (after a controller restart). */
  async sourceJob(): Promise<CommandReply<'list-jobs'>['jobs'][number] | undefined> {
    if (!this.sourceNode) return undefined;
    const reply = await this.command(this.sourceNode, 'list-jobs', {});
    return reply.jobs.find((j) => j.migrationUid === this.uid && j.role === 'source');
  }

  /**
   * The guest runs on the target: tell the target handler to take it over, move
   * the VMI to the target node, then remove the source launcher pod. In that
   * order, so that no moment shows the VM without a launcher pod.
   */
  async finalizeSuccess(mode: 'PreCopy' | 'PostCopy'): Promise<void> {
    if (!this.targetNode || !this.targetPod) throw new Error('target unknown at completion');
    const vmi = this.currentVmi();
    await this.command(this.targetNode, 'finish-target', { ...this.ref, domain: domainName(vmi) });
    const targetPod = this.targetLauncherPods().find((p) => p.metadata.name === this.targetPod);
    const now = new Date().toISOString();
    if (vmi.status?.nodeName !== this.targetNode) {
      await this.patchVmiStatus({
        nodeName: this.targetNode,
        migrationState: {
          ...(this.markersOnVmim ? this.markers : vmi.status?.migrationState ?? {}),
          migrationUid: this.uid,
          completed: true,
          failed: false,
          mode,
          endTimestamp: now,
          targetNodeDomainDetected: true,
          targetNodeDomainReadyTimestamp: now,
        },
      });
      // activePods is a map: a merge patch would keep the source's entry, so replace it.
      if (targetPod?.metadata.uid) {
        await this.env.kube.patchCustomStatusJson(VMI_RESOURCE, this.namespace, this.vmiName, [
          { op: 'add', path: '/status/activePods', value: { [targetPod.metadata.uid]: this.targetNode } },
        ]);
      }
      await this.env.kube.patchCustom(VMI_RESOURCE, this.namespace, this.vmiName, {
        metadata: { labels: { [Labels.nodeName]: this.targetNode, [Labels.migrationTargetNodeName]: null } },
      });
    }
    const source = this.sourcePod;
    if (source) await this.env.kube.deletePod(this.namespace, source);
    this.log.info({ from: this.sourceNode, to: this.targetNode, mode }, 'migration succeeded; VMI moved');
  }

  recordSuccess(): void {
    this.event('Normal', 'Migrated', `VirtualMachineInstance ${this.vmiKey} migrated from ${this.sourceNode ?? '?'} to ${this.targetNode ?? '?'}`);
  }

  /**
   * Leaves the VM where it was: cancel whatever the target prepared, remove the
   * target pod, and record the failure on the VMI if it had been handed off.
   */
  async recordFailure(reason: string, aborted: boolean): Promise<void> {
    if (this.targetNode) {
      await this.command(this.targetNode, 'abort', { ...this.ref, reason }).catch((err: unknown) =>
        this.log.warn({ err: String(err), targetNode: this.targetNode }, 'could not tell the target handler to cancel; its prepared domain is dropped with the pod'),
      );
    }
    for (const pod of this.targetLauncherPods()) await this.env.kube.deletePod(this.namespace, pod.metadata.name);
    if (this.handedOff()) {
      const patch: MigrationState = { failed: true, completed: true, failureReason: reason, endTimestamp: new Date().toISOString() };
      if (aborted) patch.abortStatus = 'Succeeded';
      await this.patchMigrationState(patch);
      // Beside KubeVirt the VMI gets the final (failed) state only, as a failed KubeVirt migration leaves it.
      if (this.markersOnVmim) await this.patchVmiStatus({ migrationState: { ...this.markers } });
      await this.env.kube
        .patchCustom(VMI_RESOURCE, this.namespace, this.vmiName, { metadata: { labels: { [Labels.migrationTargetNodeName]: null } } })
        .catch(() => undefined);
    }
    this.event('Warning', aborted ? 'MigrationAborted' : 'FailedMigration', `Migration of ${this.vmiKey} failed: ${reason}`);
    this.log.warn({ reason, aborted }, 'migration failed; VM stays on the source');
  }

  handedOff(): boolean {
    if (this.markersOnVmim) return this.markers.migrationUid === this.uid;
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

  private async patchMigrationState(fields: MigrationState): Promise<void> {
    this.markers = { ...this.markers, ...fields };
    if (this.markersOnVmim) {
      await this.env.kube.patchCustomStatus(VMIM_RESOURCE, this.namespace, this.name, { status: { migrationState: fields } });
      return;
    }
    await this.patchVmiStatus({ migrationState: fields });
  }
}
