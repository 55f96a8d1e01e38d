import { FailureCleanup, type CleanupDeps } from '../../../src/controller/cleanup.js';
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

  it('is done when the API server has none either', async () => {
    const { d, deleted } = deps([]);
    await new FailureCleanup(d).run(vmim);
    expect(deleted).toEqual([]);
  });
});
