import { parseObject } from '../api/meta.js';
import type { EvictionStrategy, VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, VirtualMachineInstanceMigration, type MigrationPhase } from '../api/vmim.js';
import { VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import type { KeepAliveInformer } from '../kube/informer.js';
import { rejectionReasonClass, type ControllerMetrics } from '../metrics/index.js';
import type { Logger } from '../util/log.js';
import type { FailureCleanup } from './cleanup.js';
import type { DisruptionBudgets } from './disruptionBudgets.js';
import type { EventRecorder } from './eventRecorder.js';
import { factOf } from './facts.js';
import { adopt, adopted, removeFinalizer } from './finalizer.js';
import type { MigrationRegistry } from './registry.js';
import type { MigrationSession } from './session.js';
import type { Tracked } from './tracked.js';
import { unusableVmiReason } from './vmiFacts.js';
import { migrationGone } from './orphanState.js';

type Obj = { metadata?: { uid?: string; name?: string; namespace?: string; resourceVersion?: string } } & Record<string, unknown>;

export interface ReconcilerDeps {
  kube: KubeClient;
  log: Logger;
  events: EventRecorder;
  metrics: ControllerMetrics | undefined;
  registry: MigrationRegistry;
  cleanup: FailureCleanup;
  vmims: Pick<KeepAliveInformer<Obj>, 'get' | 'list'>;
  /** The VMI, parsed (undefined when missing or invalid). */
  vmi: (namespace: string, name: string) => VirtualMachineInstance | undefined;
  /** The VMI as cached, valid or not (to say why it cannot be used). */
  rawVmi: (name: string, namespace: string) => unknown;
  budgets: () => DisruptionBudgets | undefined;
  clusterEvictionStrategy: () => EvictionStrategy | undefined;
  /** Starts following an adopted VMIM (see tracking.ts). */
  track: (vmim: VirtualMachineInstanceMigration, phase: MigrationPhase | undefined) => Tracked;
  enqueue: (key: string) => void;
  /** The node is cordoned (spec.unschedulable) or gone. */
  nodeCordoned?: (name: string) => boolean;
}

/**
 * One workqueue key, converged: `ns/name` is a VMIM (adopt it, track it, feed
 * its actor what the objects say, clean up after it and let it go once final),
 * `vmi:ns/name` is a VMI (its disruption budget, and a migrationState left open
 * by a migration that is over). Level-triggered: safe to run any number of times.
 */
export class MigrationReconciler {
  private readonly invalidSeen = new Set<string>();
  /** VMIMs whose finalizer this controller removed, by uid: the resourceVersion it removed it from. */
  private readonly released = new Map<string, string | undefined>();

  constructor(private readonly d: ReconcilerDeps) {}

  /** Converges one VMIM towards what its objects say. Safe to call any number of times. */
  async reconcile(key: string): Promise<void> {
    if (key.startsWith('vmi:')) {
      const [vns, vname] = key.slice(4).split('/') as [string, string];
      const vmi = this.d.vmi(vns, vname);
      if (vmi) await this.d.budgets()?.reconcile(vmi, this.d.clusterEvictionStrategy());
      if (vmi) await this.closeOrphanState(vmi);
      return;
    }
    const [ns, name] = key.split('/') as [string, string];
    const raw = this.d.vmims.get(name, ns);
    if (!raw) {
      // Gone without our finalizer (created before we ran, or force-removed): abort what runs.
      const t = this.d.registry.byKey(key);
      if (!t) return;
      if (FINAL_PHASES.has(t.session.phase)) {
        // Over, and nothing left to write it on: let it go (the final phase requeues this key).
        t.actor.stop();
        this.d.registry.delete(t.session.uid);
        return;
      }
      t.actor.send({ type: 'ABORT', reason: 'VMIM was deleted' });
      return;
    }
    const parsed = parseObject(VirtualMachineInstanceMigration, raw);
    if (!parsed.ok) {
      const seen = `${raw.metadata?.uid}@${raw.metadata?.resourceVersion}`;
      if (!this.invalidSeen.has(seen)) {
        // Only dedupes warnings: a bound keeps it from growing with every edit of every bad object.
        if (this.invalidSeen.size >= 10_000) this.invalidSeen.clear();
        this.invalidSeen.add(seen);
        this.d.log.warn({ vmim: key, reason: parsed.reason }, 'ignoring invalid VirtualMachineInstanceMigration');
        this.d.events.record({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', namespace: ns, name, uid: raw.metadata?.uid }, 'Warning', 'InvalidMigration', `Ignored: ${parsed.reason}`);
      }
      return;
    }
    const vmim = parsed.value;
    const uid = vmim.metadata.uid ?? '';
    const phase = vmim.status?.phase || undefined;
    let t = this.d.registry.get(uid);

    if (phase && FINAL_PHASES.has(phase) && (!t || t.session.phase === phase)) {
      // The copy this controller already released (a key queued before its own removal's event came
      // back): patching it again could only fail on its resourceVersion. The watch brings the next one.
      if (!t && vmim.metadata.resourceVersion !== undefined && this.released.get(uid) === vmim.metadata.resourceVersion) return;
      // Not awaited here: a migration whose failure cleanup waits (a silent target) would hold a worker for as
      // long, and four such stopped every other VMIM (chaos seed 13). Its key comes back when it settles
      // (tracking.ts enqueues it once its final phase is written).
      if (t && !t.finalWritten) return;
      // Level-triggered: whatever a Failed migration left open is closed here, retried
      // by the queue until it lands; only then may the VMIM go.
      if (phase === 'Failed') await this.d.cleanup.run(vmim);
      // Final, written, its result handled: the handlers may drop their tombstones.
      if (t && !t.forgotten) {
        t.forgotten = true;
        await t.session.forgetJob(t.actor.context());
      }
      if (await removeFinalizer(this.d.kube, vmim, this.d.enqueue)) {
        // Deleted VMIMs never come back to clear theirs: a bound keeps the map small (forgetting costs one failed patch).
        if (this.released.size >= 10_000) this.released.clear();
        this.released.set(uid, vmim.metadata.resourceVersion);
      } else this.released.delete(uid);
      if (t) {
        t.actor.stop();
        this.d.registry.delete(uid);
      }
      return;
    }

    if (!t) {
      if (!adopted(vmim)) {
        if (vmim.metadata.deletionTimestamp && !phase) {
          // Deleted before we ever touched it: nothing to undo.
          return;
        }
        await adopt(this.d.kube, vmim);
        return; // the update comes back through the watch
      }
      t = this.d.track(vmim, phase);
    }
    this.feedFacts(t, vmim);
  }

  /** Translates what the objects say now into chart events; the chart ignores what doesn't apply. */
  private feedFacts(t: Tracked, vmim: VirtualMachineInstanceMigration): void {
    const s = t.session;
    const vmi = this.d.vmi(s.namespace, s.vmiName);
    const deleted = vmim.metadata.deletionTimestamp !== undefined;
    const { event, targetPodSeen } = factOf({
      phase: s.phase,
      vmiKey: s.vmiKey,
      deleted,
      vmi,
      targetPods: s.targetLauncherPods(),
      targetPodSeen: t.targetPodSeen,
      pinnedHostname: s.addedNodeSelector?.['kubernetes.io/hostname'],
      placementCordoned: s.phase === 'Scheduling' && s.pinnedTarget && s.targetConstraint() === s.pinnedTarget && this.d.nodeCordoned?.(s.pinnedTarget) ? s.pinnedTarget : undefined,
      placementOnSource: s.phase === 'Scheduling' && s.pinnedTarget && s.targetConstraint() === s.pinnedTarget && vmi?.status?.nodeName === s.pinnedTarget ? s.pinnedTarget : undefined,
      missingVmiReason: vmi ? undefined : unusableVmiReason(this.d.rawVmi(s.vmiName, s.namespace), s.vmiKey),
      otherActive: s.phase === 'Pending' && vmi ? this.otherActiveMigration(s, vmi) : undefined,
    });
    t.targetPodSeen = targetPodSeen;
    if (deleted) t.writer.abortRequested();
    if (!event) return;
    // Only changes reach the chart: a level seen again is not news.
    const fact = JSON.stringify(event);
    if (fact === t.lastFact) return;
    t.lastFact = fact;
    if (event.type === 'REJECTED') this.d.metrics?.admission('rejected', rejectionReasonClass(event.reason));
    t.actor.send(event);
  }

  /**
   * Level-triggered from the VMI's side: a migrationState left open by a
   * migration that is over (its VMIM final, or gone with no actor left) blocks
   * every later migration of the VMI. This catches what the VMIM-keyed cleanup
   * cannot see, such as a hand-off written by a replica that lost the lease
   * after the new leader had already cleaned up. Cleanup asks the arbiter
   * before it removes any pod, so an unknown outcome is never guessed.
   */
  private async closeOrphanState(vmi: VirtualMachineInstance): Promise<void> {
    const ms = vmi.status?.migrationState;
    if (!ms?.migrationUid || ms.completed) return;
    const t = this.d.registry.get(ms.migrationUid);
    if (t && !FINAL_PHASES.has(t.session.phase)) return;
    const ns = vmi.metadata.namespace ?? 'default';
    const cached = this.d.vmims.list(ns);
    const raw = cached.find((o) => o.metadata?.uid === ms.migrationUid);
    if (raw) {
      const r = parseObject(VirtualMachineInstanceMigration, raw);
      if (r.ok && FINAL_PHASES.has((r.value.status?.phase || 'Pending') as MigrationPhase)) await this.d.cleanup.run(r.value);
      return;
    }
    if (t) return; // its final phase is still being written; the VMIM-keyed cleanup runs then
    // Not in the cache: the API server must confirm it is gone (the cache may lag); if it is there, its own reconcile follows.
    if (!(await migrationGone(ms.migrationUid, cached, async () => (await this.d.kube.listCustom(VMIM_RESOURCE, ns)).items))) return;
    // The VMIM is gone and nothing tracks it: only the VMI's own record is left to go by.
    await this.d.cleanup.run({
      metadata: { uid: ms.migrationUid, namespace: ns, name: `(deleted migration ${ms.migrationUid})` },
      spec: { vmiName: vmi.metadata.name },
      status: { conditions: [{ type: 'Failed', status: 'True', message: 'its VirtualMachineInstanceMigration was deleted before its outcome was recorded' }] },
    } as VirtualMachineInstanceMigration);
  }

  /** KubeVirt allows one active migration per VMI; the older VMIM wins. */
  private otherActiveMigration(s: MigrationSession, vmi: VirtualMachineInstance): string | undefined {
    const ms = vmi.status?.migrationState;
    if (ms?.migrationUid && ms.migrationUid !== s.uid && !ms.completed && !ms.failed) return ms.migrationUid;
    for (const o of this.d.registry.values()) {
      const os = o.session;
      if (os === s || os.vmiName !== s.vmiName || os.namespace !== s.namespace || FINAL_PHASES.has(os.phase)) continue;
      if (os.phase !== 'Pending' || os.enqueuedAt < s.enqueuedAt || (os.enqueuedAt === s.enqueuedAt && os.name < s.name)) return `${os.namespace}/${os.name}`;
    }
    return undefined;
  }
}
