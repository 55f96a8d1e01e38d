/**
 * The libvirt lane in KubeVirt's layout: every virt-launcher pod of the
 * embedded cluster is a libvirtd of its own (the kubelet stand-in starts it
 * in its own mount namespace, sockets in the pod's emptyDirs), handlers find
 * a VM's launcher by pod UID, and every migration connection goes
 * source launcher → source handler ══mTLS══▶ target handler → target launcher.
 *
 * Needs root and Debian packages (setup.sh installs them); when the machine
 * cannot run it, every test here FAILS saying why (see README.md).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FerryConfig } from '../../src/config/ferryConfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { guestXml } from '../../src/devcluster/libvirtNodes.js';
import type { GuestSpec } from '../../src/hypervisor/driver.js';
import { LibvirtDriver } from '../../src/hypervisor/libvirt/driver.js';
import { LauncherLocator } from '../../src/launcher/locator.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { createVmim, getVmi, getVmim, launcherPods, waitForPhase } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';
import { MiB, prepareMachine, sleep, stillRunning } from './lab.js';

const root = mkdtempSync(join(tmpdir(), 'ferry-launchers-'));
const LOG_FILE = join(tmpdir(), `ferry-launchers-e2e-${process.getuid?.() ?? 'user'}.log`);
const NIC = 'ferry.dev/nic-capacity';
let dirtyImage = '';
let log: Logger;
let env: DevEnvironment | undefined;
let worlds = 0;

beforeAll(async () => {
  log = createLogger({ name: 'launchers-e2e', level: 'debug', destination: LOG_FILE });
  dirtyImage = await prepareMachine(join(root, 'build'));
}, 300_000);

afterAll(() => {
  // FERRY_KEEP=1 keeps the launchers' logs and pod dirs for a post-mortem.
  if (process.env['FERRY_KEEP'] !== '1') rmSync(root, { recursive: true, force: true });
});

/**
 * Every launcher process (libvirtd and its QEMUs) this world started, from their pid files under the world's own
 * directory: other libvirt daemons on the machine (another lane, a developer's) are none of this test's business.
 */
function launcherPids(worldRoot: string): number[] {
  const files = readdirSync(worldRoot, { recursive: true, encoding: 'utf8' }).filter((f) => /(^|\/)launcher\.pid$|(^|\/)qemu\/[^/]+\.pid$/.test(f));
  return files.flatMap((f) => {
    try {
      const pid = Number(readFileSync(join(worldRoot, f), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? [pid] : [];
    } catch {
      return [];
    }
  });
}

afterEach(async () => {
  const e = env;
  env = undefined;
  if (!e) return;
  const before = launcherPids(join(root, `w${worlds}`));
  expect(before.length).toBeGreaterThan(0);
  await e.stop();
  expect(e.launchers!.pods.count).toBe(0);
  // Stopping the world stops every launcher daemon and QEMU it started.
  await waitFor('launcher processes to go', async () => (await stillRunning(before)).length === 0 || undefined, { timeoutMs: 20_000 });
}, 90_000);

/** A world of `nodes` nodes and `vms` VMIs (vm-i on node-((i-1) % nodes + 1)); vm names in `dirty` run the dirtying guest. */
async function world(opts: { nodes: number; vms: number; dirty?: string[]; config?: FerryConfig }): Promise<DevEnvironment> {
  const dirty = new Set((opts.dirty ?? []).map((n) => `default_${n}`));
  const template = (g: GuestSpec) => guestXml(g, dirty.has(g.name) ? dirtyImage : undefined);
  env = await startDevEnvironment({
    natsUrl: process.env['NATS_URL']!,
    vms: opts.vms,
    driver: { kind: 'launchers', root: join(root, `w${++worlds}`), nodes: opts.nodes, domainTemplate: template, pollIntervalMs: 200 },
    log,
    progressIntervalMs: 250,
    cluster: { podStartDelayMs: 50 },
    ...(opts.config ? { config: opts.config } : {}),
  });
  return env;
}

/** Where a VMI's guest runs: the state of its domain in each of its launcher pods' daemons, by node. */
async function guestStates(e: DevEnvironment, vmiName: string): Promise<Record<string, string>> {
  const vmi = await getVmi(e.kube, vmiName);
  const out: Record<string, string> = {};
  for (const pod of await launcherPods(e.kube, vmi.metadata.uid!)) {
    const node = pod.spec!.nodeName!;
    const locator = new LauncherLocator(e.agents.get(node)!.podsDir!, node);
    let launcher;
    try {
      launcher = locator.byPodUID(pod.metadata.uid!);
    } catch {
      out[node] = 'no-launcher';
      continue;
    }
    const d = new LibvirtDriver({ socketPath: launcher.libvirtSocket, node: `observer-${node}` });
    try {
      out[node] = (await d.listDomains()).find((x) => x.name === `default_${vmiName}`)?.state ?? 'missing';
    } finally {
      await d.close();
    }
  }
  return out;
}

test('an idle guest moves between two launcher pods through the handlers\' mTLS proxy; the target publishes its address and ports', async () => {
  const e = await world({ nodes: 2, vms: 1 });
  expect(await guestStates(e, 'vm-1')).toEqual({ 'node-1': 'running' });

  const started = Date.now();
  const name = await createVmim(e.kube, 'vm-1');
  const running = await waitFor('the target to publish its proxy', async () => {
    const vmi = await getVmi(e.kube, 'vm-1');
    return vmi.status?.migrationState?.targetDirectMigrationNodePorts ? vmi : undefined;
  }, { timeoutMs: 30_000, intervalMs: 50 });
  const ms = running.status!.migrationState!;
  expect(ms.targetNodeAddress).toBe('127.0.0.1');
  expect(Object.values(ms.targetDirectMigrationNodePorts!).sort()).toEqual([0, 49152]);

  const done = await waitForPhase(e.kube, name, ['Succeeded', 'Failed'], 60_000);
  console.info(`[launchers-e2e] idle 64 MiB guest through the proxy, VMIM create → ${done.status?.phase}: ${Date.now() - started} ms`);
  expect(done.status?.phase).toBe('Succeeded');
  const vmi = await getVmi(e.kube, 'vm-1');
  expect(vmi.status?.nodeName).toBe('node-2');
  await waitFor('the source launcher pod to go', async () => ((await launcherPods(e.kube, vmi.metadata.uid!)).length === 1) || undefined);
  expect(await guestStates(e, 'vm-1')).toEqual({ 'node-2': 'running' });
}, 120_000);

async function setNicCapacity(e: DevEnvironment, capacity: string): Promise<void> {
  for (const node of e.agents.keys()) await e.kube.patchNode(node, { metadata: { annotations: { [NIC]: capacity } } });
}

interface Progress { iteration?: number; dataRemaining?: number; bandwidthLimit?: number; dirtyRate?: number }
async function runningAtIteration(e: DevEnvironment, name: string, iteration: number, timeoutMs = 60_000): Promise<Progress> {
  return waitFor(`VMIM ${name} running at iteration ${iteration} (logs: ${LOG_FILE})`, async () => {
    const m = await getVmim(e.kube, name);
    const phase = m?.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') throw new Error(`migration ended early: ${phase}`);
    const p = (m?.status as { progress?: Progress } | undefined)?.progress ?? {};
    return phase === 'Running' && (p.iteration ?? 0) >= iteration ? p : undefined;
  }, { timeoutMs, intervalMs: 100 });
}

function proxyOf(e: DevEnvironment, node: string) {
  return e.agents.get(node)!.driver as import('../../src/launcher/launcherDriver.js').LauncherDriver;
}

test('two VMs on one node migrate at the same time to different nodes, each through its own launcher and proxied connections', async () => {
  // vm-1 and vm-4 run on node-1.
  const e = await world({ nodes: 3, vms: 4 });
  const [a, b] = await Promise.all([createVmim(e.kube, 'vm-1'), createVmim(e.kube, 'vm-4')]);
  const uids = await waitFor('both migrations to run', async () => {
    const ms = await Promise.all([getVmim(e.kube, a), getVmim(e.kube, b)]);
    return ms.every((m) => m?.status?.phase === 'Running' || m?.status?.phase === 'Succeeded') ? ms.map((m) => m!.metadata.uid!) : undefined;
  }, { timeoutMs: 60_000 });
  const [da, db] = await Promise.all([waitForPhase(e.kube, a, ['Succeeded', 'Failed'], 90_000), waitForPhase(e.kube, b, ['Succeeded', 'Failed'], 90_000)]);
  expect([da.status?.phase, db.status?.phase]).toEqual(['Succeeded', 'Succeeded']);
  const [v1, v4] = await Promise.all([getVmi(e.kube, 'vm-1'), getVmi(e.kube, 'vm-4')]);
  expect(v1.status?.nodeName).not.toBe('node-1');
  expect(v4.status?.nodeName).not.toBe('node-1');
  expect(v1.status?.nodeName).not.toBe(v4.status?.nodeName);
  // Each migration had its own memory socket (keyed by its uid) and its own target listeners.
  expect(uids[0]).not.toBe(uids[1]);
  expect(da.status?.migrationState?.targetNodeAddress ?? v1.status?.migrationState?.targetNodeAddress).toBe('127.0.0.1');
  expect(Object.keys(v1.status!.migrationState!.targetDirectMigrationNodePorts!)).not.toEqual(Object.keys(v4.status!.migrationState!.targetDirectMigrationNodePorts!));
  await waitFor('the source launcher pods to go', async () => ((await launcherPods(e.kube, v1.metadata.uid!)).length === 1 && (await launcherPods(e.kube, v4.metadata.uid!)).length === 1) || undefined, { timeoutMs: 20_000 });
  expect(await guestStates(e, 'vm-1')).toEqual({ [v1.status!.nodeName!]: 'running' });
  expect(await guestStates(e, 'vm-4')).toEqual({ [v4.status!.nodeName!]: 'running' });
}, 180_000);

test('a dirtying guest held at 1 MiB/s does not converge through the proxy, then does once the bandwidth is raised live', async () => {
  const e = await world({ nodes: 2, vms: 1, dirty: ['vm-1'], config: FerryConfig.parse({ downtimeSteps: { firstStepAfter: 1000 } }) });
  await setNicCapacity(e, '1Mi');
  await sleep(1500);
  const name = await createVmim(e.kube, 'vm-1');
  const held = await runningAtIteration(e, name, 3);
  expect(held.bandwidthLimit).toBe(1 * MiB);
  expect(held.dataRemaining!).toBeGreaterThan(0.3 * MiB);
  const uid = (await getVmim(e.kube, name))!.metadata.uid!;
  const before = proxyOf(e, 'node-1').proxyCounters(uid)!;
  expect(before.connections).toBeGreaterThanOrEqual(2);

  const raisedAt = Date.now();
  await setNicCapacity(e, '1Gi');
  const done = await waitForPhase(e.kube, name, ['Succeeded', 'Failed'], 60_000);
  console.info(`[launchers-e2e] dirtying guest converged through the proxy ${Date.now() - raisedAt} ms after the raise`);
  expect(done.status?.phase).toBe('Succeeded');
  expect((await getVmi(e.kube, 'vm-1')).status?.nodeName).toBe('node-2');
}, 180_000);

test('the target pod deleted mid-migration: the VMIM fails and the guest keeps running on the source, in its launcher', async () => {
  const e = await world({ nodes: 2, vms: 1, dirty: ['vm-1'] });
  await setNicCapacity(e, '1Mi');
  await sleep(1500);
  const name = await createVmim(e.kube, 'vm-1');
  await runningAtIteration(e, name, 2);
  const vmi = await getVmi(e.kube, 'vm-1');
  const target = (await launcherPods(e.kube, vmi.metadata.uid!)).find((p) => p.spec?.nodeName === 'node-2')!;
  await e.kube.deletePod('default', target.metadata.name);

  const done = await waitForPhase(e.kube, name, ['Succeeded', 'Failed'], 60_000);
  expect(done.status?.phase).toBe('Failed');
  const after = await getVmi(e.kube, 'vm-1');
  expect(after.status?.nodeName).toBe('node-1');
  await waitFor('the target pod to go', async () => ((await launcherPods(e.kube, vmi.metadata.uid!)).length === 1) || undefined, { timeoutMs: 20_000 });
  expect(await guestStates(e, 'vm-1')).toEqual({ 'node-1': 'running' });
}, 180_000);

test('a source presenting a certificate from another CA is refused before any guest memory is sent; the VMIM fails, the guest stays', async () => {
  const e = await world({ nodes: 2, vms: 1 });
  const { createCa, issue } = await import('../../src/certs/index.js');
  const { systemClock } = await import('../../src/util/clock.js');
  const pki = e.launchers!.pki;
  const good = pki.client.current;
  const rogueCa = await createCa({ commonName: 'rogue-ca', validity: 86_400_000, clock: systemClock });
  const rogue = await issue(rogueCa, { commonName: 'ferry:client:migration', usage: 'client', role: 'migration', validity: 3_600_000, clock: systemClock });
  pki.client.update({ ...rogue, caPem: good.caPem });

  const name = await createVmim(e.kube, 'vm-1');
  const done = await waitForPhase(e.kube, name, ['Succeeded', 'Failed'], 60_000);
  expect(done.status?.phase).toBe('Failed');
  expect(await guestStates(e, 'vm-1')).toMatchObject({ 'node-1': 'running' });
  expect((await getVmi(e.kube, 'vm-1')).status?.nodeName).toBe('node-1');
  // The target handler refused every connection, and delivered none to the target launcher.
  const uid = done.metadata.uid!;
  const lines = readFileSync(LOG_FILE, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['migrationUid'] === uid);
  expect(lines.filter((l) => l['msg'] === 'migration connection refused').length).toBeGreaterThanOrEqual(1);
  expect(lines.filter((l) => l['msg'] === 'migration connection delivered to the target launcher')).toEqual([]);

  // With the right certificate back, the retry goes through.
  pki.client.update(good);
  const retry = await createVmim(e.kube, 'vm-1');
  expect((await waitForPhase(e.kube, retry, ['Succeeded', 'Failed'], 60_000)).status?.phase).toBe('Succeeded');
}, 180_000);

test('the source handler dies mid-migration (its proxy with it): the migration fails, the guest stays on the source, the restarted handler reports it and the retry succeeds', async () => {
  const e = await world({ nodes: 2, vms: 1, dirty: ['vm-1'] });
  await setNicCapacity(e, '1Mi');
  await sleep(1500);
  const name = await createVmim(e.kube, 'vm-1');
  await runningAtIteration(e, name, 2);

  // What a killed process leaves: no commands, no NATS, every proxied connection cut.
  const agent = e.agents.get('node-1')!;
  await agent.handler.stop();
  agent.nc.close().catch(() => undefined);
  await agent.driver.close();
  await waitFor('libvirt to end the job', async () => (await guestStates(e, 'vm-1'))['node-1'] === 'running' || undefined, { timeoutMs: 30_000 });

  const { LauncherDriver } = await import('../../src/launcher/launcherDriver.js');
  const { tlsTransport } = await import('../../src/proxy/migrationTls.js');
  const { connectBus, closeBus } = await import('../../src/bus/connection.js');
  const { startHandler } = await import('../../src/handler/handler.js');
  const { JobRecordStore } = await import('../../src/handler/jobRecords.js');
  const pki = e.launchers!.pki;
  const driver = new LauncherDriver({ node: 'node-1', podsDir: agent.podsDir!, migrationAddress: '127.0.0.1', tls: tlsTransport(pki.server, pki.client), log, pollIntervalMs: 200 });
  const nc = await connectBus({ servers: process.env['NATS_URL']!, name: 'ferry-handler-node-1-restarted', log });
  const records = await JobRecordStore.open(join(root, `w${worlds}`, 'node-1', 'handler'));
  const handler = startHandler({ nc, node: 'node-1', driver, records, log: log.child({ node: 'node-1', restarted: true }), progressIntervalMs: 250 });
  try {
    const recovered = await handler.recovered;
    expect(recovered.settled).toEqual([{ domain: 'default_vm-1', outcome: 'failed' }]);
    const done = await waitForPhase(e.kube, name, ['Succeeded', 'Failed'], 60_000);
    expect(done.status?.phase).toBe('Failed');
    expect((await getVmi(e.kube, 'vm-1')).status?.nodeName).toBe('node-1');
    await waitFor('the target pod to go', async () => ((await launcherPods(e.kube, (await getVmi(e.kube, 'vm-1')).metadata.uid!)).length === 1) || undefined, { timeoutMs: 20_000 });
    expect(await guestStates(e, 'vm-1')).toEqual({ 'node-1': 'running' });

    await setNicCapacity(e, '1Gi');
    const retry = await createVmim(e.kube, 'vm-1');
    expect((await waitForPhase(e.kube, retry, ['Succeeded', 'Failed'], 90_000)).status?.phase).toBe('Succeeded');
    expect((await getVmi(e.kube, 'vm-1')).status?.nodeName).toBe('node-2');
  } finally {
    await handler.stop();
    await driver.close();
    await closeBus(nc);
  }
}, 240_000);
