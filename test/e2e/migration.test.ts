import { FerryConfig } from '../../src/config/ferryConfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { describeApiError, KUBEVIRT_RESOURCE, VMIM_RESOURCE } from '../../src/kube/client.js';
import { WebhookNames, WEBHOOK_CONFIGURATION } from '../../src/webhook/registration.js';
import { createVmim, getVmi, getVmim, launcherPods, waitForPhase } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';

const PHASES = ['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running', 'Succeeded'];

async function domainsOn(env: DevEnvironment, node: string): Promise<Array<{ name: string; state: string }>> {
  return env.agents.get(node)!.driver.listDomains();
}

describe('a VMIM on the embedded cluster', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    env = await startDevEnvironment({ nodes: 3, vms: 6, natsUrl: process.env['NATS_URL']!, timeScale: 4 });
  });
  afterAll(async () => {
    await env?.stop();
  });

  /**
   * Runs `fn` with Ferry's VMIM webhook taken out of the configuration: what a migration created before the
   * webhook was installed, or in a race between two creates, looks like to the controller.
   */
  async function withoutMigrationWebhook<T>(fn: () => Promise<T>): Promise<T> {
    const api = env.kube.kc.makeApiClient(AdmissionregistrationV1Api);
    const current = await api.readValidatingWebhookConfiguration({ name: WEBHOOK_CONFIGURATION });
    const all = current.webhooks ?? [];
    await api.replaceValidatingWebhookConfiguration({ name: WEBHOOK_CONFIGURATION, body: { ...current, webhooks: all.filter((w) => w.name !== WebhookNames.migration) } });
    try {
      return await fn();
    } finally {
      const now = await api.readValidatingWebhookConfiguration({ name: WEBHOOK_CONFIGURATION });
      await api.replaceValidatingWebhookConfiguration({ name: WEBHOOK_CONFIGURATION, body: { ...now, webhooks: all } });
    }
  }

  test('moves the VM to another node and walks through every KubeVirt phase', async () => {
    const before = await getVmi(env.kube, 'vm-1');
    const sourceNode = before.status!.nodeName!;
    const [sourcePod] = await launcherPods(env.kube, before.metadata.uid!);
    const name = await createVmim(env.kube, 'vm-1');

    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed']);
    expect(done.status?.phase).toBe('Succeeded');
    expect(done.status?.phaseTransitionTimestamps?.map((p) => p.phase)).toEqual(PHASES);
    expect(done.metadata.labels?.['kubevirt.io/vmi-name']).toBe('vm-1');

    const vmi = await getVmi(env.kube, 'vm-1');
    const ms = vmi.status!.migrationState!;
    expect(vmi.status?.nodeName).not.toBe(sourceNode);
    expect(vmi.metadata.labels?.['kubevirt.io/nodeName']).toBe(vmi.status?.nodeName);
    expect(ms).toMatchObject({ migrationUid: done.metadata.uid, sourceNode, sourcePod: sourcePod!.metadata.name, targetNode: vmi.status?.nodeName, completed: true, failed: false, mode: 'PreCopy' });
    expect(Date.parse(ms.endTimestamp!)).toBeGreaterThanOrEqual(Date.parse(ms.startTimestamp!));
    expect(done.status?.migrationState?.targetNode).toBe(vmi.status?.nodeName);

    // Exactly one launcher pod, running on the new node; the guest runs there only.
    const pods = await waitFor('source pod to be gone', async () => {
      const p = await launcherPods(env.kube, vmi.metadata.uid!);
      return p.length === 1 ? p : undefined;
    });
    expect(pods[0]!.spec?.nodeName).toBe(vmi.status?.nodeName);
    expect(pods[0]!.metadata.name).toBe(ms.targetPod);
    expect(pods[0]!.status?.phase).toBe('Running');
    expect(Object.values(vmi.status?.activePods ?? {})).toEqual([vmi.status?.nodeName]);
    expect((await domainsOn(env, vmi.status!.nodeName!)).filter((d) => d.name === 'default_vm-1').map((d) => d.state)).toEqual(['running']);
    expect((await domainsOn(env, sourceNode)).filter((d) => d.name === 'default_vm-1')).toEqual([]);
  });

  test('a second migration of a VMI that is already migrating is refused at create, with the reason', async () => {
    const first = await createVmim(env.kube, 'vm-2');
    const refused = await createVmim(env.kube, 'vm-2').then(() => 'created', (err: unknown) => describeApiError(err));
    expect(refused).toMatch(/^403: admission webhook "vmim-create-validator.ferry.dev" denied the request: in-flight migration detected: migration default\/vm-2-mig-\S+ \(phase \w+\) is in progress for VMI default\/vm-2$/);
    expect((await waitForPhase(env.kube, first, ['Succeeded', 'Failed'])).status?.phase).toBe('Succeeded');
  });

  test('a second migration that got past admission (created at the same instant) is failed by the controller', async () => {
    const [first, second] = await withoutMigrationWebhook(() => Promise.all([createVmim(env.kube, 'vm-2'), createVmim(env.kube, 'vm-2')]));
    const phases = await Promise.all([first, second].map((n) => waitForPhase(env.kube, n, ['Failed', 'Succeeded'])));
    expect(phases.map((m) => m.status?.phase).sort()).toEqual(['Failed', 'Succeeded']);
    const failed = phases.find((m) => m.status?.phase === 'Failed')!;
    expect(failed.status?.conditions?.find((c) => c.type === 'Failed')?.message).toMatch(/another migration job .* is in progress/);
  });

  test('a VMIM naming a VMI that does not exist is refused at create; one that got past admission fails and says so', async () => {
    const refused = await createVmim(env.kube, 'no-such-vm').then(() => 'created', (err: unknown) => describeApiError(err));
    expect(refused).toBe('403: admission webhook "vmim-create-validator.ferry.dev" denied the request: VMI default/no-such-vm does not exist');
    const name = await withoutMigrationWebhook(() => createVmim(env.kube, 'no-such-vm'));
    const failed = await waitForPhase(env.kube, name, ['Failed']);
    expect(failed.status?.conditions?.find((c) => c.type === 'Failed')?.message).toMatch(/no-such-vm does not exist/);
  });

  test('an unschedulable target pod fails the migration with the scheduler\'s reason and leaves the VM alone', async () => {
    const vmi = await getVmi(env.kube, 'vm-3');
    const sourceNode = vmi.status!.nodeName!;
    const others = ['node-1', 'node-2', 'node-3'].filter((n) => n !== sourceNode);
    for (const n of others) await env.kube.patchNode(n, { spec: { unschedulable: true } });
    try {
      const name = await createVmim(env.kube, 'vm-3', { annotations: { 'kubevirt.io/migrationUnschedulablePodTimeoutSeconds': '1' } });
      const failed = await waitForPhase(env.kube, name, ['Failed', 'Succeeded']);
      expect(failed.status?.phase).toBe('Failed');
      expect(failed.status?.conditions?.find((c) => c.type === 'Failed')?.message).toMatch(/unschedulable/i);
      const after = await getVmi(env.kube, 'vm-3');
      expect(after.status?.nodeName).toBe(sourceNode);
      const pods = await waitFor('target pod to be removed', async () => {
        const p = await launcherPods(env.kube, vmi.metadata.uid!);
        return p.length === 1 ? p : undefined;
      });
      expect(pods[0]!.spec?.nodeName).toBe(sourceNode);
      expect((await domainsOn(env, sourceNode)).find((d) => d.name === 'default_vm-3')?.state ?? 'running').toBe('running');
    } finally {
      for (const n of others) await env.kube.patchNode(n, { spec: { unschedulable: false } });
    }
  });
});

describe('aborting and restarting', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    // Slow NICs so that a migration is still running when the test acts on it.
    const config = FerryConfig.parse({ limits: { defaultNicCapacity: '64Mi' } });
    env = await startDevEnvironment({ nodes: 3, vms: 3, natsUrl: process.env['NATS_URL']!, config });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('deleting the VMIM mid-Running aborts it: the VM stays on the source, the target pod is removed', async () => {
    const vmi = await getVmi(env.kube, 'vm-2'); // 2Gi at 64Mi/s: ~30 s if left alone
    const sourceNode = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-2');
    const running = await waitForPhase(env.kube, name, ['Running']);
    await waitFor('some data transferred', async () => ((await getVmim(env.kube, name))?.status?.progress?.dataProcessed ?? 0) > 0);
    const targetNode = (await getVmi(env.kube, 'vm-2')).status?.migrationState?.targetNode;
    expect(targetNode).toBeDefined();

    await env.kube.deleteCustom(VMIM_RESOURCE, 'default', name);
    await waitFor('the VMIM to be gone', async () => (await getVmim(env.kube, name)) === undefined);

    const after = await getVmi(env.kube, 'vm-2');
    expect(after.status?.nodeName).toBe(sourceNode);
    expect(after.status?.migrationState).toMatchObject({ migrationUid: running.metadata.uid, failed: true, abortStatus: 'Succeeded', abortRequested: true });
    const pods = await waitFor('target pod removed', async () => {
      const p = await launcherPods(env.kube, vmi.metadata.uid!);
      return p.length === 1 ? p : undefined;
    });
    expect(pods[0]!.spec?.nodeName).toBe(sourceNode);
    expect((await domainsOn(env, sourceNode)).find((d) => d.name === 'default_vm-2')?.state).toBe('running');
    expect((await domainsOn(env, targetNode!)).find((d) => d.name === 'default_vm-2')).toBeUndefined();
  });

  test('a controller restarted mid-migration resumes it without starting it twice', async () => {
    const vmi = await getVmi(env.kube, 'vm-3'); // 512Mi at 64Mi/s: ~8 s
    const sourceNode = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-3');
    await waitForPhase(env.kube, name, ['Running']);
    await env.stopController();
    await new Promise((r) => setTimeout(r, 300));
    await env.startController();
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Succeeded');
    // Each phase recorded once: the restart did not replay the migration.
    expect(done.status?.phaseTransitionTimestamps?.map((p) => p.phase)).toEqual(PHASES);
    const after = await getVmi(env.kube, 'vm-3');
    expect(after.status?.nodeName).not.toBe(sourceNode);
    expect((await domainsOn(env, sourceNode)).find((d) => d.name === 'default_vm-3')).toBeUndefined();
    const onTarget = await domainsOn(env, after.status!.nodeName!);
    expect(onTarget.filter((d) => d.name === 'default_vm-3').map((d) => d.state)).toEqual(['running']);
  });
});

describe('parallel migration limits', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    const config = FerryConfig.parse({ limits: { defaultNicCapacity: '1Gi', parallelInboundMigrationsPerNode: 10 } });
    env = await startDevEnvironment({ nodes: 4, vms: 10, natsUrl: process.env['NATS_URL']!, config, timeScale: 2 });
    await env.kube.patchCustom(KUBEVIRT_RESOURCE, 'kubevirt', 'kubevirt', {
      spec: { configuration: { migrations: { parallelMigrationsPerCluster: 5, parallelOutboundMigrationsPerNode: 2 } } },
    });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('10 VMIMs at once with 2 per node and 5 per cluster: never more running than allowed, all Succeeded', async () => {
    const active = ['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running'];
    let peakCluster = 0;
    let peakNode = 0;
    const names: string[] = [];
    const sourceOf = new Map<string, string>();
    for (let i = 1; i <= 10; i++) {
      const vmi = await getVmi(env.kube, `vm-${i}`);
      const name = await createVmim(env.kube, `vm-${i}`);
      names.push(name);
      sourceOf.set(name, vmi.status!.nodeName!);
    }
    await waitFor('all 10 to finish', async () => {
      const list = (await env.kube.listCustom(VMIM_RESOURCE, 'default')).items as Array<{ metadata: { name: string }; status?: { phase?: string } }>;
      const mine = list.filter((m) => names.includes(m.metadata.name));
      const running = mine.filter((m) => active.includes(m.status?.phase ?? ''));
      peakCluster = Math.max(peakCluster, running.length);
      const perNode = new Map<string, number>();
      for (const m of running) perNode.set(sourceOf.get(m.metadata.name)!, (perNode.get(sourceOf.get(m.metadata.name)!) ?? 0) + 1);
      peakNode = Math.max(peakNode, ...perNode.values(), 0);
      return mine.every((m) => m.status?.phase === 'Succeeded' || m.status?.phase === 'Failed') ? mine : undefined;
    }, { timeoutMs: 60_000, intervalMs: 20 });
    for (const n of names) expect((await getVmim(env.kube, n))?.status?.phase).toBe('Succeeded');
    expect(peakCluster).toBeLessThanOrEqual(5);
    expect(peakNode).toBeLessThanOrEqual(2);
    // The limits were actually reached, not trivially respected.
    expect(peakCluster).toBeGreaterThanOrEqual(3);
  }, 90_000);
});
