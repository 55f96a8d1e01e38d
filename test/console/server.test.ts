import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConsoleSnapshot } from '../../src/console/model.js';
import { startConsole, type ConsoleServer } from '../../src/console/server.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { silentLogger } from '../../src/util/log.js';
import { createVmim, getVmi } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';

/** Reads a Server-Sent Events stream, collecting the snapshots it delivers. */
function subscribe(url: string): { snapshots: ConsoleSnapshot[]; close: () => void } {
  const ctl = new AbortController();
  const snapshots: ConsoleSnapshot[] = [];
  void (async () => {
    const res = await fetch(url, { signal: ctl.signal });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (/^event: snapshot$/m.test(frame)) snapshots.push(JSON.parse(/^data: (.*)$/m.exec(frame)![1]!) as ConsoleSnapshot);
      }
    }
  })().catch(() => undefined);
  return { snapshots, close: () => ctl.abort() };
}

describe('the console server', () => {
  let env: DevEnvironment;
  let web: ConsoleServer;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-console-srv-'));
    env = await startDevEnvironment({ nodes: 2, vms: 2, natsUrl: process.env['NATS_URL']!, kubeconfigPath: path.join(dir, 'kubeconfig'), timeScale: 4 });
    web = await startConsole({ kube: env.kube, port: 0, log: silentLogger, throttleMs: 50 });
  }, 30_000);
  afterAll(async () => {
    await web?.close();
    await env?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the event stream pushes a new snapshot when a watched object changes, through to the migration\'s end', async () => {
    const feed = subscribe(`${web.url}api/events`);
    try {
      await waitFor('the first snapshot', () => feed.snapshots.length > 0);
      expect(feed.snapshots[0]!.nodes.map((n) => n.name)).toEqual(['node-1', 'node-2']);
      const name = await createVmim(env.kube, 'vm-1');
      const done = await waitFor('a snapshot with the migration Succeeded', () => feed.snapshots.find((s) => s.migrations.some((m) => m.name === name && m.phase === 'Succeeded')), { timeoutMs: 20_000 });
      const m = done.migrations.find((x) => x.name === name)!;
      expect(m.phases.map((p) => p.phase)).toEqual(expect.arrayContaining(['Pending', 'Running', 'Succeeded']));
      expect(m.targetNode).toBe((await getVmi(env.kube, 'vm-1')).status?.nodeName);
      // The stream saw the phases in between too, not just the end.
      expect(feed.snapshots.some((s) => s.migrations.some((x) => x.name === name && x.phase === 'Running'))).toBe(true);
    } finally {
      feed.close();
    }
  });

  test('actions from another site, or not JSON, are refused before they reach the cluster', async () => {
    const post = (headers: Record<string, string>, body: string) => fetch(`${web.url}api/actions`, { method: 'POST', headers, body });
    const drain = JSON.stringify({ action: 'drain', node: 'node-2' });
    expect((await post({ 'content-type': 'application/json', origin: 'http://evil.example' }, drain)).status).toBe(403);
    expect((await post({ 'content-type': 'text/plain' }, drain)).status).toBe(403);
    const bad = await post({ 'content-type': 'application/json' }, JSON.stringify({ action: 'drain' }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/bad action: node/);
    const node = (await env.kube.core.readNode({ name: 'node-2' })) as { spec?: { unschedulable?: boolean } };
    expect(node.spec?.unschedulable).toBeFalsy();
    // A VMIM that does not exist: the API server's 404, in its words.
    const gone = await post({ 'content-type': 'application/json', origin: web.url.replace(/\/$/, '') }, JSON.stringify({ action: 'cancel', namespace: 'default', name: 'nope' }));
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { message: string }).message).toContain('"nope" not found');
  });

  test('serves the page and its assets, and nothing outside them', async () => {
    const page = await fetch(web.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="app.js">');
    expect((await fetch(`${web.url}app.js`)).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${web.url}..%2F..%2Fpackage.json`)).status).toBe(404);
    const charts = (await (await fetch(`${web.url}api/statecharts`)).json()) as Array<{ name: string; chart: { states: Array<{ key: string }> } }>;
    expect(charts.find((c) => c.name === 'migration')?.chart.states.map((s) => s.key)).toEqual(expect.arrayContaining(['Pending', 'Running', 'Succeeded', 'Failed']));
  });

  test('ferry console serves it for a kubeconfig and stops on Ctrl-C', async () => {
    const bin = path.resolve(import.meta.dirname, '../../bin/ferry.js');
    const child = spawn(process.execPath, [bin, 'console', '--kubeconfig', path.join(dir, 'kubeconfig'), '--port', '0']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const url = await waitFor('the console URL', () => /Ferry console: (http:\S+)/.exec(out)?.[1], { timeoutMs: 15_000 });
      expect(out).toContain('acting as kubeconfig user');
      expect((await fetch(url)).status).toBe(200);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
