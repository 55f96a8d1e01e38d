import { parseObject } from '../api/meta.js';
import { Node, Pod } from '../api/core.js';
import type { MigrationConfiguration } from '../api/migrationConfig.js';
import { Annotations, EvictionStrategy, Labels, VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, VirtualMachineInstanceMigration, type MigrationPhase } from '../api/vmim.js';
import { describeApiError, isNotFound, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import type { Cache } from '../kube/informer.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { EventRecorder } from './eventRecorder.js';
import { evacuationAction, evacuationBackoffMs, evictionVerdict, hasDrainTaint } from './evacuationRules.js';

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
  /** Re-run reconcileNode(node) later (back-off expiry). */
  requeue: (node: string, afterMs: number) => void;
}

/**
 * Node-drain evacuation with KubeVirt's semantics. A node is evacuated while it
 * carries the drain taint, or while it is cordoned and `kubectl drain` has
 * marked its VMIs (status.evacuationNodeName) through the eviction check.
 * Every VM that should move gets an evacuation VMIM (evacuation priority, same
 * limits as any other); failures are retried with KubeVirt's back-off.
 * Uncordoning stops it: queued evacuation VMIMs are withdrawn and the marks cleared.
 */
export class Evacuation {
  private readonly warned = new Set<string>();
  /**
   * VMIMs we created that the cache may not show yet (KubeVirt's "expectations"):
   * without this, two reconciles in quick succession create two migrations.
   */
  private readonly expected = new Map<string, { name: string; at: number }>();

  constructor(private readonly d: EvacuationDeps) {}

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
      const evacuating = onNode && (tainted || (marked && cordoned));
      if (!evacuating) {
        // The node is back in service (or the VM already left): stop, and undo the mark.
        if (marked && (!onNode || (!tainted && !cordoned))) await this.clearMark(vmi, onNode ? 'node uncordoned' : 'VM left the node');
        if (onNode) await this.withdrawQueued(vmi, name, vmims);
        continue;
      }
      if (vmi.status?.phase !== 'Running' || vmi.metadata.deletionTimestamp) continue;
      const action = evacuationAction(vmi, this.d.clusterEvictionStrategy());
      const key = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
      switch (action.kind) {
        case 'leave':
          break;
        case 'blocked':
          this.warnOnce(vmi, `${key}@${name}:blocked`, 'EvacuationBlocked', `Cannot evacuate from ${name}: ${action.reason}`);
          break;
        case 'mark-external':
          if (!marked) await this.mark(vmi, name);
          break;
        case 'migrate':
          if (!marked) await this.mark(vmi, name);
          await this.ensureMigration(vmi, name, vmims);
          break;
      }
    }
  }

  private async ensureMigration(vmi: VirtualMachineInstance, node: string, vmims: VirtualMachineInstanceMigration[]): Promise<void> {
    const ns = vmi.metadata.namespace ?? 'default';
    const mine = vmims
      .filter((m) => m.metadata.namespace === ns && m.spec.vmiName === vmi.metadata.name)
      .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
    if (mine.some((m) => !FINAL_PHASES.has((m.status?.phase || 'Pending') as MigrationPhase) && !m.metadata.deletionTimestamp)) return;
    const uid = vmi.metadata.uid ?? `${ns}/${vmi.metadata.name}`;
    const pending = this.expected.get(uid);
    if (pending) {
      const seen = mine.some((m) => m.metadata.name === pending.name);
      if (!seen && this.d.clock.now() - pending.at < 30_000) return;
      this.expected.delete(uid);
      if (!seen) this.d.log.warn({ vmim: pending.name }, 'created evacuation migration never showed up in the cache; creating again');
    }
    // KubeVirt's back-off: count evacuation failures since the last success.
    let failures = 0;
    let lastFailure = 0;
    for (const m of mine) {
      if (m.status?.phase === 'Succeeded') {
        failures = 0;
        continue;
      }
      if (m.status?.phase === 'Failed' && m.metadata.annotations?.[Annotations.evacuationMigration] !== undefined) {
        failures++;
        const at = m.status.phaseTransitionTimestamps?.find((p) => p.phase === 'Failed')?.phaseTransitionTimestamp;
        lastFailure = Math.max(lastFailure, at ? Date.parse(at) : 0);
      }
    }
    const wait = lastFailure + evacuationBackoffMs(failures, this.d.backoffBaseMs) - this.d.clock.now();
    if (failures > 0 && wait > 0) {
      this.warnOnce(vmi, `${vmi.metadata.uid}:backoff:${failures}`, 'MigrationBackoff', `Evacuation of ${vmi.metadata.name} failed ${failures} time(s); retrying in ${Math.ceil(wait / 1000)}s`);
      this.d.requeue(node, wait);
      return;
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
        },
        spec: { vmiName: vmi.metadata.name },
      })) as { metadata?: { name?: string } };
      if (created.metadata?.name) this.expected.set(uid, { name: created.metadata.name, at: this.d.clock.now() });
      this.d.log.info({ vmi: `${ns}/${vmi.metadata.name}`, node, vmim: created.metadata?.name, attempt: failures + 1 }, 'created evacuation migration');
      this.d.events.record(vmiRef(vmi), 'Normal', 'SuccessfulCreate', `Created evacuation migration ${created.metadata?.name ?? ''} to move off ${node}`);
    } catch (err) {
      this.d.log.error({ vmi: `${ns}/${vmi.metadata.name}`, err: describeApiError(err) }, 'could not create evacuation migration');
      this.d.events.record(vmiRef(vmi), 'Warning', 'FailedCreate', `Could not create evacuation migration: ${describeApiError(err)}`);
      this.d.requeue(node, 1000);
    }
  }

  /** Evacuation VMIMs that have not started yet are withdrawn when their node is back in service. */
  private async withdrawQueued(vmi: VirtualMachineInstance, node: string, vmims: VirtualMachineInstanceMigration[]): Promise<void> {
    for (const m of vmims) {
      if (m.spec.vmiName !== vmi.metadata.name || m.metadata.namespace !== vmi.metadata.namespace) continue;
      if (m.metadata.annotations?.[Annotations.evacuationMigration] !== node || m.metadata.deletionTimestamp) continue;
      if ((m.status?.phase || 'Pending') !== 'Pending') continue;
      try {
        await this.d.kube.deleteCustom(VMIM_RESOURCE, m.metadata.namespace ?? 'default', m.metadata.name);
        this.d.log.info({ vmim: `${m.metadata.namespace}/${m.metadata.name}`, node }, 'withdrew queued evacuation migration: node back in service');
      } catch (err) {
        if (!isNotFound(err)) throw err;
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

  private warnOnce(vmi: VirtualMachineInstance, key: string, reason: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.d.log.warn({ vmi: `${vmi.metadata.namespace}/${vmi.metadata.name}`, reason }, message);
    this.d.events.record(vmiRef(vmi), 'Warning', reason, message);
  }

  /**
   * The eviction check for launcher pods (the embedded cluster's eviction hook,
   * or an admission webhook on a real cluster). Returns null to let the
   * eviction proceed, or the refusal to send back.
   */
  async checkEviction(podRaw: unknown): Promise<null | { code: number; message: string }> {
    const p = parseObject(Pod, podRaw);
    if (!p.ok) return null;
    const pod = p.value;
    const vmiUid = pod.metadata.labels?.[Labels.createdBy];
    if (!vmiUid) return null;
    const vmi = this.parsedVmis().find((v) => v.metadata.uid === vmiUid);
    const verdict = evictionVerdict(pod, vmi, this.d.clusterEvictionStrategy());
    if (verdict.allow) return null;
    if (verdict.markEvacuation && vmi && pod.spec?.nodeName && vmi.status?.evacuationNodeName !== pod.spec.nodeName) {
      await this.mark(vmi, pod.spec.nodeName);
      this.d.log.info({ vmi: `${vmi.metadata.namespace}/${vmi.metadata.name}`, node: pod.spec.nodeName }, 'eviction of launcher pod turned into evacuation');
    }
    return { code: verdict.code, message: verdict.message };
  }
}

function vmiRef(vmi: VirtualMachineInstance) {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', namespace: vmi.metadata.namespace ?? 'default', name: vmi.metadata.name, uid: vmi.metadata.uid };
}
