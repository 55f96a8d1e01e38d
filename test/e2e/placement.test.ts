/**
 * Where a migration goes, and what the VMI says about it while it goes
 * (issue 10, D2 and D3): the user's node choice is honoured, and each new
 * migration replaces the VMI's migrationState as KubeVirt does.
 */
import { FerryConfig } from '../../src/config/ferryConfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { createVmim, getVmi, launcherPods, waitForPhase } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';

describe('the target node', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    env = await startDevEnvironment({ nodes: 4, vms: 4, natsUrl: process.env['NATS_URL']!, timeScale: 4 });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('ferry migrate --node (addedNodeSelector hostname) lands on the named node, whichever placement would pick', async () => {
    const vmi = await getVmi(env.kube, 'vm-1');
    const source = vmi.status!.nodeName!;
    const others = ['node-1', 'node-2', 'node-3', 'node-4'].filter((n) => n !== source);
    // Every other node in turn, so the placement's own choice cannot pass by luck.
    for (const node of others) {
      const name = await createVmim(env.kube, 'vm-1', { addedNodeSelector: { 'kubernetes.io/hostname': node } });
      const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
      expect(done.status?.phase).toBe('Succeeded');
      expect((await getVmi(env.kube, 'vm-1')).status?.nodeName).toBe(node);
    }
  }, 90_000);

  test('a label selector is honoured by the target pod', async () => {
    const vmi = await getVmi(env.kube, 'vm-2');
    const source = vmi.status!.nodeName!;
    const labelled = ['node-1', 'node-2', 'node-3', 'node-4'].filter((n) => n !== source).at(-1)!;
    await env.kube.patchNode(labelled, { metadata: { labels: { zone: 'a' } } });
    const name = await createVmim(env.kube, 'vm-2', { addedNodeSelector: { zone: 'a' } });
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Succeeded');
    expect((await getVmi(env.kube, 'vm-2')).status?.nodeName).toBe(labelled);
  }, 40_000);

  test('a node that does not exist fails the migration with the scheduler\'s reason instead of reporting success', async () => {
    const vmi = await getVmi(env.kube, 'vm-3');
    const source = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-3', {
      addedNodeSelector: { 'kubernetes.io/hostname': 'node-99' },
      annotations: { 'kubevirt.io/migrationUnschedulablePodTimeoutSeconds': '1' },
    });
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Failed');
    expect(done.status?.conditions?.find((c) => c.type === 'Failed')?.message).toMatch(/unschedulable/i);
    expect((await getVmi(env.kube, 'vm-3')).status?.nodeName).toBe(source);
    await waitFor('the target pod to be removed', async () => (await launcherPods(env.kube, vmi.metadata.uid!)).length === 1);
  }, 40_000);
});

describe('the VMI\'s migration state', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    const config = FerryConfig.parse({ limits: { defaultNicCapacity: '256Mi' } });
    env = await startDevEnvironment({ nodes: 3, vms: 2, natsUrl: process.env['NATS_URL']!, config, timeScale: 2 });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('describes only the migration under way: nothing of an earlier one survives', async () => {
    const first = await createVmim(env.kube, 'vm-2');
    const one = await waitForPhase(env.kube, first, ['Succeeded', 'Failed'], 30_000);
    expect(one.status?.phase).toBe('Succeeded');
    const earlier = (await getVmi(env.kube, 'vm-2')).status!.migrationState!;
    expect(earlier).toMatchObject({ completed: true, migrationUid: one.metadata.uid });

    const second = await createVmim(env.kube, 'vm-2');
    const running = await waitForPhase(env.kube, second, ['Running'], 30_000);
    const now = await waitFor('the new start time', async () => {
      const ms = (await getVmi(env.kube, 'vm-2')).status?.migrationState;
      return ms && ms.migrationUid === running.metadata.uid && ms.startTimestamp ? ms : undefined;
    });
    expect(now.completed).toBeUndefined();
    expect(now.failed).toBeUndefined();
    expect(now.endTimestamp).toBeUndefined();
    expect(now.abortStatus).toBeUndefined();
    expect(Date.parse(now.startTimestamp!)).toBeGreaterThanOrEqual(Date.parse(earlier.endTimestamp!));
    expect(now.sourceNode).toBe(earlier.targetNode);
    expect((await waitForPhase(env.kube, second, ['Succeeded', 'Failed'], 30_000)).status?.phase).toBe('Succeeded');
  }, 70_000);
});
