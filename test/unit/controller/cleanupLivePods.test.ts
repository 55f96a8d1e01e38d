import { FailureCleanup, type CleanupDeps } from '../../../src/controller/cleanup.js';
import { CommandError } from '../../../src/bus/rpc.js';
import { Labels, type VirtualMachineInstance } from '../../../src/api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { ManualClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';

/**
 * Chaos campaign seed 1000: a VMIM deleted in Scheduling failed while the
 * controller's pod cache had not seen its target pod yet (watch events were
 * delayed); cleanup found "nothing left", the finalizer went, and the target
 * pod stayed for good. Cleanup now asks the API server before it says so.
 */
describe('failure cleanup and a target pod the cache has not seen', () => {
  const vmi = { metadata: { name: 'vm-1', namespace: 'default', uid: 'vmi-uid' }, spec: {}, status: { nodeName: 'node-1' } } as unknown as VirtualMachineInstance;
  const vmim = { metadata: { name: 'm', namespace: 'default', uid: 'm-uid' }, spec: { vmiName: 'vm-1' }, status: { phase: 'Failed' } } as unknown as VirtualMachineInstanceMigration;
  const targetPod = (node?: string) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'virt-launcher-vm-1-m', namespace: 'default', uid: 'pod-uid', labels: { [Labels.migrationJobUID]: 'm-uid', [Labels.createdBy]: 'vmi-uid', [Labels.app]: 'virt-launcher' } },
    spec: { containers: [{ name: 'compute' }], ...(node ? { nodeName: node } : {}) },
  });

  function deps(live: unknown[]) {
    const deleted: string[] = [];
    const d = {
      kube: { core: {
        listNamespacedPod: async (q: { labelSelector: string }) => ({ items: q.labelSelector === `${Labels.migrationJobUID}=m-uid` ? live : [] }),
        deleteNamespacedPod: async (q: { name: string }) => { deleted.push(q.name); return {}; },
      } },
      nodes: { inspect: async () => ({ kind: 'failed', why: 'the guest runs on the source', source: { answered: true }, target: { answered: true } }), command: async () => ({}) },
      events: { record: () => undefined },
      clock: new ManualClock(0),
      log: silentLogger,
      vmi: () => vmi,
      podsOfVmi: () => [],
      fence: async () => undefined,
      nodeLost: () => false,
    } as unknown as CleanupDeps;
    return { d, deleted };
  }

  it('removes a target pod only the API server knows of, placed or not', async () => {
    for (const pod of [targetPod(), targetPod('node-2')]) {
      const { d, deleted } = deps([pod]);
      await new FailureCleanup(d).run(vmim);
      expect(deleted).toEqual(['virt-launcher-vm-1-m']);
    }
  });

  it('retries a delete the API server refused with 409 (nothing changed, so no event will say so) rather than take it as done', async () => {
    const { d, deleted } = deps([targetPod('node-2')]);
    let refusals = 1;
    const core = (d.kube as unknown as { core: { deleteNamespacedPod: (q: { name: string }) => Promise<unknown> } }).core;
    const real = core.deleteNamespacedPod;
    core.deleteNamespacedPod = async (q) => {
      if (refusals-- > 0) throw Object.assign(new Error('Operation cannot be fulfilled on pods: the object has been modified'), { code: 409 });
      return real(q);
    };
    const cleanup = new FailureCleanup(d);
    await expect(cleanup.run(vmim)).rejects.toThrow(/cannot be fulfilled/);
    expect(deleted).toEqual([]);
    await cleanup.run(vmim);
    expect(deleted).toEqual(['virt-launcher-vm-1-m']);
  });

  it('is done when the API server has none either', async () => {
    const { d, deleted } = deps([]);
    await new FailureCleanup(d).run(vmim);
    expect(deleted).toEqual([]);
  });
});

/**
 * Chaos campaign seed 1000 (merged main): a migration failed in TargetReady while its target's handler was down
 * (killed). The source's answer was enough for a `failed` verdict, so the cleanup removed the target pod and closed
 * the state, but nobody told the target to cancel: the incoming domain its node's daemon held was left for good.
 */
describe('failure cleanup and a target that does not answer', () => {
  const vmi = { metadata: { name: 'vm-1', namespace: 'default', uid: 'vmi-uid' }, spec: {}, status: { nodeName: 'node-1', migrationState: { migrationUid: 'm-uid', sourceNode: 'node-1', targetNode: 'node-2' } } } as unknown as VirtualMachineInstance;
  const vmim = { metadata: { name: 'm', namespace: 'default', uid: 'm-uid' }, spec: { vmiName: 'vm-1' }, status: { phase: 'Failed' } } as unknown as VirtualMachineInstanceMigration;
  const pod = {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'virt-launcher-vm-1-m', namespace: 'default', uid: 'pod-uid', labels: { [Labels.migrationJobUID]: 'm-uid', [Labels.createdBy]: 'vmi-uid', [Labels.app]: 'virt-launcher' } },
    spec: { containers: [{ name: 'compute' }], nodeName: 'node-2' },
  };
  const unanswered = { kind: 'failed', why: 'the guest runs on the source and no migration of it runs there', source: { answered: true }, target: { answered: false } };
  const incoming = { kind: 'failed', why: 'the guest runs on the source', source: { answered: true }, target: { answered: true, domain: { state: 'incoming' } } };

  function world(o: { verdicts: unknown[]; lost?: boolean; abort?: () => Promise<unknown> }) {
    const deleted: string[] = [];
    const aborts: string[] = [];
    const events: string[] = [];
    const verdicts = [...o.verdicts];
    const d = {
      kube: {
        core: {
          listNamespacedPod: async () => ({ items: [] }),
          deleteNamespacedPod: async (q: { name: string }) => { deleted.push(q.name); return {}; },
        },
        patchCustomStatusJson: async () => ({}),
        patchCustom: async () => ({}),
        patchCustomStatus: async () => ({}),
      },
      nodes: {
        inspect: async () => verdicts.shift(),
        command: async (node: string, cmd: string) => { aborts.push(`${cmd}@${node}`); return (o.abort ?? (async () => ({})))(); },
      },
      events: { record: (_o: unknown, _t: string, reason: string) => events.push(reason) },
      clock: new ManualClock(0),
      log: silentLogger,
      vmi: () => vmi,
      podsOfVmi: () => [pod],
      fence: async () => undefined,
      nodeLost: () => o.lost ?? false,
    } as unknown as CleanupDeps;
    return { d, deleted, aborts, events };
  }

  it('keeps the target pod and retries until the target answers, then tells it to cancel and removes the pod', async () => {
    const w = world({ verdicts: [unanswered, unanswered, incoming] });
    const cleanup = new FailureCleanup(w.d);
    await expect(cleanup.run(vmim)).rejects.toThrow(/handler did not answer/);
    await expect(cleanup.run(vmim)).rejects.toThrow(/handler did not answer/);
    expect({ deleted: w.deleted, aborts: w.aborts, events: w.events }).toEqual({ deleted: [], aborts: [], events: ['CleanupWaiting'] });
    await cleanup.run(vmim);
    expect({ deleted: w.deleted, aborts: w.aborts }).toEqual({ deleted: ['virt-launcher-vm-1-m'], aborts: ['abort@node-2'] });
  });

  it('goes ahead when the target node is lost (nothing there will answer again)', async () => {
    const w = world({ verdicts: [unanswered], lost: true });
    await new FailureCleanup(w.d).run(vmim);
    expect(w.deleted).toEqual(['virt-launcher-vm-1-m']);
  });

  it('a cancel that is lost on the way or fails is asked again; any answer settles it', async () => {
    for (const err of [new CommandError('timeout', 'node-2', 'abort', 'no answer in 5000 ms'), new CommandError('driver-error', 'node-2', 'abort', 'cancelling arrival failed')]) {
      const w = world({ verdicts: [incoming], abort: async () => { throw err; } });
      await expect(new FailureCleanup(w.d).run(vmim)).rejects.toThrow(/cancel what it prepared failed/);
      expect(w.deleted).toEqual([]);
    }
    const answered = world({ verdicts: [incoming], abort: async () => ({ ok: true, state: 'not-found' }) });
    await new FailureCleanup(answered.d).run(vmim);
    expect(answered.deleted).toEqual(['virt-launcher-vm-1-m']);
  });
});
