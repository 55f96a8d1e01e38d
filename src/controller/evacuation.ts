import { parseObject } from '../api/meta.js';
import { Node } from '../api/core.js';
import type { MigrationConfiguration } from '../api/migrationConfig.js';
import { Annotations, EvictionStrategy, Labels, VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, MIGRATION_FINALIZER, VirtualMachineInstanceMigration } from '../api/vmim.js';
import { describeApiError, isConflict, isNotFound, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import type { Cache } from '../kube/informer.js';
import { Workqueue } from '../kube/workqueue.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { EventRecorder } from './eventRecorder.js';
import { evacuationAction, hasDrainTaint, nextEvacuationStep } from './evacuationRules.js';

type Raw = { metadata?: { name?: string; namespace?: string; uid?: string } } & Record<string, unknown>;

export interface EvacuationDeps {
  kube: KubeClient;
  log: Logger;
  clock: Clock;
  events: EventRecorder;
  nodes: Cache<Raw>;
  vmis: Cache<Raw>;
  vmims: Cache<Raw>;
  migrations: () => MigrationConfiguration;
  clusterEvictionStrategy: () => EvictionStrategy | undefined;
  backoffBaseMs: number;
  /** Extra labels on the VMIMs evacuation creates (the owner label beside KubeVirt). */
  vmimLabels?: Record<string, string>;
  /**
   * Every node that is evacuating (or has marked VMs) is reconciled this often
   * even when nothing changed, on the injected clock. Default 30 s.
   */
  resyncMs?: number;
  /** Parallel node reconciles; default 2. */
  workers?: number;
  /** Told once per failed reconcile (metrics). */
  onReconcileError?: () => void;
}

/** How long a created evacuation VMIM may be missing from the cache before we believe the create was lost. */
const EXPECTATION_TIMEOUT_MS = 30_000;

/**
 * Node-drain evacuation with KubeVirt's semantics. A node is evacuated while it
 * carries the drain taint, or while it is cordoned and `kubectl drain` has
 * marked its VMIs (status.evacuationNodeName) through the eviction check.
 * Every VM that should move gets an evacuation VMIM (evacuation priority, same
 * limits as any other); failures are retried with KubeVirt's back-off. The
 * evacuation marks a VMI itself only while its VMIM has to wait (another
 * migration of the VM, a back-off) or when someone else moves it (External);
 * an open evacuation VMIM counts as the mark.
 * Uncordoning stops it: queued evacuation VMIMs are withdrawn and the marks cleared.
 *
 * Level-triggered on its own workqueue keyed by node name: any change to a
 * node, to a VMI on it, or to a migration of such a VMI requeues the node, and
 * a periodic resync revisits every evacuating node, so a VM whose evacuation
 * had to wait (another migration of it in flight, a back-off) is picked up
 * without anyone touching the node.
 */
export class Evacuation {
  private readonly queue: Workqueue;
  private started = false;
  private resyncTimer: TimerHandle | undefined;
  /** By VMI uid: the last thing told about it, so each is told once (pruned with the VMI). */
  private readonly told = new Map<string, string>();
  /**
   * VMIMs we created that the cache may not show yet (KubeVirt's "expectations"):
   * without this, two reconciles in quick succession create two migrations.
   * By VMI uid; pruned once seen, expired, or the VMI is gone.
   */
  private readonly expected = new Map<string, { name: string; at: number }>();
  /** By VMIM uid: when a failed evacuation was first seen failed, on our clock (pruned with the VMIM). */
  private readonly failureSeen = new Map<string, number>();

  constructor(private readonly d: EvacuationDeps) {
    this.queue = new Workqueue((node) => this.reconcileNode(node), {
      clock: d.clock,
      workers: d.workers ?? 2,
      baseDelayMs: 1000,
      onError: (node, err, retries, retryInMs) => {
        d.log.error({ node, err: describeApiError(err), retries, retryInMs }, 'evacuation reconcile failed; retrying');
        d.onReconcileError?.();
      },
    });
  }

  /** Starts reconciling (call once the caches are synced): every node now, then the periodic resync. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const n of this.d.nodes.list()) this.enqueue(n.metadata?.name ?? '');
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.started = false;
    if (this.resyncTimer !== undefined) this.d.clock.clearTimeout(this.resyncTimer);
    await this.queue.shutDown();
  }

  /** Resolves once no node reconcile waits or runs (tests). */
  whenIdle(): Promise<void> {
    return this.queue.whenIdle();
  }

  enqueue(node: string | undefined): void {
    if (this.started && node) this.queue.add(node);
  }

  onNodeChange(raw: Raw): void {
    this.enqueue(raw.metadata?.name);
  }

  /** A VMI changed: its node, and the node it is marked to leave, may have work. */
  onVmiChange(raw: Raw): void {
    const status = (raw as { status?: { nodeName?: unknown; evacuationNodeName?: unknown } }).status;
    if (typeof status?.nodeName === 'string') this.enqueue(status.nodeName);
    if (typeof status?.evacuationNodeName === 'string') this.enqueue(status.evacuationNodeName);
  }

  /**
   * A migration changed (or went away): the node its VMI runs on may have an
   * evacuation that waited for it. A user migration that fails before the
   * hand-off never touches the VMI, so the VMI's own events do not cover this.
   */
  onVmimChange(raw: Raw): void {
    const m = raw as { metadata?: { namespace?: string; annotations?: Record<string, string> }; spec?: { vmiName?: unknown } };
    const evacuating = m.metadata?.annotations?.[Annotations.evacuationMigration];
    if (evacuating) this.enqueue(evacuating);
    if (typeof m.spec?.vmiName !== 'string') return;
    const vmi = this.d.vmis.get(m.spec.vmiName, m.metadata?.namespace ?? 'default');
    if (vmi) this.onVmiChange(vmi);
  }

  private scheduleResync(): void {
    const period = this.d.resyncMs ?? 30_000;
    this.resyncTimer = this.d.clock.setTimeout(() => {
      if (!this.started) return;
      this.resync();
      this.scheduleResync();
    }, period);
  }

  /** Revisits every node that may have evacuation work, and prunes memory of objects that are gone. */
  private resync(): void {
    const taintKey = this.d.migrations().nodeDrainTaintKey;
    const vmis = this.parsedVmis();
    for (const raw of this.d.nodes.list()) {
      const r = parseObject(Node, raw);
      if (r.ok && (hasDrainTaint(r.value, taintKey) || r.value.spec?.unschedulable)) this.enqueue(r.value.metadata.name);
    }
    for (const v of vmis) if (v.status?.evacuationNodeName) this.enqueue(v.status.evacuationNodeName);
    this.prune(vmis);
  }

  private prune(vmis: readonly VirtualMachineInstance[]): void {
    const vmiUids = new Set(vmis.map((v) => v.metadata.uid ?? ''));
    const vmimUids = new Set(this.d.vmims.list().map((m) => m.metadata?.uid ?? ''));
    const now = this.d.clock.now();
    for (const uid of this.told.keys()) if (!vmiUids.has(uid)) this.told.delete(uid);
    for (const [uid, e] of this.expected) if (!vmiUids.has(uid) || now - e.at >= EXPECTATION_TIMEOUT_MS) this.expected.delete(uid);
    for (const uid of this.failureSeen.keys()) if (!vmimUids.has(uid)) this.failureSeen.delete(uid);
  }

  /** `only` looks at the raw object first, so a node's reconcile parses that node's VMIs, not the cluster's. */
  private parsedVmis(only?: (status: { nodeName?: string; evacuationNodeName?: string } | undefined) => boolean): VirtualMachineInstance[] {
    return this.d.vmis.list().flatMap((raw) => {
      if (only && !only((raw as { status?: { nodeName?: string; evacuationNodeName?: string } }).status)) return [];
      const r = parseObject(VirtualMachineInstance, raw);
      return r.ok ? [r.value] : [];
    });
  }

  private parsedVmims(): VirtualMachineInstanceMigration[] {
    return this.d.vmims.list().flatMap((raw) => {
      const r = parseObject(VirtualMachineInstanceMigration, raw);
      return r.ok ? [r.value] : [];
    });
  }

  /** Converges one node: the reconcile the queue runs. Safe to call any number of times. */
  async reconcileNode(name: string): Promise<void> {
    const raw = this.d.nodes.get(name);
    const parsed = raw ? parseObject(Node, raw) : undefined;
    const node = parsed?.ok ? parsed.value : undefined;
    const taintKey = this.d.migrations().nodeDrainTaintKey;
    const tainted = node !== undefined && hasDrainTaint(node, taintKey);
    const cordoned = node?.spec?.unschedulable === true;
    const vmims = this.parsedVmims();
    const vmis = this.parsedVmis((st) => st?.nodeName === name || st?.evacuationNodeName === name).filter(
      (v) => v.status?.nodeName === name || v.status?.evacuationNodeName === name,
    );

    for (const vmi of vmis) {
      const onNode = vmi.status?.nodeName === name;
      const marked = vmi.status?.evacuationNodeName === name;
      // An open evacuation VMIM of this node stands for the mark (it is not written when the VMIM is).
      const evacuating = onNode && (tainted || ((marked || hasOpenEvacuation(vmi, name, vmims)) && cordoned));
      if (!evacuating) {
        // The node is back in service (or the VM already left): stop, and undo the mark.
        if (marked && (!onNode || (!tainted && !cordoned))) await this.clearMark(vmi, onNode ? 'node uncordoned' : 'VM left the node');
        if (onNode) await this.withdrawQueued(vmi, name, vmims);
        continue;
      }
      if (vmi.status?.phase !== 'Running' || vmi.metadata.deletionTimestamp) continue;
      const action = evacuationAction(vmi, this.d.clusterEvictionStrategy());
      switch (action.kind) {
        case 'leave':
          break;
        case 'blocked':
          this.tellOnce(vmi, `blocked@${name}`, 'Warning', 'EvacuationBlocked', `Cannot evacuate from ${name}: ${action.reason}`);
          break;
        case 'mark-external':
          if (!marked) await this.mark(vmi, name);
          break;
        case 'migrate':
          // Marked only while it has to wait for its VMIM (another migration of it, a back-off): then the
          // mark is what shows it is to leave. Its evacuation VMIM says so itself, and a mark would
          // be one more VMI write per migration (lifted again by the move's own write).
          if (!(await this.ensureMigration(vmi, name, vmims)) && !marked) await this.mark(vmi, name);
          break;
      }
    }
  }

  /** True when the VMI has its evacuation VMIM for this node (created now, or already there). */
  private async ensureMigration(vmi: VirtualMachineInstance, node: string, vmims: VirtualMachineInstanceMigration[]): Promise<boolean> {
    const ns = vmi.metadata.namespace ?? 'default';
    const mine = vmims.filter((m) => m.metadata.namespace === ns && m.spec.vmiName === vmi.metadata.name);
    const uid = vmi.metadata.uid ?? `${ns}/${vmi.metadata.name}`;
    const pending = this.expected.get(uid);
    if (pending) {
      const seen = mine.some((m) => m.metadata.name === pending.name);
      if (!seen && this.d.clock.now() - pending.at < EXPECTATION_TIMEOUT_MS) return true; // its add event requeues us
      this.expected.delete(uid);
      if (!seen) this.d.log.warn({ vmim: pending.name }, 'created evacuation migration never showed up in the cache; creating again');
    }
    const now = this.d.clock.now();
    const failureKey = (m: VirtualMachineInstanceMigration) => m.metadata.uid ?? `${ns}/${m.metadata.name}`;
    for (const m of mine) if (m.status?.phase === 'Failed' && !this.failureSeen.has(failureKey(m))) this.failureSeen.set(failureKey(m), now);
    const step = nextEvacuationStep({
      migrations: mine,
      failedAt: (m) => this.failureSeen.get(failureKey(m)) ?? now,
      now,
      backoffBaseMs: this.d.backoffBaseMs,
    });
    switch (step.kind) {
      case 'busy':
        // Ours, under way: nothing to say. Another one: its end (a VMIM update)
        // requeues this node, and the resync is the safety net.
        if (step.evacuating === node) return true;
        this.tellOnce(vmi, `busy:${step.migration}@${node}`, 'Normal', 'EvacuationWaiting', `Waiting for migration ${step.migration} (${step.phase}) of this VM to end before evacuating it from ${node}`);
        return false;
      case 'backoff':
        this.tellOnce(vmi, `backoff:${step.failures}@${node}`, 'Warning', 'MigrationBackoff', `Evacuation of ${vmi.metadata.name} failed ${step.failures} time(s); retrying in ${Math.ceil(step.waitMs / 1000)}s`);
        this.queue.addAfter(node, step.waitMs);
        return false;
      case 'create':
        break;
    }
    try {
      const created = (await this.d.kube.createCustom(VMIM_RESOURCE, ns, {
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachineInstanceMigration',
        metadata: {
          generateName: 'kubevirt-evacuation-',
          namespace: ns,
          annotations: { [Annotations.evacuationMigration]: node },
          labels: { ...(this.d.vmimLabels ?? {}), [Labels.vmiName]: vmi.metadata.name },
          // What the migration controller adds at first sight anyway: here it saves that write.
          finalizers: [MIGRATION_FINALIZER],
        },
        spec: { vmiName: vmi.metadata.name },
      })) as { metadata?: { name?: string } };
      if (created.metadata?.name) this.expected.set(uid, { name: created.metadata.name, at: this.d.clock.now() });
      this.told.delete(uid);
      this.d.log.info({ vmi: `${ns}/${vmi.metadata.name}`, node, vmim: created.metadata?.name, attempt: step.attempt }, 'created evacuation migration');
      this.d.events.record(vmiRef(vmi), 'Normal', 'SuccessfulCreate', `Created evacuation migration ${created.metadata?.name ?? ''} to move off ${node}`);
      return true;
    } catch (err) {
      this.d.events.record(vmiRef(vmi), 'Warning', 'FailedCreate', `Could not create evacuation migration: ${describeApiError(err)}`);
      throw new Error(`could not create evacuation migration for ${ns}/${vmi.metadata.name}: ${describeApiError(err)}`, { cause: err });
    }
  }

  /**
   * Evacuation VMIMs that have not started yet are withdrawn when their node is
   * back in service. The cache may be behind (admission may have started one
   * since), so the delete carries the uid and resourceVersion we saw: a 409 means
   * the object moved on, and a migration that started is left to finish.
   */
  private async withdrawQueued(vmi: VirtualMachineInstance, node: string, vmims: VirtualMachineInstanceMigration[]): Promise<void> {
    for (const m of vmims) {
      if (m.spec.vmiName !== vmi.metadata.name || m.metadata.namespace !== vmi.metadata.namespace) continue;
      if (m.metadata.annotations?.[Annotations.evacuationMigration] !== node || m.metadata.deletionTimestamp) continue;
      if ((m.status?.phase || 'Pending') !== 'Pending') continue;
      const key = `${m.metadata.namespace ?? 'default'}/${m.metadata.name}`;
      try {
        await deleteUnchanged(this.d.kube, m);
        this.d.log.info({ vmim: key, node }, 'withdrew queued evacuation migration: node back in service');
      } catch (err) {
        if (isNotFound(err)) continue;
        if (!isConflict(err)) throw err;
        // Changed since we read it: look again once the cache has caught up.
        this.d.log.info({ vmim: key, node }, 'queued evacuation migration changed before it could be withdrawn; looking again');
        this.queue.addAfter(node, 500);
      }
    }
  }

  private async mark(vmi: VirtualMachineInstance, node: string): Promise<void> {
    await this.d.kube.patchCustomStatus(VMI_RESOURCE, vmi.metadata.namespace ?? 'default', vmi.metadata.name, { status: { evacuationNodeName: node } });
  }

  private async clearMark(vmi: VirtualMachineInstance, why: string): Promise<void> {
    try {
      await this.d.kube.patchCustomStatus(VMI_RESOURCE, vmi.metadata.namespace ?? 'default', vmi.metadata.name, { status: { evacuationNodeName: null } });
      this.d.log.info({ vmi: `${vmi.metadata.namespace}/${vmi.metadata.name}`, why }, 'cleared evacuation mark');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** One Event and log line per VMI and situation: told again only once the situation changed. */
  private tellOnce(vmi: VirtualMachineInstance, situation: string, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const uid = vmi.metadata.uid ?? `${vmi.metadata.namespace}/${vmi.metadata.name}`;
    if (this.told.get(uid) === situation) return;
    this.told.set(uid, situation);
    const fields = { vmi: `${vmi.metadata.namespace}/${vmi.metadata.name}`, reason };
    if (type === 'Warning') this.d.log.warn(fields, message);
    else this.d.log.info(fields, message);
    this.d.events.record(vmiRef(vmi), type, reason, message);
  }
}

function vmiRef(vmi: VirtualMachineInstance) {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', namespace: vmi.metadata.namespace ?? 'default', name: vmi.metadata.name, uid: vmi.metadata.uid };
}

/**
 * Withdraws a queued migration: DELETE with preconditions, so only the very
 * object (uid) in the very version (resourceVersion) we decided on goes. A 409
 * means it changed since (it may have started): the caller leaves it and looks again.
 */
export function deleteUnchanged(kube: KubeClient, m: VirtualMachineInstanceMigration): Promise<unknown> {
  return kube.custom.deleteNamespacedCustomObject({
    ...VMIM_RESOURCE,
    namespace: m.metadata.namespace ?? 'default',
    name: m.metadata.name,
    body: { preconditions: { uid: m.metadata.uid, resourceVersion: m.metadata.resourceVersion } },
  });
}

/**
 * Does the VMI have an evacuation VMIM off `node` that has not ended and is not being withdrawn? One being deleted
 * (held by the finalizer until its abort lands) is on its way out: counting it would re-start an evacuation that was
 * just stopped (a deleted runbook lifts the taint and withdraws the queued VMIMs of a node it leaves cordoned).
 */
function hasOpenEvacuation(vmi: VirtualMachineInstance, node: string, vmims: readonly VirtualMachineInstanceMigration[]): boolean {
  return vmims.some(
    (m) =>
      !m.metadata.deletionTimestamp &&
      m.spec.vmiName === vmi.metadata.name &&
      m.metadata.namespace === vmi.metadata.namespace &&
      m.metadata.annotations?.[Annotations.evacuationMigration] === node &&
      !FINAL_PHASES.has(m.status?.phase || 'Pending'),
  );
}
