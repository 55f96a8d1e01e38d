/**
 * A controller replica paused past its lease (SIGSTOP, a blocked event loop)
 * wakes up still believing it leads. None of its commands or status writes may
 * take effect: commands carry its epoch (the Lease's leaseTransitions), which
 * handlers that obeyed the new leader refuse; writes are fenced by a lease
 * freshness check on its own clock and guarded by resourceVersion preconditions.
 * Real dev cluster (Lease, VMIM), real nats-server and handler, sim driver.
 */
import { CoordinationV1Api, KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { NatsConnection } from 'nats';
import { closeBus, connectBus } from '../../../src/bus/connection.js';
import { CommandError } from '../../../src/bus/rpc.js';
import { NodeSide, isDefiniteCommandError } from '../../../src/controller/nodeSide.js';
import { StatusWriter } from '../../../src/controller/statusWriter.js';
import { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import { startHandler, type RunningHandler } from '../../../src/handler/handler.js';
import { SimDriver } from '../../../src/hypervisor/sim.js';
import { KubeClient, VMIM_RESOURCE } from '../../../src/kube/client.js';
import { LeaderElector, type LeaseApi } from '../../../src/kube/leaderElection.js';
import { silentLogger } from '../../../src/util/log.js';
import type { Clock } from '../../../src/util/clock.js';
import { waitFor } from '../../support/wait.js';

let cluster: DevCluster;
let kube: KubeClient;
let leases: CoordinationV1Api;
let nc: NatsConnection;
let handler: RunningHandler;
let driver: SimDriver;
const node = `stale-leader-${process.pid}`;
const electors: LeaderElector[] = [];

beforeAll(async () => {
  cluster = await startDevCluster();
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeConfigYaml());
  kube = new KubeClient(kc);
  leases = kc.makeApiClient(CoordinationV1Api);
  nc = await connectBus({ servers: process.env['NATS_URL']!, name: 'stale-leader-test', log: silentLogger });
  driver = new SimDriver({ node });
  handler = startHandler({ nc, node, driver, log: silentLogger });
  await handler.recovered;
});
afterAll(async () => {
  for (const e of electors) await e.stop();
  await handler?.stop();
  await driver?.close();
  if (nc) await closeBus(nc);
  await cluster?.close();
});

async function readVmim(name: string) {
  const r = VirtualMachineInstanceMigration.safeParse(await kube.getCustom(VMIM_RESOURCE, 'default', name));
  if (!r.success) throw new Error(`VMIM ${name} does not parse`);
  return r.data;
}

/** A replica that can be paused: its API calls hang and its clock jumps, as for a SIGSTOPped process. */
function pausable(id: string) {
  let offset = 0;
  let frozen: Promise<void> | undefined;
  let thaw: (() => void) | undefined;
  const clock: Clock = { now: () => Date.now() + offset, setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
  const gate = async <T>(call: () => Promise<T>): Promise<T> => {
    if (frozen) await frozen;
    return call();
  };
  const api: LeaseApi = {
    readNamespacedLease: (p) => gate(() => leases.readNamespacedLease(p)),
    createNamespacedLease: (p) => gate(() => leases.createNamespacedLease(p)),
    replaceNamespacedLease: (p) => gate(() => leases.replaceNamespacedLease(p)),
  };
  const elector = new LeaderElector({ api, namespace: 'kube-system', name: 'ferry-stale-test', identity: id, clock, leaseDurationMs: 2000, renewDeadlineMs: 1200, retryPeriodMs: 150, log: silentLogger });
  electors.push(elector);
  return {
    elector,
    pause(ms: number) {
      frozen = new Promise<void>((r) => (thaw = r));
      offset += ms;
    },
    /** The process runs again: its pending calls go out. */
    resume() {
      frozen = undefined;
      thaw?.();
    },
    /** What `ferry controller` passes the controller (src/cli/commands/controller.ts). */
    leadership: { isLeader: () => elector.holdsLease(), epoch: () => elector.epoch() },
  };
}

const ref = (uid: string) => ({ migrationUid: uid, attempt: 1, vmi: 'default/vm-stale' });
const guest = { name: 'default_vm-stale', memoryBytes: 2 ** 30 };

test('a leader paused past its lease wakes up fenced: its commands are refused and its writes do not land', async () => {
  await kube.createCustom(VMIM_RESOURCE, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'stale', namespace: 'default' }, spec: { vmiName: 'vm-stale' } });
  const a = pausable('replica-a');
  a.elector.start();
  await waitFor('replica-a to lead', () => a.elector.holdsLease());
  const deposedBy: string[] = [];
  const nodesA = new NodeSide({ nc, timeoutMs: 2000, epoch: () => a.leadership.epoch(), onStaleEpoch: (n) => deposedBy.push(n) });
  const fenceA = async () => {
    if (!a.leadership.isLeader()) throw new Error('replica-a no longer holds the lease');
  };
  const read = () => readVmim('stale');
  const writerA = new StatusWriter(kube, await read(), silentLogger, () => undefined, { fence: fenceA, attempts: 2 });
  await writerA.phase('Running');
  expect((await read()).status?.phase).toBe('Running');

  // Replica A stops (SIGSTOP) for longer than the lease; replica B takes over and acts.
  a.pause(5000);
  const b = pausable('replica-b');
  b.elector.start();
  await waitFor('replica-b to lead', () => b.elector.holdsLease(), { timeoutMs: 10_000 });
  expect(b.elector.epoch()).toBeGreaterThan(a.elector.epoch());
  const nodesB = new NodeSide({ nc, timeoutMs: 2000, epoch: () => b.leadership.epoch() });
  await nodesB.command(node, 'forget-job', ref('uid-b')); // the handler has obeyed the new leader
  const writerB = new StatusWriter(kube, await read(), silentLogger, () => undefined, { fence: async () => undefined });
  await writerB.phase('Failed', { failureReason: 'decided by the new leader' });

  // Replica A wakes up. Its own clock says it has not renewed for 5 s: it is fenced
  // at once, whatever its step-down timer has done so far.
  a.resume();
  expect(a.leadership.isLeader()).toBe(false);
  await expect(writerA.phase('Succeeded')).rejects.toThrow(/no longer holds the lease/);
  // A command it sends anyway carries its old epoch, and the handler refuses it: nothing is prepared.
  const err = await nodesA.command(node, 'prepare-target', { ...ref('uid-a'), guest, sourceNode: 'elsewhere' }).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(CommandError);
  expect((err as CommandError).code).toBe('stale-epoch');
  expect(isDefiniteCommandError(err)).toBe(true);
  // The refusal is proof of a newer leader: the controller is told, and fences all its writes from then on.
  expect(deposedBy).toEqual([node]);
  expect((await driver.listDomains()).find((d) => d.name === guest.name)).toBeUndefined();

  // Even a write that slipped past the fence (a stale copy of the VMIM) cannot move a final phase back.
  const slipped = new StatusWriter(kube, { metadata: { name: 'stale', namespace: 'default' }, spec: { vmiName: 'vm-stale' }, status: { phase: 'Running' } }, silentLogger, () => undefined);
  await slipped.phase('Succeeded');
  const final = await read();
  expect(final.status?.phase).toBe('Failed');
  expect(final.status?.phaseTransitionTimestamps?.map((p) => p.phase)).toEqual(['Running', 'Failed']);
  expect(final.status?.conditions?.find((c) => c.type === 'Failed')?.message).toBe('decided by the new leader');
  const lease: V1Lease = await leases.readNamespacedLease({ name: 'ferry-stale-test', namespace: 'kube-system' });
  expect(lease.spec?.holderIdentity).toBe('replica-b');
}, 30_000);

test('a phase write from a stale copy never moves a migration back (a woken replica\'s held Pending after a newer leader\'s Running)', async () => {
  await kube.createCustom(VMIM_RESOURCE, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'backwards', namespace: 'default' }, spec: { vmiName: 'vm-backwards' } });
  const read = () => readVmim('backwards');
  const stale = new StatusWriter(kube, await read(), silentLogger, () => undefined);
  const newer = new StatusWriter(kube, await read(), silentLogger, () => undefined);
  await newer.phase('Scheduling');
  await newer.phase('TargetReady');
  await newer.phase('Running');
  await stale.phase('Scheduling');
  const after = await read();
  expect(after.status?.phase).toBe('Running');
  expect(after.status?.phaseTransitionTimestamps?.map((p) => p.phase)).toEqual(['Scheduling', 'TargetReady', 'Running']);
});

test('a progress write from a stale copy does not land: not over a newer leader\'s progress, not after its final phase', async () => {
  await kube.createCustom(VMIM_RESOURCE, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'stale-progress', namespace: 'default' }, spec: { vmiName: 'vm-stale' } });
  const read = () => readVmim('stale-progress');
  const stats = (dataRemaining: number) => ({
    phase: 'running' as const, mode: 'PreCopy' as const, elapsedMs: 1, dataTotal: 100, dataProcessed: 100 - dataRemaining, dataRemaining,
    memoryBandwidth: 10, dirtyRate: 0, iteration: 1, autoConvergeThrottle: 0, bandwidthLimit: 0,
  });
  const progressOf = async () => ((await read()).status as { progress?: { dataRemaining?: number } } | undefined)?.progress?.dataRemaining;
  // Progress goes out at once (no interval), and each step waits for the writer's queue to drain.
  const opts = { attempts: 2, progressIntervalMs: 0 };
  const drained = (w: StatusWriter) => w.run(async () => undefined);
  // Replica A writes Running and progress; its fence lets it through (it slipped past the lease check).
  const writerA = new StatusWriter(kube, await read(), silentLogger, () => undefined, opts);
  await writerA.phase('Running');
  writerA.progress(stats(90));
  await drained(writerA);
  expect(await progressOf()).toBe(90);

  // Replica B, the new leader, writes its own progress: A's next write rests on a stale read.
  const writerB = new StatusWriter(kube, await read(), silentLogger, () => undefined, opts);
  writerB.progress(stats(40));
  await drained(writerB);
  writerA.progress(stats(80));
  await drained(writerA);
  expect(await progressOf()).toBe(40);

  // B finishes it; A (which re-reads after its failed write) must not write progress over the final phase.
  await writerB.phase('Failed', { failureReason: 'decided by the new leader' });
  const before = await read();
  writerA.progress(stats(70));
  writerA.bandwidth(1234);
  await drained(writerA);
  const after = await read();
  expect(after.status?.phase).toBe('Failed');
  expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  expect(await progressOf()).toBe(40);
});
