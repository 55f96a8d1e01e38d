import { Pod } from '../api/core.js';
import { parseObject } from '../api/meta.js';
import { Labels, type VirtualMachineInstance } from '../api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../api/vmim.js';
import { isConflict, isNotFound, statusCode, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { EventRecorder } from './eventRecorder.js';
import type { NodeSide } from './nodeSide.js';

/**
 * What a Failed migration leaves behind, undone level-triggered: the reconciler
 * calls `run` on every pass over a Failed VMIM until it returns, and the
 * workqueue retries it with back-off when it throws. It does two things:
 *
 * 1. Removes the target launcher pods, but only on positive knowledge that the
 *    guest does not run there (the arbiter's verdict `failed`, or a pod that never
 *    reached a node). Anything else leaves the pods alone and retries.
 * 2. Closes the VMI's migrationState when it still names this migration and is
 *    not completed, with a JSON patch whose `test` op on migrationUid keeps it
 *    off a newer migration's state. Until then no other migration of the VMI is
 *    admitted, so this must not be lost: it is retried until it lands.
 */
export interface CleanupDeps {
  kube: KubeClient;
  nodes: NodeSide;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  vmi: (namespace: string, name: string) => VirtualMachineInstance | undefined;
  podsOfVmi: (namespace: string, vmiUid: string) => Pod[];
  /** Throws when this replica may no longer write. */
  fence: () => Promise<void>;
  /** The node is confirmed lost (NotReady and its handler silent). */
  nodeLost: (node: string) => boolean;
}

export class FailureCleanup {
  /** Warned once per uid about a guest found on the target of a Failed migration. */
  private readonly warned = new Set<string>();

  constructor(private readonly d: CleanupDeps) {}

  /** True once nothing is left to undo; throws (to be retried) when something is left. */
  async run(vmim: VirtualMachineInstanceMigration, known: { reason?: string | undefined; aborted?: boolean | undefined } = {}): Promise<void> {
    const uid = vmim.metadata.uid ?? '';
    const ns = vmim.metadata.namespace ?? 'default';
    const vmi = this.d.vmi(ns, vmim.spec.vmiName);
    let pods = vmi?.metadata.uid ? this.d.podsOfVmi(ns, vmi.metadata.uid).filter((p) => p.metadata.labels?.[Labels.migrationJobUID] === uid) : [];
    const ms = vmi?.status?.migrationState;
    const open = ms?.migrationUid === uid && !ms.completed;
    // The cache may not have seen a target pod created just before the migration failed (a VMIM deleted in
    // Scheduling under delayed watch events): ask the API server before declaring nothing left (chaos seed 1000).
    if (pods.length === 0 && vmi?.metadata.uid) pods = await this.liveTargetPods(ns, uid, vmi.metadata.uid);
    if (pods.length === 0 && !open) {
      this.warned.delete(uid);
      return;
    }
    const log = this.d.log.child({ namespace: ns, vmim: vmim.metadata.name, uid });
    const reason = known.reason ?? failureReasonOf(vmim);
    if (pods.length > 0) await this.removeTargetPods(vmim, vmi, pods, log);
    if (open && vmi) await this.closeMigrationState(vmim, vmi, reason, known.aborted ?? false, log);
  }

  private async liveTargetPods(ns: string, uid: string, vmiUid: string): Promise<Pod[]> {
    const list = await this.d.kube.core.listNamespacedPod({ namespace: ns, labelSelector: `${Labels.migrationJobUID}=${uid}` });
    return list.items.flatMap((raw) => {
      const r = parseObject(Pod, raw);
      return r.ok && r.value.metadata.labels?.[Labels.createdBy] === vmiUid && !r.value.metadata.deletionTimestamp ? [r.value] : [];
    });
  }

  private async removeTargetPods(vmim: VirtualMachineInstanceMigration, vmi: VirtualMachineInstance | undefined, pods: Pod[], log: Logger): Promise<void> {
    const uid = vmim.metadata.uid ?? '';
    const ns = vmim.metadata.namespace ?? 'default';
    const placed = pods.filter((p) => p.spec?.nodeName);
    const targetNode = placed[0]?.spec?.nodeName;
    if (targetNode) {
      const ms = vmi?.status?.migrationState;
      const sourceNode = ms?.migrationUid === uid ? ms.sourceNode : vmi?.status?.nodeName;
      const domain = `${ns}_${vmim.spec.vmiName}`;
      const sourceLost = sourceNode !== undefined && this.d.nodeLost(sourceNode);
      const verdict = await this.d.nodes.inspect({ migrationUid: uid, domain, sourceNode, targetNode, sourceLost });
      if (verdict.kind !== 'failed') {
        this.waiting(vmim, `not removing target pod ${placed.map((p) => p.metadata.name).join(', ')} on ${targetNode}: ${verdict.why}`, verdict.kind === 'completed' ? 'GuestOnTarget' : 'CleanupWaiting');
      }
      // Drop what the target prepared (an incoming domain holds no guest: the arbiter said so). Where a node's
      // daemon holds it (not a launcher pod of its own), it outlives the pod: so a target that did not answer is
      // asked again before its pod goes, unless its node is lost (chaos seed 1000: an incoming domain was left on
      // a node whose handler was restarting when the cleanup ran).
      if (!verdict.target.answered && !this.d.nodeLost(targetNode)) {
        this.waiting(vmim, `not removing target pod ${placed.map((p) => p.metadata.name).join(', ')} on ${targetNode} yet: its handler did not answer, and what it prepared must be cancelled first`);
      }
      // A restarted handler has no record of the job but its hypervisor may still hold the incoming domain.
      const prepared = verdict.target.answered && (verdict.target.job ? verdict.target.job.state !== 'cancelled' : verdict.target.domain?.state === 'incoming');
      if (prepared) {
        try {
          await this.d.nodes.command(targetNode, 'abort', { migrationUid: uid, attempt: 1, vmi: `${ns}/${vmim.spec.vmiName}`, reason: failureReasonOf(vmim) });
        } catch (err) {
          // Any answer (cancelled, already finished, not found) settles it; silence or a failed cancel does not.
          this.waiting(vmim, `not removing target pod on ${targetNode} yet: telling its handler to cancel what it prepared failed (${String(err)})`);
        }
      }
    }
    await this.d.fence();
    for (const pod of pods) {
      try {
        await this.d.kube.core.deleteNamespacedPod({ namespace: ns, name: pod.metadata.name, body: { preconditions: { uid: pod.metadata.uid } } });
        log.info({ pod: pod.metadata.name, node: pod.spec?.nodeName }, 'removed target pod of failed migration');
      } catch (err) {
        // Gone is done. A 409 (the uid precondition, or a refused write) is not proof of anything: retried.
        if (isNotFound(err)) continue;
        throw err;
      }
    }
  }

  /** Says once per migration (as an Event) why its cleanup waits, then throws so the queue retries it. */
  private waiting(vmim: VirtualMachineInstanceMigration, msg: string, reason: 'GuestOnTarget' | 'CleanupWaiting' = 'CleanupWaiting'): never {
    const uid = vmim.metadata.uid ?? '';
    if (!this.warned.has(uid)) {
      this.warned.add(uid);
      this.d.events.record(involved(vmim), 'Warning', reason, msg);
    }
    throw new Error(msg);
  }

  private async closeMigrationState(vmim: VirtualMachineInstanceMigration, vmi: VirtualMachineInstance, reason: string, abortKnown: boolean, log: Logger): Promise<void> {
    const uid = vmim.metadata.uid ?? '';
    const ns = vmim.metadata.namespace ?? 'default';
    const aborted = abortKnown || (vmim.status?.conditions ?? []).some((c) => c.type === 'migrationAbortRequested' && c.status === 'True');
    const closed: Record<string, unknown> = {
      failed: true,
      completed: true,
      failureReason: reason,
      endTimestamp: new Date(this.d.clock.now()).toISOString(),
      ...(aborted || vmi.status?.migrationState?.abortRequested ? { abortStatus: 'Succeeded' } : {}),
    };
    await this.d.fence();
    let updated: unknown;
    try {
      updated = await this.d.kube.patchCustomStatusJson(VMI_RESOURCE, ns, vmim.spec.vmiName, [
        { op: 'test', path: '/status/migrationState/migrationUid', value: uid },
        ...Object.entries(closed).map(([k, v]) => ({ op: 'add' as const, path: `/status/migrationState/${k}`, value: v })),
      ]);
    } catch (err) {
      // The state names another migration now (the test failed: 422), or the VMI is gone: nothing of ours is left
      // open. A 409 is a refused write with nothing changed: retried.
      if (isNotFound(err) || statusCode(err) === 422) return;
      throw err;
    }
    await this.d.kube
      .patchCustom(VMI_RESOURCE, ns, vmim.spec.vmiName, { metadata: { labels: { [Labels.migrationTargetNodeName]: null } } })
      .catch((err: unknown) => log.warn({ err: String(err) }, 'could not remove the migration target label'));
    // The VMIM keeps a copy of the final state, as KubeVirt's does.
    const state = (updated as { status?: { migrationState?: unknown } } | undefined)?.status?.migrationState;
    if (state) {
      await this.d.kube.patchCustomStatus(VMIM_RESOURCE, ns, vmim.metadata.name, { status: { migrationState: state } }).catch(() => undefined);
    }
    log.info({ reason }, 'closed the VMI\'s migration state');
  }
}

function failureReasonOf(vmim: VirtualMachineInstanceMigration): string {
  return (vmim.status?.conditions ?? []).find((c) => c.type === 'Failed')?.message ?? 'migration failed';
}

function involved(vmim: VirtualMachineInstanceMigration) {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', namespace: vmim.metadata.namespace ?? 'default', name: vmim.metadata.name, uid: vmim.metadata.uid };
}
