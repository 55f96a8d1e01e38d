import { execFile, spawnSync } from 'node:child_process';
import { PolicyV1Api } from '@kubernetes/client-node';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { renderStatus } from '../../src/cli/commands/status.js';
import { Labels } from '../../src/api/vmi.js';
import { FerryConfig } from '../../src/config/ferryConfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { KUBEVIRT_RESOURCE, VMI_RESOURCE, VMIM_RESOURCE } from '../../src/kube/client.js';
import { createVmim, domainsOf, getVmi, getVmim, launcherPods, waitForPhase } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);

function kubectlPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error('kubectl is not installed: run scripts/setup.sh as root (installs Debian\'s kubernetes-client) or install kubectl');
  return found;
}

/** VMIs vm-1..vm-24 on 3 nodes: node-2 holds vm-2, vm-5, …, vm-23 (8 VMs). */
const ON_NODE_2 = [2, 5, 8, 11, 14, 17, 20, 23].map((i) => `vm-${i}`);

async function setStrategy(env: DevEnvironment, vmi: string, strategy: string, migratable = true): Promise<void> {
  await env.kube.patchCustom(VMI_RESOURCE, 'default', vmi, { spec: { evictionStrategy: strategy } });
  if (!migratable) {
    const current = await getVmi(env.kube, vmi);
    const conditions = (current.status?.conditions ?? []).map((c) =>
      c.type === 'LiveMigratable' ? { ...c, status: 'False', reason: 'DisksNotLiveMigratable', message: 'local disk' } : c,
    );
    await env.kube.patchCustomStatus(VMI_RESOURCE, 'default', vmi, { status: { conditions } });
  }
}

describe('kubectl drain of a node running VMs of every eviction strategy', () => {
  let env: DevEnvironment;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-drain-'));
    env = await startDevEnvironment({ nodes: 3, vms: 24, natsUrl: process.env['NATS_URL']!, kubeconfigPath: path.join(dir, 'kubeconfig'), timeScale: 8 });
  });
  afterAll(async () => {
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('LiveMigrate VMs move, IfPossible moves when it can, External is marked and held, None is evicted; drain completes', async () => {
    const [lm1, lm2, ifp1, ifpNo, ext1, none1, none2, lm3] = ON_NODE_2 as [string, string, string, string, string, string, string, string];
    await setStrategy(env, ifp1, 'LiveMigrateIfPossible');
    await setStrategy(env, ifpNo, 'LiveMigrateIfPossible', false);
    await setStrategy(env, ext1, 'External');
    await setStrategy(env, none1, 'None');
    await setStrategy(env, none2, 'None');
    const uids = new Map<string, string>();
    for (const v of ON_NODE_2) uids.set(v, (await getVmi(env.kube, v)).metadata.uid!);

    const kubeconfig = path.join(dir, 'kubeconfig');
    const drain = run(kubectlPath(), ['--kubeconfig', kubeconfig, '--cache-dir', path.join(dir, 'cache'), 'drain', 'node-2', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=90s'], { encoding: 'utf8' });
    // An external actor tears down the External VM once Ferry marked it.
    await waitFor('External VM to be marked for evacuation', async () => (await getVmi(env.kube, ext1)).status?.evacuationNodeName === 'node-2');
    expect((await launcherPods(env.kube, uids.get(ext1)!)).length).toBe(1); // its eviction was refused, the pod still runs
    await env.kube.deleteCustom(VMI_RESOURCE, 'default', ext1);

    const { stdout } = await drain;
    expect(stdout).toContain('node/node-2 drained');

    for (const v of [lm1, lm2, lm3, ifp1]) {
      const vmi = await getVmi(env.kube, v);
      expect(vmi.status?.nodeName).not.toBe('node-2');
      const pods = await launcherPods(env.kube, uids.get(v)!);
      expect(pods.map((p) => p.spec?.nodeName)).toEqual([vmi.status?.nodeName]);
    }
    // Not migratable with IfPossible, and None: their pods were evicted, nothing was migrated.
    for (const v of [ifpNo, none1, none2]) {
      expect(await launcherPods(env.kube, uids.get(v)!)).toEqual([]);
      expect((await getVmi(env.kube, v)).status?.migrationState ?? undefined).toBeUndefined();
    }
    const vmims = (await env.kube.listCustom(VMIM_RESOURCE, 'default')).items as Array<{ spec: { vmiName: string }; metadata: { annotations?: Record<string, string> }; status?: { phase?: string } }>;
    const evacuations = vmims.filter((m) => m.metadata.annotations?.['kubevirt.io/evacuationMigration'] === 'node-2');
    expect(evacuations.map((m) => m.spec.vmiName).sort()).toEqual([lm1, lm2, lm3, ifp1].sort());
    expect(evacuations.every((m) => m.status?.phase === 'Succeeded')).toBe(true);
  }, 120_000);
});

describe('draining two nodes at once by taint', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    const config = FerryConfig.parse({ limits: { defaultNicCapacity: '512Mi', parallelInboundMigrationsPerNode: 10 }, evacuation: { backoffBaseSeconds: 1 } });
    env = await startDevEnvironment({ nodes: 4, vms: 16, natsUrl: process.env['NATS_URL']!, config, timeScale: 4 });
    await env.kube.patchCustom(KUBEVIRT_RESOURCE, 'kubevirt', 'kubevirt', {
      spec: { configuration: { migrations: { parallelMigrationsPerCluster: 3, parallelOutboundMigrationsPerNode: 2 } } },
    });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('every VM leaves both nodes and the limits (2 per node, 3 per cluster) are never exceeded', async () => {
    const active = ['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running'];
    for (const n of ['node-1', 'node-2']) {
      await env.kube.patchNode(n, { spec: { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } });
    }
    let peakCluster = 0;
    let peakNode = 0;
    let queuedShown = '';
    await waitFor('both nodes to be empty', async () => {
      const vmims = (await env.kube.listCustom(VMIM_RESOURCE, 'default')).items as Array<{ metadata: { annotations?: Record<string, string> }; status?: { phase?: string } }>;
      const running = vmims.filter((m) => active.includes(m.status?.phase ?? ''));
      // `ferry status` says why the ones that wait are waiting.
      if (!queuedShown && vmims.some((m) => !m.status?.phase || m.status.phase === 'Pending')) {
        const text = await renderStatus(env.kube, { output: 'table' });
        if (/kubevirt-evacuation-\S+\s+vm-\d+\s+Pending\s+queued: \S/.test(text)) queuedShown = text;
      }
      peakCluster = Math.max(peakCluster, running.length);
      for (const n of ['node-1', 'node-2']) {
        peakNode = Math.max(peakNode, running.filter((m) => m.metadata.annotations?.['kubevirt.io/evacuationMigration'] === n).length);
      }
      const vmis = (await env.kube.listCustom(VMI_RESOURCE, 'default')).items as Array<{ status?: { nodeName?: string } }>;
      return vmis.every((v) => v.status?.nodeName !== 'node-1' && v.status?.nodeName !== 'node-2') ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 20 });
    expect(peakCluster).toBeLessThanOrEqual(3);
    expect(peakNode).toBeLessThanOrEqual(2);
    expect(queuedShown).toMatch(/Pending\s+queued: (cluster|outbound|inbound) limit/);
    expect(peakCluster).toBeGreaterThanOrEqual(2);
    const vmis = (await env.kube.listCustom(VMI_RESOURCE, 'default')).items as Array<{ metadata: { name: string }; status?: { nodeName?: string; evacuationNodeName?: string } }>;
    expect(vmis.filter((v) => ['node-3', 'node-4'].includes(v.status?.nodeName ?? '')).length).toBe(16);
  }, 90_000);

  test('uncordoning stops the evacuation: queued migrations are withdrawn, the rest stays', async () => {
    // Fresh VMs back on node-1 are not possible here; instead taint node-3 and untaint it at once.
    await env.kube.patchNode('node-3', { spec: { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } });
    await waitFor('evacuation VMIMs for node-3', async () => {
      const vmims = (await env.kube.listCustom(VMIM_RESOURCE, 'default')).items as Array<{ metadata: { annotations?: Record<string, string> } }>;
      return vmims.some((m) => m.metadata.annotations?.['kubevirt.io/evacuationMigration'] === 'node-3') || undefined;
    });
    await env.kube.patchNode('node-3', { spec: { unschedulable: false, taints: null } });
    await waitFor('no unstarted evacuation left for node-3', async () => {
      const vmims = (await env.kube.listCustom(VMIM_RESOURCE, 'default')).items as Array<{ metadata: { annotations?: Record<string, string> }; status?: { phase?: string } }>;
      const open = vmims.filter((m) => m.metadata.annotations?.['kubevirt.io/evacuationMigration'] === 'node-3' && !['Succeeded', 'Failed'].includes(m.status?.phase ?? ''));
      return open.length === 0 || undefined;
    }, { timeoutMs: 30_000 });
    const vmis = (await env.kube.listCustom(VMI_RESOURCE, 'default')).items as Array<{ status?: { nodeName?: string; evacuationNodeName?: string } }>;
    // Some VMs stayed on node-3, and none of them is still marked for evacuation.
    expect(vmis.filter((v) => v.status?.nodeName === 'node-3').length).toBeGreaterThan(0);
    expect(vmis.filter((v) => v.status?.evacuationNodeName === 'node-3')).toEqual([]);
  }, 60_000);
});

describe('ferry drain', () => {
  let env: DevEnvironment;
  let dir: string;
  let kubeconfig: string;
  const ferryBin = path.resolve(import.meta.dirname, '../../bin/ferry.js');
  const ferry = (...args: string[]) => run(process.execPath, [ferryBin, ...args, '--kubeconfig', kubeconfig], { encoding: 'utf8' });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-drain-cli-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    const config = FerryConfig.parse({ limits: { defaultNicCapacity: '1Gi' }, evacuation: { backoffBaseSeconds: 1 }, downtimeSteps: { capMs: 1000 } });
    env = await startDevEnvironment({ nodes: 3, vms: 9, natsUrl: process.env['NATS_URL']!, config, kubeconfigPath: kubeconfig, timeScale: 4 });
    // A short progress timeout so the stuck VM is given up quickly; long enough not to trip healthy ones on a busy CI machine.
    await env.kube.patchCustom(KUBEVIRT_RESOURCE, 'kubevirt', 'kubevirt', { spec: { configuration: { migrations: { progressTimeout: 3 } } } });
  });
  afterAll(async () => {
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('--dry-run shows what would happen to each VM and changes nothing', async () => {
    await env.kube.patchCustom(VMI_RESOURCE, 'default', 'vm-4', { spec: { evictionStrategy: 'None' } });
    const { stdout } = await ferry('drain', 'node-1', '--dry-run');
    expect(stdout).toContain('Would cordon node-1 and taint it kubevirt.io/drain:NoSchedule');
    expect(stdout).toMatch(/default\/vm-1\s+LiveMigrate\s+1\.00Gi\s+live-migrate/);
    expect(stdout).toMatch(/default\/vm-4\s+None\s+.*let eviction stop it/);
    const node = await env.kube.core.readNode({ name: 'node-1' });
    expect(node.spec?.unschedulable ?? false).toBe(false);
  });

  test('empties a node, reports each VM, exits 0', async () => {
    const { stdout } = await ferry('drain', 'node-1', '--timeout', '60');
    expect(stdout).toMatch(/default\/vm-1\s+LiveMigrate\s+moved\s+node-[23]\s+1/);
    expect(stdout).toMatch(/default\/vm-7\s+LiveMigrate\s+moved/);
    expect(stdout).toMatch(/node\/node-1 evacuated in \S+: 2 VM\(s\) moved/);
    const left = ((await env.kube.listCustom(VMI_RESOURCE, 'default')).items as Array<{ metadata: { name: string }; status?: { nodeName?: string } }>)
      .filter((v) => v.status?.nodeName === 'node-1')
      .map((v) => v.metadata.name);
    expect(left).toEqual(['vm-4']); // evictionStrategy None: not Ferry's to move
    await ferry('uncordon', 'node-1');
    const node = await env.kube.core.readNode({ name: 'node-1' });
    expect(node.spec?.unschedulable ?? false).toBe(false);
    expect(node.spec?.taints ?? []).toEqual([]);
  }, 90_000);

  test('a VM that cannot converge fails cleanly, stays on its node, and the drain reports it instead of hanging', async () => {
    // Re-dirties all its 2 GiB at 4 GiB/s: a 1 GiB/s NIC cannot beat it even with the
    // downtime stepped up to its 1 s cap, and post-copy is not allowed.
    await env.kube.patchCustom(VMI_RESOURCE, 'default', 'vm-2', { metadata: { annotations: { 'ferry.dev/sim-dirty-rate': '4Gi', 'ferry.dev/sim-working-set': '2Gi' } } });
    const err = await ferry('drain', 'node-2', '--max-attempts', '2', '--timeout', '60').then(
      () => undefined,
      (e: { code: number; stdout: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stdout).toMatch(/default\/vm-2\s+LiveMigrate\s+failed: .*stuck/);
    expect(err?.stdout).toMatch(/default\/vm-5\s+LiveMigrate\s+moved/);
    expect(err?.stdout).toContain('1 VM(s) could not be moved');
    expect(err?.stdout).toContain('evacuation keeps retrying, with back-off, until you uncordon it');
    const runningOn = async () => (await domainsOf(env, 'default_vm-2')).filter((d) => d.state === 'running').map((d) => d.node);
    const vm2 = await getVmi(env.kube, 'vm-2');
    expect(vm2.status?.nodeName).toBe('node-2');
    expect(await runningOn()).toEqual(['node-2']);
    // The node stays cordoned, so the evacuation retries (1 s back-off here): a retry's target pod may exist
    // by now, and it is never more than that. Uncordoning ends the evacuation; once its last try has ended,
    // the VM has its one launcher pod, on node-2, and still runs there alone.
    const pods = await launcherPods(env.kube, vm2.metadata.uid!);
    expect(pods.filter((p) => p.spec?.nodeName === 'node-2' && !p.metadata.labels?.[Labels.migrationJobUID]).length).toBe(1);
    expect(pods.filter((p) => p.spec?.nodeName !== 'node-2').every((p) => p.metadata.labels?.[Labels.migrationJobUID])).toBe(true);
    await ferry('uncordon', 'node-2');
    await waitFor('vm-2 back to its one launcher pod on node-2', async () => {
      const left = await launcherPods(env.kube, vm2.metadata.uid!);
      return left.length === 1 && left[0]!.spec?.nodeName === 'node-2';
    }, { timeoutMs: 30_000 });
    expect((await getVmi(env.kube, 'vm-2')).status?.nodeName).toBe('node-2');
    expect(await runningOn()).toEqual(['node-2']);
  }, 90_000);
});

describe('disruption budgets for launcher pods', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    env = await startDevEnvironment({ nodes: 2, vms: 2, natsUrl: process.env['NATS_URL']!, timeScale: 4 });
    await env.kube.patchCustom(VMI_RESOURCE, 'default', 'vm-2', { spec: { evictionStrategy: 'None' } });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('a VM that must not stop keeps its launcher pod even while the controller is down; one that may stop does not', async () => {
    const vm1 = await getVmi(env.kube, 'vm-1');
    const vm2 = await getVmi(env.kube, 'vm-2');
    const pdb = await waitFor('a budget for vm-1', async () => {
      const list = await env.kube.kc.makeApiClient(PolicyV1Api).listNamespacedPodDisruptionBudget({ namespace: 'default' });
      return list.items.length > 0 ? list.items : undefined;
    });
    expect(pdb.map((p) => p.metadata?.name)).toEqual(['kubevirt-disruption-budget-vm-1']);
    expect(pdb[0]!.spec?.minAvailable).toBe(1);

    await env.stopController();
    const [pod1] = await launcherPods(env.kube, vm1.metadata.uid!);
    await expect(
      env.kube.core.createNamespacedPodEviction({ namespace: 'default', name: pod1!.metadata.name, body: { metadata: { name: pod1!.metadata.name, namespace: 'default' } } }),
    ).rejects.toMatchObject({ code: 429 });
    expect(await launcherPods(env.kube, vm1.metadata.uid!)).toHaveLength(1);

    const [pod2] = await launcherPods(env.kube, vm2.metadata.uid!);
    await env.kube.core.createNamespacedPodEviction({ namespace: 'default', name: pod2!.metadata.name, body: { metadata: { name: pod2!.metadata.name, namespace: 'default' } } });
    await waitFor('vm-2 launcher pod evicted', async () => ((await launcherPods(env.kube, vm2.metadata.uid!)).length === 0 ? true : undefined));
    await env.startController();
  });
});

describe('an evacuation that had to wait for a user migration of the same VM', () => {
  let env: DevEnvironment;
  let dir: string;
  let kubeconfig: string;
  const ferryBin = path.resolve(import.meta.dirname, '../../bin/ferry.js');
  const ferry = (...args: string[]) => run(process.execPath, [ferryBin, ...args, '--kubeconfig', kubeconfig], { encoding: 'utf8' });
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-drain-wait-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    env = await startDevEnvironment({ nodes: 2, vms: 2, natsUrl: process.env['NATS_URL']!, kubeconfigPath: kubeconfig, timeScale: 4 });
  });
  afterAll(async () => {
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('starts once that migration ends, without anyone touching the drained node; status and drain say why it waits', async () => {
    // vm-1 runs on node-1. With node-2 cordoned, a user migration of vm-1 cannot place its target pod.
    await env.kube.patchNode('node-2', { spec: { unschedulable: true } });
    const user = await createVmim(env.kube, 'vm-1');
    await waitForPhase(env.kube, user, ['Scheduling']);

    const drain = ferry('drain', 'node-1', '--timeout', '40');
    // The drain must wait: KubeVirt allows one migration per VM at a time.
    await waitFor('vm-1 to be marked for evacuation', async () => (await getVmi(env.kube, 'vm-1')).status?.evacuationNodeName === 'node-1');
    let seen = '';
    await waitFor('ferry status to say why the target pod waits', async () => {
      seen = (await ferry('status')).stdout;
      return /target pod unschedulable: 0\/2 nodes are available/.test(seen) || undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}; last output:\n${seen}`);
    });
    expect(seen).toMatch(new RegExp(`${user}\\s+vm-1\\s+Scheduling\\s+target pod unschedulable`));
    expect(await evacuationsOf(env, 'node-1')).toEqual([]);

    // The user gives up on their migration; its end does not touch the VMI or node-1.
    await ferry('cancel', `default/${user}`);
    await waitFor('the user migration to be gone', async () => (await getVmim(env.kube, user)) === undefined);
    await env.kube.patchNode('node-2', { spec: { unschedulable: false } });

    const evacuation = await waitFor('an evacuation migration for vm-1', async () => (await evacuationsOf(env, 'node-1'))[0], { timeoutMs: 10_000 });
    expect(evacuation.spec.vmiName).toBe('vm-1');
    await waitForPhase(env.kube, evacuation.metadata.name, ['Succeeded'], 20_000);
    expect((await getVmi(env.kube, 'vm-1')).status?.nodeName).toBe('node-2');

    // The wait was told once on the VMI, naming the migration it waited for; its own evacuation is not "waiting".
    const waits = (await env.kube.core.listNamespacedEvent({ namespace: 'default' })).items.filter((e) => e.reason === 'EvacuationWaiting' && e.involvedObject.name === 'vm-1');
    expect(waits.map((e) => e.message)).toEqual([`Waiting for migration default/${user} (Scheduling) of this VM to end before evacuating it from node-1`]);

    const { stdout } = await drain;
    expect(stdout).toContain(`default/vm-1: queued (waiting for migration default/${user} (Scheduling) to end; its target pod unschedulable: 0/2 nodes are available`);
    expect(stdout).toMatch(/default\/vm-1\s+LiveMigrate\s+moved\s+node-2\s+1/);
    // Progress names this migration's target, never an earlier one's.
    for (const line of stdout.split('\n').filter((l) => l.includes('default/vm-1:') && l.includes('→'))) expect(line).toContain('→ node-2');
  }, 90_000);
});

async function evacuationsOf(env: DevEnvironment, node: string): Promise<Array<{ metadata: { name: string }; spec: { vmiName: string } }>> {
  const vmims = (await env.kube.listCustom(VMIM_RESOURCE, 'default')).items as Array<{ metadata: { name: string; annotations?: Record<string, string> }; spec: { vmiName: string } }>;
  return vmims.filter((m) => m.metadata.annotations?.['kubevirt.io/evacuationMigration'] === node);
}
