/**
 * The libvirt lane, end to end: VMIMs on the embedded cluster move real QEMU
 * guests between two libvirtd launchers through Ferry's controller, its node
 * handlers (libvirt driver) and NATS. The assertions read the cluster's
 * objects and, for where each guest runs, the daemons' domain lists through a
 * separate observer driver; nothing is steered behind Ferry's back.
 *
 * Needs root and Debian packages (setup.sh installs them); when the machine
 * cannot run it, every test here FAILS saying why (see README.md).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeBus, connectBus } from '../../src/bus/connection.js';
import { FerryConfig } from '../../src/config/ferryConfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { guestXml, libvirtStateDir, type LibvirtNodes } from '../../src/devcluster/libvirtNodes.js';
import { startHandler, type RunningHandler } from '../../src/handler/handler.js';
import { JobRecordStore } from '../../src/handler/jobRecords.js';
import type { GuestSpec } from '../../src/hypervisor/driver.js';
import { LibvirtDriver } from '../../src/hypervisor/libvirt/driver.js';
import { VMIM_RESOURCE } from '../../src/kube/client.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { createVmim, getVmi, getVmim, launcherPods, waitForPhase } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';
import { launcherProcesses, MiB, prepareMachine, removeDomain, sleep, startLauncher, stillRunning, stopLauncher, type Launcher } from './lab.js';

const root = mkdtempSync(join(tmpdir(), 'ferry-libvirt-e2e-'));
/** Kept after the run: the controller's and handlers' JSON logs, for when a test fails. */
const LOG_FILE = join(tmpdir(), `ferry-libvirt-e2e-${process.getuid?.() ?? 'user'}.log`);
const NODES = ['node-1', 'node-2'] as const;
const DOMAIN = 'default_vm-1';
const NIC = 'ferry.dev/nic-capacity';

const launchers: Launcher[] = [];
const sockets: Record<string, string> = {};
const observers = new Map<string, LibvirtDriver>();
let dirtyImage = '';
let log: Logger;
let worlds = 0;

/** Which guest the next world boots: idle (diskless) or one that keeps rewriting 2 MiB of memory. */
let guestKind: 'idle' | 'dirty' = 'idle';
function domainTemplate(g: GuestSpec): string {
  return guestKind === 'idle' ? guestXml(g) : guestXml(g, dirtyImage);
}

interface World {
  env: DevEnvironment;
  nodes: LibvirtNodes;
  extra: Array<() => Promise<void>>;
}
let current: World | undefined;

/** A fresh cluster, controller and handlers over the same two daemons, with vm-1's guest booted on node-1. */
async function world(kind: 'idle' | 'dirty', config?: FerryConfig): Promise<World> {
  guestKind = kind;
  const nodes: LibvirtNodes = { kind: 'libvirt', sockets, domainTemplate, stateDir: join(root, 'state', String(++worlds)), pollIntervalMs: 200 };
  const env = await startDevEnvironment({
    natsUrl: process.env['NATS_URL']!,
    vms: 1,
    driver: nodes,
    log,
    progressIntervalMs: 250,
    ...(config ? { config } : {}),
  });
  current = { env, nodes, extra: [] };
  return current;
}

afterEach(async () => {
  const w = current;
  current = undefined;
  if (!w) return;
  for (const stop of w.extra) await stop().catch(() => undefined);
  await w.env.stop();
  for (const node of NODES) await removeDomain(sockets[node]!, DOMAIN);
}, 60_000);

async function stateOn(node: string): Promise<string> {
  return (await observers.get(node)!.listDomains()).find((d) => d.name === DOMAIN)?.state ?? 'missing';
}

async function setNicCapacity(env: DevEnvironment, capacity: string): Promise<void> {
  for (const node of NODES) await env.kube.patchNode(node, { metadata: { annotations: { [NIC]: capacity } } });
}

interface Progress {
  iteration?: number; dataTotal?: number; dataRemaining?: number; dataProcessed?: number;
  dirtyRate?: number; bandwidthLimit?: number; memoryBandwidth?: number; updated?: string;
}
async function progressOf(env: DevEnvironment, name: string): Promise<{ phase?: string; progress: Progress }> {
  const m = await getVmim(env.kube, name);
  return { ...(m?.status?.phase ? { phase: m.status.phase } : {}), progress: (m?.status as { progress?: Progress } | undefined)?.progress ?? {} };
}

/** Waits until the migration runs and the progress the controller wrote shows `iteration` rounds. */
async function runningAtIteration(env: DevEnvironment, name: string, iteration: number, timeoutMs = 45_000): Promise<Progress> {
  return waitFor(`VMIM ${name} running at iteration ${iteration} (logs: ${LOG_FILE})`, async () => {
    const { phase, progress } = await progressOf(env, name);
    if (phase === 'Succeeded' || phase === 'Failed') throw new Error(`migration ended early: ${phase}`);
    return phase === 'Running' && (progress.iteration ?? 0) >= iteration ? progress : undefined;
  }, { timeoutMs, intervalMs: 100 });
}

beforeAll(async () => {
  log = createLogger({ name: 'libvirt-e2e', level: 'debug', destination: LOG_FILE });
  dirtyImage = await prepareMachine(join(root, 'build'));
  for (const node of NODES) {
    const l = await startLauncher(node, join(root, node));
    launchers.push(l);
    sockets[node] = l.socketPath;
    observers.set(node, new LibvirtDriver({ socketPath: l.socketPath, node: `observer-${node}` }));
  }
}, 300_000);

afterAll(async () => {
  for (const o of observers.values()) await o.close().catch(() => undefined);
  const pids: number[] = [];
  for (const l of launchers) pids.push(...(await launcherProcesses(l)));
  for (const l of launchers) await stopLauncher(l);
  rmSync(root, { recursive: true, force: true });
  // Nothing the lane started may outlive it.
  expect(await stillRunning(pids)).toEqual([]);
}, 120_000);

test('an idle guest: the VMIM succeeds, the guest runs on the target daemon only, and the VMI says so', async () => {
  const { env } = await world('idle');
  const before = await getVmi(env.kube, 'vm-1');
  expect(before.status?.nodeName).toBe('node-1');
  expect(await stateOn('node-1')).toBe('running');
  expect(await stateOn('node-2')).toBe('missing');

  const started = Date.now();
  const name = await createVmim(env.kube, 'vm-1');
  const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 60_000);
  console.info(`[libvirt-e2e] idle 64 MiB guest, VMIM create → ${done.status?.phase}: ${Date.now() - started} ms`);
  expect(done.status?.phase).toBe('Succeeded');

  const vmi = await getVmi(env.kube, 'vm-1');
  expect(vmi.status?.nodeName).toBe('node-2');
  expect(vmi.status?.migrationState).toMatchObject({ migrationUid: done.metadata.uid, sourceNode: 'node-1', targetNode: 'node-2', completed: true, failed: false, mode: 'PreCopy' });
  expect(await stateOn('node-2')).toBe('running');
  expect(await stateOn('node-1')).toBe('missing'); // the source handler forgot the departed definition
  // The statistics are libvirt's: all of guest memory plus device state, nothing left.
  const progress = (done.status as { progress?: Progress }).progress!;
  expect(progress.dataTotal).toBeGreaterThanOrEqual(64 * MiB);
  expect(progress.dataTotal).toBeLessThan(80 * MiB);
  expect(progress.dataRemaining).toBe(0);
  const pods = await waitFor('the source launcher pod to go', async () => {
    const p = await launcherPods(env.kube, vmi.metadata.uid!);
    return p.length === 1 ? p : undefined;
  });
  expect(pods[0]!.spec?.nodeName).toBe('node-2');
}, 90_000);

test('a dirtying guest at a NIC capacity it cannot beat converges once the capacity is raised; the VMIM progress matches libvirt', async () => {
  // No downtime stepping: at 1 MiB/s only more bandwidth can finish it.
  const { env } = await world('dirty', FerryConfig.parse({ downtimeSteps: { firstStepAfter: 1000 } }));
  await setNicCapacity(env, '1Mi');
  await sleep(1500); // the guest's boot sector starts dirtying

  const name = await createVmim(env.kube, 'vm-1');
  const progress = await runningAtIteration(env, name, 3);
  const seen = await observers.get('node-1')!.inspectMigration(DOMAIN);
  expect(seen.migrating).toBe(true);
  expect(await stateOn('node-2')).toBe('incoming');
  // What reached the VMIM through handler → NATS → controller is libvirt's view, at most a second old.
  const live = seen.stats!;
  console.info(`[libvirt-e2e] non-converging: VMIM progress ${JSON.stringify(progress)}; libvirt ${JSON.stringify({ iteration: live.iteration, dataTotal: live.dataTotal, dataRemaining: live.dataRemaining, dirtyRate: live.dirtyRate, bandwidthLimit: live.bandwidthLimit })}`);
  expect(live.iteration - progress.iteration!).toBeGreaterThanOrEqual(0);
  expect(live.iteration - progress.iteration!).toBeLessThanOrEqual(1);
  expect(Math.abs(live.dataTotal - progress.dataTotal!) / live.dataTotal).toBeLessThan(0.02);
  expect(progress.bandwidthLimit).toBe(1 * MiB);
  expect(live.bandwidthLimit).toBe(1 * MiB);
  expect(progress.dirtyRate).toBeGreaterThan(0);
  expect(progress.dataRemaining).toBeGreaterThan(0.3 * MiB); // more than 300 ms at 1 MiB/s: no convergence
  expect(live.dataProcessed).toBeGreaterThanOrEqual(progress.dataProcessed!);

  const raisedAt = Date.now();
  await setNicCapacity(env, '1Gi');
  const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
  console.info(`[libvirt-e2e] converged ${Date.now() - raisedAt} ms after the NIC capacity was raised`);
  expect(done.status?.phase).toBe('Succeeded');
  const final = (done.status as { progress?: Progress }).progress!;
  expect(final.bandwidthLimit).toBeGreaterThan(100 * MiB);
  expect(final.iteration).toBeGreaterThanOrEqual(3);
  expect((await getVmi(env.kube, 'vm-1')).status?.nodeName).toBe('node-2');
  expect(await stateOn('node-2')).toBe('running');
  expect(await stateOn('node-1')).toBe('missing');
}, 120_000);

test('deleting the VMIM mid-migration aborts it: the guest keeps running on the source, nothing is left on the target', async () => {
  const { env } = await world('dirty');
  await setNicCapacity(env, '1Mi');
  await sleep(1500);
  const name = await createVmim(env.kube, 'vm-1');
  await runningAtIteration(env, name, 2);
  expect(await stateOn('node-2')).toBe('incoming');

  await env.kube.deleteCustom(VMIM_RESOURCE, 'default', name);
  await waitFor('the VMIM to be gone (finalizer released)', async () => (await getVmim(env.kube, name)) === undefined, { timeoutMs: 30_000 });

  expect(await stateOn('node-1')).toBe('running');
  expect(await stateOn('node-2')).toBe('missing');
  const vmi = await getVmi(env.kube, 'vm-1');
  expect(vmi.status?.nodeName).toBe('node-1');
  expect(vmi.status?.migrationState).toMatchObject({ sourceNode: 'node-1', targetNode: 'node-2', completed: true, failed: true, abortStatus: 'Succeeded' });
  const pods = await waitFor('the target launcher pod to go', async () => {
    const p = await launcherPods(env.kube, vmi.metadata.uid!);
    return p.length === 1 ? p : undefined;
  });
  expect(pods[0]!.spec?.nodeName).toBe('node-1');
}, 90_000);

/** The source handler dies the way a crashed process would: no more commands, progress or NATS, driver connection gone. */
async function crashHandler(env: DevEnvironment, node: string): Promise<void> {
  const agent = env.agents.get(node)!;
  await agent.handler.stop();
  agent.nc.close().catch(() => undefined);
  await agent.driver.close();
}

/** A new handler process for `node`: new driver, new NATS connection, the same records directory. */
async function restartHandler(w: World, node: string): Promise<RunningHandler> {
  const driver = new LibvirtDriver({ socketPath: sockets[node]!, node, domainTemplate, log, pollIntervalMs: 200 });
  const nc = await connectBus({ servers: process.env['NATS_URL']!, name: `ferry-handler-${node}-restarted`, log });
  const records = await JobRecordStore.open(libvirtStateDir(w.nodes, node));
  const handler = startHandler({ nc, node, driver, records, log: log.child({ node, restarted: true }), progressIntervalMs: 250 });
  w.extra.push(async () => {
    await handler.stop();
    await driver.close();
    await closeBus(nc);
  });
  return handler;
}

test('the source handler crashes mid-migration and restarts: it takes the running job over, and the migration still succeeds', async () => {
  const w = await world('dirty', FerryConfig.parse({ downtimeSteps: { firstStepAfter: 1000 } }));
  const { env } = w;
  await setNicCapacity(env, '1Mi');
  await sleep(1500);
  const name = await createVmim(env.kube, 'vm-1');
  await runningAtIteration(env, name, 2);

  await crashHandler(env, 'node-1');
  await sleep(1500);
  // Without a handler the migration goes on inside libvirtd, and the VMIM waits.
  expect((await observers.get('node-1')!.inspectMigration(DOMAIN)).migrating).toBe(true);
  expect((await getVmim(env.kube, name))?.status?.phase).toBe('Running');

  const restartedAt = Date.now();
  const handler = await restartHandler(w, 'node-1');
  expect(await handler.recovered).toEqual({ attached: [DOMAIN], settled: [], republished: [], tombstones: [], left: [] });
  // Progress flows again, from the new handler.
  await waitFor('progress written after the restart', async () => {
    const { progress } = await progressOf(env, name);
    return progress.updated !== undefined && Date.parse(progress.updated) > restartedAt;
  }, { timeoutMs: 10_000 });

  // The controller's bandwidth raise reaches the job through the new handler.
  await setNicCapacity(env, '1Gi');
  const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
  expect(done.status?.phase).toBe('Succeeded');
  expect((await getVmi(env.kube, 'vm-1')).status?.nodeName).toBe('node-2');
  expect(await stateOn('node-2')).toBe('running');
  expect(await stateOn('node-1')).toBe('missing');
  // Published: what is left of the record is a tombstone, until the controller's forget-job removes it.
  const dir = libvirtStateDir(w.nodes, 'node-1');
  for (const f of readdirSync(dir).filter((name) => name.endsWith('.json'))) {
    expect(JSON.parse(readFileSync(join(dir, f), 'utf8'))).toMatchObject({ published: true, result: { outcome: 'completed' } });
  }
}, 120_000);

test('the source handler crashes and the migration completes while it is down: the restarted handler reports it, the VMIM succeeds', async () => {
  const w = await world('idle');
  const { env } = w;
  const name = await createVmim(env.kube, 'vm-1');
  await waitFor('the migration to start', async () => (await getVmim(env.kube, name))?.status?.phase === 'Running', { timeoutMs: 30_000, intervalMs: 25 });
  await crashHandler(env, 'node-1');

  // libvirtd finishes the job with nobody watching it on the source side.
  await waitFor('the guest to arrive on node-2', async () => (await stateOn('node-2')) === 'running' && (await stateOn('node-1')) === 'shutoff', { timeoutMs: 30_000, intervalMs: 200 });
  await sleep(500);
  expect((await getVmim(env.kube, name))?.status?.phase).toBe('Running');

  const handler = await restartHandler(w, 'node-1');
  expect(await handler.recovered).toEqual({ attached: [], settled: [{ domain: DOMAIN, outcome: 'completed' }], republished: [], tombstones: [], left: [] });
  const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
  expect(done.status?.phase).toBe('Succeeded');
  const vmi = await getVmi(env.kube, 'vm-1');
  expect(vmi.status?.nodeName).toBe('node-2');
  expect(vmi.status?.migrationState).toMatchObject({ completed: true, failed: false, targetNode: 'node-2' });
  expect(await stateOn('node-2')).toBe('running');
  expect(await stateOn('node-1')).toBe('missing');
}, 90_000);
