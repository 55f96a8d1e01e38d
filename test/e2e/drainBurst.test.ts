import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { VMI_RESOURCE, VMIM_RESOURCE } from '../../src/kube/client.js';
import type { VirtualMachineInstanceMigration } from '../../src/api/vmim.js';
import { waitFor } from '../support/wait.js';

/**
 * Two nodes drained a moment apart, as a drain of several nodes cordons them
 * one after another: no VM is placed on the second node in between (it would
 * fail there, or land and have to move again). Each VM moves once.
 */
describe('a burst of cordons', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    env = await startDevEnvironment({ nodes: 5, vms: 10, natsUrl: process.env['NATS_URL']!, timeScale: 8 });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('VMs of the first node are not sent to the second, cordoned 150 ms later; every VM moves once', async () => {
    const drained = ['node-1', 'node-2'];
    const vmis = (await env.kube.listCustom(VMI_RESOURCE, 'default')).items as Array<{ metadata: { name: string }; status?: { nodeName?: string } }>;
    const leaving = vmis.filter((v) => drained.includes(v.status?.nodeName ?? '')).map((v) => v.metadata.name);
    expect(leaving.length).toBe(4);
    const drain = (node: string) => env.kube.patchNode(node, { spec: { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } });
    await drain('node-1');
    await new Promise((r) => setTimeout(r, 150));
    await drain('node-2');

    const final = await waitFor('every VM off the drained nodes and every migration final', async () => {
      const now = (await env.kube.listCustom(VMI_RESOURCE, 'default')).items as typeof vmis;
      if (now.some((v) => drained.includes(v.status?.nodeName ?? ''))) return undefined;
      const vmims = (await env.kube.listCustom(VMIM_RESOURCE, 'default')).items as VirtualMachineInstanceMigration[];
      return vmims.every((m) => m.status?.phase === 'Succeeded' || m.status?.phase === 'Failed') ? vmims : undefined;
    }, { timeoutMs: 40_000 });
    expect(final.map((m) => m.status?.phase)).toEqual(leaving.map(() => 'Succeeded'));
    expect(final.map((m) => m.spec.vmiName).sort()).toEqual([...leaving].sort());
    for (const m of final) expect(drained).not.toContain(m.status?.migrationState?.targetNode);
  }, 60_000);
});
