import { FerryConfig } from '../../src/config/ferryConfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { KUBEVIRT_RESOURCE, VMI_RESOURCE } from '../../src/kube/client.js';
import { MIGRATION_POLICY_RESOURCE } from '../../src/api/migrationPolicy.js';
import { createVmim, getVmi, waitForPhase } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';

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

  test('a policy the controller cannot read is reported on the policy and skipped; the next matching policy applies', async () => {
    await env.kube.patchCustom(VMI_RESOURCE, 'default', 'vm-3', { metadata: { labels: { workload: 'web' } } });
    const mkPolicy = (name: string, spec: object) =>
      env.kube.custom.createClusterCustomObject({
        ...MIGRATION_POLICY_RESOURCE,
        body: { apiVersion: 'migrations.kubevirt.io/v1alpha1', kind: 'MigrationPolicy', metadata: { name }, spec: { selectors: { virtualMachineInstanceSelector: { workload: 'web' } }, ...spec } },
      });
    // On a tie KubeVirt takes the smallest name: each bad policy would win over z-web.
    await mkPolicy('a-negative-bandwidth', { bandwidthPerMigration: '-5Gi' });
    await mkPolicy('b-garbage-bandwidth', { bandwidthPerMigration: 'abc' });
    await mkPolicy('c-negative-timeout', { completionTimeoutPerGiB: -1 });
    await mkPolicy('z-web', { allowAutoConverge: true });

    const name = await createVmim(env.kube, 'vm-3');
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Succeeded');
    expect((await getVmi(env.kube, 'vm-3')).status?.migrationState).toMatchObject({ migrationPolicyName: 'z-web', migrationConfiguration: { allowAutoConverge: true } });

    const warnings = await waitFor('an InvalidPolicy event on each bad policy', async () => {
      const list = await env.kube.core.listNamespacedEvent({ namespace: 'default' });
      const mine = list.items.filter((e) => e.involvedObject.kind === 'MigrationPolicy' && e.reason === 'InvalidPolicy');
      return mine.length >= 3 ? mine : undefined;
    });
    const byPolicy = new Map(warnings.map((e) => [e.involvedObject.name, e]));
    expect(byPolicy.get('a-negative-bandwidth')).toMatchObject({ type: 'Warning', message: expect.stringMatching(/spec\.bandwidthPerMigration: must not be negative/) });
    expect(byPolicy.get('b-garbage-bandwidth')?.message).toMatch(/spec\.bandwidthPerMigration: "abc" is not a Kubernetes quantity/);
    expect(byPolicy.get('c-negative-timeout')?.message).toMatch(/spec\.completionTimeoutPerGiB: Too small/);
    expect(byPolicy.has('z-web')).toBe(false);
  }, 40_000);

  test('a VMIM for a VMI that exists but fails the schema says it is invalid, not missing', async () => {
    // The API server stores what it is given; this VMI's spec is no longer an object.
    await env.kube.patchCustom(VMI_RESOURCE, 'default', 'vm-2', { spec: 5 });
    const name = await createVmim(env.kube, 'vm-2');
    const failed = await waitForPhase(env.kube, name, ['Failed', 'Succeeded']);
    const message = failed.status?.conditions?.find((c) => c.type === 'Failed')?.message;
    expect(message).toMatch(/VMI default\/vm-2 fails validation: spec: /);
    expect(message).not.toMatch(/does not exist/);
  });
});
