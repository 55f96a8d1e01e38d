import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');

/**
 * The tarball `npm pack` makes, installed globally into a scratch prefix with
 * no source tree and no node_modules beside it, is a working tool: ferry and
 * kubectl-ferry on PATH, every command loading from the bundle.
 */
describe('the packed tarball installed with npm i -g', () => {
  let dir: string;
  let prefix: string;
  let env: DevEnvironment;
  let kubeconfig: string;
  let PATH: string;
  const installed = (bin: string, args: string[], extra: Record<string, string> = {}) =>
    run(path.join(prefix, 'bin', bin), args, { encoding: 'utf8', cwd: dir, env: { ...process.env, PATH, ...extra } });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-pack-'));
    prefix = path.join(dir, 'prefix');
    PATH = `${path.join(prefix, 'bin')}:${process.env['PATH']}`;
    // globalSetup built dist/ just now; --ignore-scripts skips prepack's second build.
    const packed = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: root, encoding: 'utf8' });
    const tgz = path.join(dir, packed.stdout.trim().split('\n').pop()!);
    await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--offline', tgz], { cwd: dir, encoding: 'utf8' });
    kubeconfig = path.join(dir, 'kubeconfig');
    env = await startDevEnvironment({ nodes: 3, vms: 3, natsUrl: process.env['NATS_URL']!, kubeconfigPath: kubeconfig, timeScale: 8 });
  }, 120_000);
  afterAll(async () => {
    await env?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('installs no dependencies and carries the bundle, the console and the libvirt dev mode\'s scripts', () => {
    const pkgDir = path.join(prefix, 'lib/node_modules/ferry');
    expect(existsSync(path.join(pkgDir, 'node_modules'))).toBe(false);
    expect(existsSync(path.join(pkgDir, 'src'))).toBe(false);
    expect(readdirSync(path.join(pkgDir, 'dist/cli'))).toEqual(expect.arrayContaining(['main.js']));
    expect(existsSync(path.join(pkgDir, 'dist/console/index.html'))).toBe(true);
    for (const f of ['setup.sh', 'launcher.sh', 'guest.S']) expect(statSync(path.join(pkgDir, 'test/libvirt', f)).isFile()).toBe(true);
  });

  test('ferry status and kubectl ferry status (kubectl finds the plugin on PATH) list a migration', async () => {
    await run(process.execPath, [path.join(root, 'bin/ferry.js'), 'migrate', 'default/vm-1', '--kubeconfig', kubeconfig, '--timeout', '30'], { encoding: 'utf8' });
    const own = await installed('ferry', ['status', '--kubeconfig', kubeconfig]);
    expect(own.stdout).toMatch(/vm-1-migration-\S+\s+vm-1\s+Succeeded/);
    const viaKubectl = await run('kubectl', ['ferry', 'status'], { encoding: 'utf8', cwd: dir, env: { ...process.env, PATH, KUBECONFIG: kubeconfig } });
    expect(viaKubectl.stdout).toMatch(/vm-1-migration-\S+\s+vm-1\s+Succeeded/);
    const help = await run('kubectl', ['ferry', 'drain', '--help'], { encoding: 'utf8', env: { ...process.env, PATH } });
    expect(help.stdout).toContain('Usage: kubectl ferry drain');
  });

  test('every command loads: --help of each, completion, statecharts export, docs api', async () => {
    const top = await installed('ferry', ['--help']);
    const names = [...top.stdout.split('Commands:')[1]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!).filter((n) => n !== 'help');
    expect(names.length).toBeGreaterThanOrEqual(12);
    for (const n of names) expect((await installed('ferry', [n, '--help'])).stdout).toContain(`Usage: ferry ${n}`);
    expect((await installed('ferry', ['completion', 'bash'])).stdout).toContain('complete -o default -F _ferry_complete ferry kubectl-ferry');
    expect((await installed('ferry', ['statecharts', 'export', '--format', 'json'])).stdout).toContain('"name": "migration"');
    expect((await installed('ferry', ['docs', 'api'])).stdout).toContain('VirtualMachineInstanceMigration');
  }, 60_000);

  test('ferry dev runs from the install, serves the console, migrates its demo VM, writes its trace and stops on Ctrl-C', async () => {
    const traceFile = path.join(dir, 'traces.jsonl');
    const child = spawn(path.join(prefix, 'bin', 'ferry'), ['dev', '--vms', '2', '--time-scale', '8', '--log-file', path.join(dir, 'dev.log'), '--trace-file', traceFile], { cwd: dir, env: { ...process.env, PATH } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const consoleUrl = await waitFor('the console URL', () => /Console: (http:\S+)/.exec(out)?.[1], { timeoutMs: 30_000 });
      const page = await fetch(consoleUrl);
      expect(await page.text()).toContain('<title>Ferry console</title>');
      await waitFor('the demo migration to succeed', () => /Demo: default\/vm-1 Succeeded/.test(out), { timeoutMs: 30_000 });
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      // The demo migration's trace was written as OTLP/JSON (flushed on the way out).
      const spans = readFileSync(traceFile, 'utf8').trim().split('\n').flatMap((l) => (JSON.parse(l) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ name: string }> }> }> }).resourceSpans)
        .flatMap((r) => r.scopeSpans.flatMap((x) => x.spans.map((sp) => sp.name)));
      expect(spans).toEqual(expect.arrayContaining(['migration default/vm-1', 'phase Running', 'command start-source', 'handler start-source', 'hypervisor job']));
    } finally {
      child.kill('SIGKILL');
    }
  }, 45_000);
});
