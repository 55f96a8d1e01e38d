import { FerryConfig } from '../../src/config/ferryConfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { KUBEVIRT_RESOURCE, VMI_RESOURCE } from '../../src/kube/client.js';
import { MIGRATION_POLICY_RESOURCE } from '../../src/api/migrationPolicy.js';
import { createVmim, getVmi, waitForPhase } from '../support/cluster.js';

describe('MigrationPolicy and convergence', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    const config = FerryConfig.parse({ limits: { defaultNicCapacity: '256Mi' } });
    env = await startDevEnvironment({ nodes: 3, vms: 3, natsUrl: process.env['NATS_URL']!, config, timeScale: 4 });
    await env.kube.patchCustom(KUBEVIRT_RESOURCE, 'kubevirt', 'kubevirt', { spec: { configuration: { migrations: { progressTimeout: 2 } } } });
    // vm-1 and vm-2 re-dirty 1 GiB faster than a 256Mi/s NIC carries it: even the
    // stepped-up max downtime (2 s) cannot cover it.
    for (const vm of ['vm-1', 'vm-2']) {
      await env.kube.patchCustom(VMI_RESOURCE, 'default', vm, { metadata: { labels: { workload: vm === 'vm-1' ? 'database' : 'batch' }, annotations: { 'ferry.dev/sim-dirty-rate': '2Gi', 'ferry.dev/sim-working-set': '1Gi' } } });
    }
    await env.kube.custom.createClusterCustomObject({
      ...MIGRATION_POLICY_RESOURCE,
      body: {
        apiVersion: 'migrations.kubevirt.io/v1alpha1',
        kind: 'MigrationPolicy',
        metadata: { name: 'databases-may-post-copy' },
        spec: { selectors: { virtualMachineInstanceSelector: { workload: 'database' } }, allowPostCopy: true },
      },
    });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('a VM whose policy allows post-copy finishes in post-copy when pre-copy stalls, and the policy is recorded', async () => {
    const name = await createVmim(env.kube, 'vm-1');
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Succeeded');
    const ms = (await getVmi(env.kube, 'vm-1')).status?.migrationState;
    expect(ms).toMatchObject({ mode: 'PostCopy', completed: true, migrationPolicyName: 'databases-may-post-copy' });
    expect(ms?.migrationConfiguration).toMatchObject({ allowPostCopy: true });
  }, 40_000);

  test('the same VM without such a policy is aborted when it stalls and stays where it was', async () => {
    const before = await getVmi(env.kube, 'vm-2');
    const name = await createVmim(env.kube, 'vm-2');
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Failed');
    expect(done.status?.conditions?.find((c) => c.type === 'Failed')?.message).toMatch(/stuck for 2s/);
    const after = await getVmi(env.kube, 'vm-2');
    expect(after.status?.nodeName).toBe(before.status?.nodeName);
    expect(after.status?.migrationState).toMatchObject({ failed: true, mode: 'PreCopy' });
    expect(after.status?.migrationState?.migrationPolicyName).toBeUndefined();
  }, 40_000);
});
