import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startConsole, type ConsoleServer } from '../../src/console/server.js';
import { kubeConfigYaml } from '../../src/devcluster/kubeconfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { KubeClient, VMIM_RESOURCE } from '../../src/kube/client.js';
import { startTracing, type Tracing } from '../../src/tracing/setup.js';
import { TraceStore } from '../../src/tracing/store.js';
import { silentLogger } from '../../src/util/log.js';
import { createMaintenanceWindow, getMaintenanceWindow } from '../../src/runbook/api.js';
import { getVmi, getVmim } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';
import { artifactPath, launchChromium } from './browser.js';

/**
 * The console in a real browser (Debian's Chromium) against the embedded
 * cluster with RBAC on: what an operator sees during a drain, a cancel from
 * the page, and a user whom RBAC refuses.
 */
describe('the web console in Chromium', () => {
  let env: DevEnvironment;
  let web: ConsoleServer;
  let browser: Browser;
  let dir: string;
  let tracing: Tracing | undefined;
  const traces = new TraceStore();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-console-'));
    // As `ferry dev` does: the migrations' spans are kept for the console.
    tracing = startTracing({ service: 'ferry-dev', store: traces });
    // A slow sim (0.3× real time) so a 1–2 GiB guest takes seconds to move: long enough to watch.
    // Progress reaches VMIM status every second here (3 s by default), so a rising bar is seen within one migration.
    env = await startDevEnvironment({ nodes: 3, vms: 6, natsUrl: process.env['NATS_URL']!, kubeconfigPath: path.join(dir, 'kubeconfig'), timeScale: 0.3, cluster: { rbac: true }, progressWriteIntervalMs: 1000 });
    web = await startConsole({ kube: env.kube, port: 0, log: silentLogger, traces });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await web?.close();
    await env?.stop();
    await tracing?.shutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Opens the console and records every navigation and every request the page makes after loading. */
  async function open(url: string, viewport = { width: 1440, height: 900 }): Promise<{ page: Page; navigations: () => number; apiRequests: () => string[] }> {
    const page = await browser.newPage({ viewport });
    let navigations = 0;
    const requests: string[] = [];
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
    page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/api/')) requests.push(`${r.method()} ${new URL(r.url()).pathname}`); });
    await page.goto(url);
    await page.getByRole('status', { name: 'connection live' }).waitFor({ timeout: 10_000 });
    return { page, navigations: () => navigations, apiRequests: () => requests };
  }

  const progressOf = async (page: Page, vm: string) => Number(await page.getByRole('progressbar', { name: `progress of ${vm}` }).getAttribute('aria-valuenow', { timeout: 2000 }));

  test('during a drain, migrations appear, progress and finish without a reload', async () => {
    const { page, navigations, apiRequests } = await open(web.url);
    const onNode2 = ['vm-2', 'vm-5'];
    for (const vm of onNode2) expect((await getVmi(env.kube, vm)).status?.nodeName).toBe('node-2');

    await page.getByRole('button', { name: 'Drain node-2' }).click();
    await page.getByText('node/node-2 cordoned and tainted').waitFor();

    // Both VMs show up in flight (or briefly in the queue first), with a rising progress bar and a rate.
    const first = page.getByTestId(/^flight-vm-[25]$/).first();
    await first.waitFor({ timeout: 15_000 });
    const vm = (await first.getAttribute('data-testid'))!.replace('flight-', '');
    const p1 = await waitFor('progress above 0', async () => { const p = await progressOf(page, vm); return p > 0 ? p : undefined; }, { timeoutMs: 15_000 });
    const p2 = await waitFor('progress to rise', async () => { const p = await progressOf(page, vm); return p > p1 ? p : undefined; }, { timeoutMs: 15_000 });
    expect(p2).toBeGreaterThan(p1);
    expect(await first.getByTestId('rate').textContent()).toMatch(/\d .*iB\/s/);
    await expect(page.getByTestId('drain-node-2').textContent()).resolves.toContain('node-2');
    // Its details: the phase timeline, the statechart with Running lit, and its trace's spans, live.
    await page.getByRole('button', { name: `Details of the migration of ${vm}` }).click();
    const spans = page.getByRole('list', { name: 'Spans of this migration\'s trace' });
    await spans.getByText('hypervisor job').waitFor({ timeout: 10_000 });
    const names = await spans.getByRole('listitem').locator('.label').allTextContents();
    for (const n of [`migration default/${vm}`, 'phase Pending', 'phase Running', 'command start-source @node-2', 'handler start-source @node-2', 'hypervisor job @node-2']) expect(names).toContain(n);
    expect(await page.locator('.chart [aria-current="step"]').first().textContent()).toContain('Running');
    await page.screenshot({ path: artifactPath('console-drain.png'), fullPage: true });

    // Both finish; the drain shows its actual end; the page was never reloaded.
    for (const v of onNode2) {
      await page.getByTestId(`recent-${v}`).getByText('Succeeded').waitFor({ timeout: 60_000 });
      expect((await getVmi(env.kube, v)).status?.nodeName).not.toBe('node-2');
    }
    await waitFor('the drain to show its end', async () => /0\/2/.test((await page.getByTestId('drain-node-2').textContent()) ?? ''), { timeoutMs: 10_000 });
    await page.screenshot({ path: artifactPath('console-drain-done.png'), fullPage: true });
    expect(navigations()).toBe(1);
    // One event stream and the statecharts, fetched once; besides, the action's POST and the picked migration's
    // spans, fetched when a pushed snapshot changed it — no request loop of the page's own.
    const calls = apiRequests();
    expect(calls.filter((c) => c === 'GET /api/events')).toHaveLength(1);
    expect(calls.filter((c) => c === 'GET /api/statecharts')).toHaveLength(1);
    expect(calls.filter((c) => !/^(GET \/api\/events|GET \/api\/statecharts|POST \/api\/actions|GET \/api\/traces\/[\w-]+)$/.test(c))).toEqual([]);

    await page.getByRole('button', { name: 'Uncordon node-2' }).click();
    await page.getByRole('button', { name: 'Drain node-2' }).waitFor();
    await page.close();
  }, 120_000);

  test('cancelling a migration from the page leaves the VM on its source', async () => {
    const { page } = await open(web.url);
    const source = (await getVmi(env.kube, 'vm-5')).status?.nodeName;
    await page.getByRole('combobox', { name: 'VM' }).fill('default/vm-5');
    await page.getByRole('button', { name: 'Migrate', exact: true }).click();
    await page.getByText(/migration default\/vm-5-migration-\S+ created/).waitFor();
    const vmim = (await env.kube.listCustom(VMIM_RESOURCE, 'default')).items
      .map((o) => o as { metadata: { name: string }; spec: { vmiName: string }; status?: { phase?: string } })
      .find((o) => o.spec.vmiName === 'vm-5' && o.status?.phase !== 'Succeeded')!;
    // Cancel once it is really copying memory, the moment an operator would.
    await waitFor('vm-5 to be copying', async () => (await progressOf(page, 'vm-5').catch(() => 0)) > 0, { timeoutMs: 20_000 });
    await page.screenshot({ path: artifactPath('console-cancel.png'), fullPage: true });
    await page.getByTestId('flight-vm-5').getByRole('button', { name: 'Cancel migration of vm-5' }).click();
    await page.getByText(`migration default/${vmim.metadata.name} cancelled`).waitFor();
    await page.getByTestId('flight-vm-5').waitFor({ state: 'detached', timeout: 20_000 });
    await waitFor('the VMIM to be gone', async () => (await getVmim(env.kube, vmim.metadata.name)) === undefined, { timeoutMs: 20_000 });
    const vmi = await getVmi(env.kube, 'vm-5');
    expect(vmi.status?.nodeName).toBe(source);
    expect(vmi.status?.phase).toBe('Running');
    await page.close();
  }, 90_000);

  test('a user whom RBAC refuses sees the API server\'s refusal, and nothing changes', async () => {
    // A read-only user: may look at everything, may change nothing.
    const store = env.cluster.store;
    store.create('clusterroles.rbac.authorization.k8s.io', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'viewer' }, rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list', 'watch'] }] });
    store.create('clusterrolebindings.rbac.authorization.k8s.io', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'viewer' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'viewer' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'viewer' }],
    });
    const token = env.cluster.auth!.tokenFor({ name: 'viewer', groups: [] });
    const kcFile = path.join(dir, 'viewer.kubeconfig');
    writeFileSync(kcFile, kubeConfigYaml(env.cluster.url, token));
    const viewerConsole = await startConsole({ kube: KubeClient.fromFile(kcFile), port: 0, log: silentLogger });
    try {
      const { page } = await open(viewerConsole.url, { width: 1280, height: 800 });
      await page.getByRole('button', { name: 'Drain node-3' }).click();
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toMatch(/Refused \(403\): nodes "node-3" is forbidden: User "viewer" cannot patch resource "nodes"/);
      await page.screenshot({ path: artifactPath('console-refused.png') });
      const node = (await env.kube.core.readNode({ name: 'node-3' })) as { spec?: { unschedulable?: boolean } };
      expect(node.spec?.unschedulable).toBeFalsy();
      await page.close();
    } finally {
      await viewerConsole.close();
    }

    // The admin's console, but the page sends the viewer's token: the action is the viewer's, and refused.
    const { page } = await open(web.url);
    await page.getByText('Act as…').click();
    await page.getByLabel('Bearer token for actions').fill(token);
    await page.getByRole('button', { name: 'Use' }).click();
    await page.getByRole('button', { name: 'Drain node-1' }).click();
    await page.getByRole('alert').getByText(/User "viewer" cannot patch resource "nodes"/).waitFor();
    await page.close();
  }, 60_000);

  test('a runbook: resumed from the page, its node emptied, returned to service, with its planned and actual end', async () => {
    const now = Date.now();
    await createMaintenanceWindow(env.kube, {
      apiVersion: 'ferry.dev/v1alpha1',
      kind: 'MaintenanceWindow',
      metadata: { name: 'rack-c' },
      spec: { nodes: ['node-3'], maxNodesInMaintenance: 1, paused: true, done: { uncordoned: true }, window: { start: new Date(now).toISOString(), end: new Date(now + 3_600_000).toISOString() } },
    });
    const { page } = await open(web.url);
    const card = page.getByTestId('runbook-rack-c');
    await page.getByRole('button', { name: 'Resume runbook rack-c' }).click();
    await page.getByText('runbook rack-c resumed').waitFor();
    expect((await getMaintenanceWindow(env.kube, 'rack-c')).spec.paused).toBe(false);
    await card.getByText('ReadyForMaintenance').waitFor({ timeout: 30_000 });
    expect(await card.textContent()).toMatch(/predicted end \d/);
    // The maintenance is done: the operator returns the node to service from the page.
    await page.getByRole('button', { name: 'Uncordon node-3' }).click();
    await card.getByText('Completed').waitFor({ timeout: 20_000 });
    expect(await card.textContent()).toMatch(/actual end \d/);
    await page.screenshot({ path: artifactPath('console-runbook.png'), fullPage: true });
    await page.close();
  }, 60_000);
});
