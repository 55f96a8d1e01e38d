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
import { mkdtempSync, rmSync } from 'node:fs';
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

/** Every launcher process (libvirtd and its QEMUs) of the world, to check none outlives it. */
async function launcherPids(): Promise<number[]> {
  const { execFile } = await import('node:child_process');
  const out = await new Promise<string>((resolve) => execFile('pgrep', ['-f', `libvirtd|qemu-system`], (_e, stdout) => resolve(stdout)));
  return out.trim().split('\n').filter(Boolean).map(Number);
}

afterEach(async () => {
  const e = env;
  env = undefined;
  if (!e) return;
  const before = await launcherPids();
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
