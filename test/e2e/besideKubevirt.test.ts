/**
 * Beside KubeVirt, Ferry must not provoke virt-handler: the stand-in
 * (test/support/virtHandlerStandIn.ts) watches every VMI write and records
 * each time KubeVirt's node agent would take part in a migration. Standalone,
 * Ferry writes KubeVirt's hand-off markers on the VMI and the stand-in would
 * act (which shows it can see them); with --owner-label (beside KubeVirt) the
 * in-flight state lives on Ferry's VMIM, and the VMI only gets what a
 * completed KubeVirt migration leaves.
 */
import { closeBus, connectBus } from '../../src/bus/connection.js';
import { MigrationController } from '../../src/controller/controller.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { VMIM_RESOURCE } from '../../src/kube/client.js';
import { silentLogger } from '../../src/util/log.js';
import { getVmi, launcherPods, waitForPhase } from '../support/cluster.js';
import { watchAsVirtHandler } from '../support/virtHandlerStandIn.js';
import { waitFor } from '../support/wait.js';

const NODES = ['node-1', 'node-2', 'node-3'];
const OWNER = { key: 'ferry.dev/migration-controller', value: 'ferry' };
let env: DevEnvironment;

afterEach(async () => {
  await env?.stop();
});

async function migrate(name: string, vmi: string, labels: Record<string, string> = {}): Promise<string> {
  await env.kube.createCustom(VMIM_RESOURCE, 'default', {
    apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration',
    metadata: { name, namespace: 'default', labels }, spec: { vmiName: vmi },
  });
  return name;
}

test('standalone, Ferry writes KubeVirt\'s hand-off markers: virt-handler would take part (the stand-in sees them)', async () => {
  env = await startDevEnvironment({ nodes: 3, vms: 3, natsUrl: process.env['NATS_URL']!, timeScale: 4 });
  const standIn = watchAsVirtHandler(env.cluster.store, NODES);
  try {
    const done = await waitForPhase(env.kube, await migrate('standalone-1', 'vm-1'), ['Succeeded', 'Failed']);
    expect(done.status?.phase).toBe('Succeeded');
    const target = (await getVmi(env.kube, 'vm-1')).status!.nodeName!;
    expect(standIn.actions).toContainEqual({ node: target, vmi: 'default/vm-1', migrationUid: done.metadata.uid, action: 'prepare-target' });
    expect(standIn.actions).toContainEqual({ node: 'node-1', vmi: 'default/vm-1', migrationUid: done.metadata.uid, action: 'wait-for-target-ports' });
  } finally {
    standIn.stop();
  }
});

test('beside KubeVirt (--owner-label), virt-handler never acts on a Ferry migration, and the VMI ends as a completed KubeVirt migration leaves it', async () => {
  env = await startDevEnvironment({ nodes: 3, vms: 3, natsUrl: process.env['NATS_URL']!, timeScale: 4, controller: false });
  const nc = await connectBus({ servers: env.natsUrl, name: 'ferry-controller-beside-kubevirt', log: silentLogger });
  const controller = new MigrationController({ kube: env.kube, nc, log: silentLogger, ownerLabel: OWNER });
  await controller.start();
  const standIn = watchAsVirtHandler(env.cluster.store, NODES);
  try {
    const before = await getVmi(env.kube, 'vm-1');
    const [sourcePod] = await launcherPods(env.kube, before.metadata.uid!);
    const name = await migrate('beside-1', 'vm-1', { [OWNER.key]: OWNER.value });
    // In flight, the markers are on the VMIM only.
    const running = await waitFor('the migration to run', async () => {
      const m = (await env.kube.getCustom(VMIM_RESOURCE, 'default', name)) as { status?: { phase?: string; migrationState?: Record<string, unknown> } };
      return m.status?.phase === 'Running' || m.status?.phase === 'Succeeded' ? m : undefined;
    });
    expect(running.status?.migrationState).toMatchObject({ sourceNode: 'node-1' });
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed']);
    expect(done.status?.phase).toBe('Succeeded');

    expect(standIn.actions).toEqual([]);
    const vmi = await getVmi(env.kube, 'vm-1');
    const target = vmi.status!.nodeName!;
    expect(target).not.toBe('node-1');
    expect(vmi.metadata.labels?.['kubevirt.io/nodeName']).toBe(target);
    expect(vmi.metadata.labels?.['kubevirt.io/migrationTargetNodeName']).toBeUndefined();
    const ms = vmi.status!.migrationState!;
    expect(ms).toMatchObject({
      migrationUid: done.metadata.uid, sourceNode: 'node-1', sourcePod: sourcePod!.metadata.name, targetNode: target,
      completed: true, failed: false, mode: 'PreCopy', targetNodeDomainDetected: true,
    });
    expect(Date.parse(ms.endTimestamp!)).toBeGreaterThanOrEqual(Date.parse(ms.startTimestamp!));
    const pods = await waitFor('one launcher pod, on the target', async () => {
      const p = await launcherPods(env.kube, vmi.metadata.uid!);
      return p.length === 1 ? p : undefined;
    });
    expect(ms.targetPod).toBe(pods[0]!.metadata.name);
    expect(vmi.status?.activePods).toEqual({ [pods[0]!.metadata.uid!]: target });
    expect(done.status?.migrationState).toMatchObject({ completed: true, failed: false, targetNode: target });
  } finally {
    standIn.stop();
    await controller.stop();
    await closeBus(nc);
  }
});
