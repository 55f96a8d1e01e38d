import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { getVmi } from '../support/cluster.js';
import { VMIM_RESOURCE } from '../../src/kube/client.js';
import { buildProgram } from '../../src/cli/program.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const ferryBin = path.join(root, 'bin/ferry.js');

function kubectlPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error('kubectl is not installed: run scripts/setup.sh as root (installs Debian\'s kubernetes-client) or install kubectl');
  return found;
}

describe('plain kubectl and the ferry CLI against the dev cluster', () => {
  let env: DevEnvironment;
  let dir: string;
  let kubeconfig: string;
  const kubectl = (...args: string[]) => run(kubectlPath(), ['--kubeconfig', kubeconfig, '--cache-dir', path.join(dir, 'cache'), ...args], { encoding: 'utf8' });
  const ferry = (...args: string[]) => run(process.execPath, [ferryBin, ...args, '--kubeconfig', kubeconfig], { encoding: 'utf8', cwd: dir });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-cli-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    env = await startDevEnvironment({ nodes: 3, vms: 4, natsUrl: process.env['NATS_URL']!, kubeconfigPath: kubeconfig, timeScale: 4 });
  });
  afterAll(async () => {
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('kubectl create -f a VMIM, watch it with get -w until Succeeded, then delete it', async () => {
    const before = await getVmi(env.kube, 'vm-2');
    const created = await kubectl('create', '-f', path.join(root, 'examples/migration.yaml'));
    const name = /virtualmachineinstancemigration\.kubevirt\.io\/(\S+) created/.exec(created.stdout)?.[1];
    expect(name).toMatch(/^vm-2-migration-/);

    const watch = spawn(kubectlPath(), ['--kubeconfig', kubeconfig, '--cache-dir', path.join(dir, 'cache'), 'get', 'vmim', name!, '-w', '--no-headers', '-o', 'custom-columns=PHASE:.status.phase,VMI:.spec.vmiName']);
    let seen = '';
    watch.stdout.on('data', (d: Buffer) => (seen += d.toString()));
    try {
      await waitFor('kubectl get -w to show Succeeded', () => seen.includes('Succeeded'), { timeoutMs: 20_000 });
    } finally {
      watch.kill();
    }
    expect(seen).toMatch(/vm-2/);

    const node = await kubectl('get', 'vmi', 'vm-2', '-o', 'jsonpath={.status.nodeName}');
    expect(node.stdout).not.toBe(before.status?.nodeName);
    const table = await kubectl('get', 'vmim');
    expect(table.stdout).toMatch(new RegExp(`${name}\\s+Succeeded\\s+vm-2`));

    const deleted = await kubectl('delete', 'vmim', name!);
    expect(deleted.stdout).toContain('deleted');
    await expect(kubectl('get', 'vmim', name!)).rejects.toMatchObject({ stderr: expect.stringContaining('NotFound') });
  });

  test('ferry migrate follows a migration to the end and ferry status lists it', async () => {
    const before = await getVmi(env.kube, 'vm-3');
    const out = await ferry('migrate', 'default/vm-3', '--timeout', '30');
    expect(out.stdout).toMatch(new RegExp(`default/vm-3 migrated from ${before.status?.nodeName} to node-\\d`));
    const status = await ferry('status');
    expect(status.stdout).toMatch(/NAMESPACE\s+NAME\s+VMI\s+PHASE/);
    expect(status.stdout).toMatch(/vm-3-migration-\S+\s+vm-3\s+Succeeded/);
    const json = JSON.parse((await ferry('status', '-o', 'json')).stdout) as Array<{ vmi: string; phase: string }>;
    expect(json.find((m) => m.vmi === 'vm-3')?.phase).toBe('Succeeded');
  });

  test('ferry cancel of a finished migration says so, fails, and leaves its record alone', async () => {
    const json = JSON.parse((await ferry('status', '-o', 'json')).stdout) as Array<{ name: string; vmi: string; phase: string }>;
    const done = json.find((m) => m.vmi === 'vm-3' && m.phase === 'Succeeded');
    expect(done).toBeDefined();
    await expect(ferry('cancel', `default/${done!.name}`)).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(new RegExp(`migration default/${done!.name} has already finished: Succeeded at 20\\d\\d-\\S+Z \\(\\S+ ago\\); nothing to cancel`)),
    });
    const still = await kubectl('get', 'vmim', done!.name, '-o', 'jsonpath={.status.phase}');
    expect(still.stdout).toBe('Succeeded');
  });

  test('ferry status lists a VMIM the controller ignores, with why', async () => {
    await env.kube.createCustom(VMIM_RESOURCE, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'no-vmi-name' }, spec: {} });
    const table = (await ferry('status')).stdout;
    expect(table).toMatch(/no-vmi-name\s+Invalid\s+ignored by the controller: spec\.vmiName: Invalid input/);
    const json = JSON.parse((await ferry('status', '-o', 'json')).stdout) as Array<{ name: string; phase: string; reason?: string }>;
    expect(json.find((m) => m.name === 'no-vmi-name')).toMatchObject({ phase: 'Invalid', reason: expect.stringContaining('spec.vmiName') });
    await env.kube.deleteCustom(VMIM_RESOURCE, 'default', 'no-vmi-name');
  });

  test('ferry status --watch keeps printing the table until stopped', async () => {
    const child = spawn(process.execPath, [ferryBin, 'status', '--watch', '--kubeconfig', kubeconfig]);
    let seen = '';
    child.stdout.on('data', (d: Buffer) => (seen += d.toString()));
    try {
      await waitFor('the watched table', () => /vm-3-migration-\S+\s+vm-3\s+Succeeded/.test(seen), { timeoutMs: 15_000 });
    } finally {
      child.kill('SIGINT');
    }
  });

  test('ferry migrate of a VMI that does not exist fails with a clear message and a non-zero exit', async () => {
    await expect(ferry('migrate', 'default/nope')).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('VMI default/nope not found') });
  });

  test('every command has --help', async () => {
    // The binary itself once; then each command's help from the same program object, in process.
    const top = await run(process.execPath, [ferryBin, '--help'], { encoding: 'utf8' });
    expect(top.stdout).toContain('Usage: ferry');
    const program = buildProgram();
    const cmds = ['dev', 'controller', 'handler', 'migrate', 'status', 'cancel', 'drain', 'uncordon'];
    for (const cmd of cmds) {
      expect(top.stdout).toContain(cmd);
      const sub = program.commands.find((c) => c.name() === cmd);
      expect(sub?.helpInformation()).toContain(`Usage: ferry ${cmd}`);
    }
  });
});

describe('ferry dev', () => {
  test('writes a kubeconfig, says ready, and stops everything on Ctrl-C', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-dev-'));
    const kubeconfig = path.join(dir, 'kc');
    const child = spawn(process.execPath, [ferryBin, 'dev', '--no-demo', '--kubeconfig', kubeconfig, '--log-file', path.join(dir, 'dev.log')], { cwd: dir });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor('ferry dev to say ready', () => /ready/.test(out), { timeoutMs: 30_000 });
      expect(existsSync(kubeconfig)).toBe(true);
      expect(readFileSync(kubeconfig, 'utf8')).toContain('server: http://127.0.0.1:');
      const natsPids = spawnSync('pgrep', ['-P', String(child.pid), 'nats-server'], { encoding: 'utf8' }).stdout.trim();
      expect(natsPids).not.toBe('');
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(out).toContain('Stopped.');
      // The nats-server it spawned is gone with it.
      for (const pid of natsPids.split('\n')) expect(() => process.kill(Number(pid), 0)).toThrow();
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 45_000);
});
