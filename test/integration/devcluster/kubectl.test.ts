import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { seedDemo, type DevCluster } from '../../../src/devcluster/index.js';
import { eventually, startFastCluster } from './support.js';

const run = promisify(execFile);

/** The real kubectl must be there: scripts/setup.sh installs it. This test never skips. */
function findKubectl(): string {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/bin', '/usr/local/bin'];
  for (const d of dirs) {
    const p = path.join(d, 'kubectl');
    if (d && existsSync(p)) return p;
  }
  throw new Error('kubectl is not installed (not on PATH, /usr/bin or /usr/local/bin): run scripts/setup.sh, or `apt-get install -y kubernetes-client`');
}

let cluster: DevCluster;
let dir: string;
let kubectlArgs: string[];
let kubectlBin: string;

async function kubectl(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(kubectlBin, [...kubectlArgs, ...args], { timeout: 15_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

beforeAll(async () => {
  kubectlBin = findKubectl();
  cluster = await startFastCluster();
  await seedDemo(cluster, { nodes: 3, vms: 4 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-kubectl-'));
  await cluster.writeKubeconfig(path.join(dir, 'kubeconfig'));
  // A private discovery cache: another cluster that once had this port must not leak into this one.
  kubectlArgs = ['--kubeconfig', path.join(dir, 'kubeconfig'), '--cache-dir', path.join(dir, 'cache')];
});
afterAll(async () => {
  await cluster?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const rows = (out: string) => out.trim().split('\n').map((l) => l.trim().split(/\s{2,}/));

describe('the real kubectl against the dev cluster', () => {
  test('get nodes and get vmi (short name) print the expected columns', async () => {
    expect(rows(await kubectl('get', 'nodes'))).toEqual([
      ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION'],
      ['node-1', 'Ready', '<none>', expect.stringMatching(/^\d+s$/), 'v1.30.0-ferry'],
      ['node-2', 'Ready', '<none>', expect.any(String), 'v1.30.0-ferry'],
      ['node-3', 'Ready', '<none>', expect.any(String), 'v1.30.0-ferry'],
    ]);
    const vmis = rows(await kubectl('get', 'vmi'));
    expect(vmis[0]).toEqual(['NAME', 'AGE', 'PHASE', 'IP', 'NODENAME', 'READY']);
    expect(vmis.slice(1).map((r) => [r[0], r[2], r[4], r[5]])).toEqual([
      ['vm-1', 'Running', 'node-1', 'True'],
      ['vm-2', 'Running', 'node-2', 'True'],
      ['vm-3', 'Running', 'node-3', 'True'],
      ['vm-4', 'Running', 'node-1', 'True'],
    ]);
  });

  test('create -f a VMIM, read it with jsonpath, watch it change, delete it', async () => {
    const file = path.join(dir, 'vmim.yaml');
    await writeFile(file, 'apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceMigration\nmetadata:\n  name: mig-vm-2\nspec:\n  vmiName: vm-2\n');
    expect(await kubectl('create', '-f', file)).toContain('virtualmachineinstancemigration.kubevirt.io/mig-vm-2 created');
    expect(cluster.store.get('vmim', 'mig-vm-2', 'default').spec).toEqual({ vmiName: 'vm-2' });
    expect(await kubectl('get', 'vmim', 'mig-vm-2', '-o', 'jsonpath={.spec.vmiName}')).toBe('vm-2');

    const watcher = spawn(kubectlBin, [...kubectlArgs, 'get', 'vmim', '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watcher.stdout.on('data', (d: Buffer) => (out += d.toString()));
    watcher.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await eventually(() => out.includes('mig-vm-2'), 'kubectl get -w to list the VMIM', 10_000);
      cluster.store.patch('vmim', 'mig-vm-2', { status: { phase: 'Scheduling' } }, { namespace: 'default', subresource: 'status' });
      await eventually(() => /mig-vm-2\s+Scheduling\s+vm-2/.test(out), `the watch to print the new phase (got: ${out})`, 10_000);
    } finally {
      watcher.kill();
    }

    expect(await kubectl('delete', 'vmim', 'mig-vm-2')).toContain('"mig-vm-2" deleted');
    expect(cluster.store.tryGet('vmim', 'mig-vm-2', 'default')).toBeUndefined();
  });

  test('cordon and uncordon change the node, and get nodes shows it', async () => {
    expect(await kubectl('cordon', 'node-2')).toContain('node/node-2 cordoned');
    expect(cluster.store.get('nodes', 'node-2').spec).toMatchObject({ unschedulable: true });
    expect(rows(await kubectl('get', 'node', 'node-2'))[1]?.[1]).toBe('Ready,SchedulingDisabled');
    expect(await kubectl('uncordon', 'node-2')).toContain('node/node-2 uncordoned');
    expect((cluster.store.get('nodes', 'node-2').spec as { unschedulable?: boolean }).unschedulable).toBeUndefined();
  });

  test('api-resources lists the KubeVirt kinds with their short names', async () => {
    const lines = rows(await kubectl('api-resources'));
    expect(lines).toContainEqual(['virtualmachineinstancemigrations', 'vmim,vmims', 'kubevirt.io/v1', 'true', 'VirtualMachineInstanceMigration']);
    expect(lines).toContainEqual(['virtualmachineinstances', 'vmi,vmis', 'kubevirt.io/v1', 'true', 'VirtualMachineInstance']);
    expect(lines).toContainEqual(['migrationpolicies', 'migrations.kubevirt.io/v1alpha1', 'false', 'MigrationPolicy']);
  });

  test('errors from the server read like a real cluster\'s', async () => {
    await expect(kubectl('get', 'vmim', 'nope')).rejects.toThrow('Error from server (NotFound): virtualmachineinstancemigrations.kubevirt.io "nope" not found');
  });
});
