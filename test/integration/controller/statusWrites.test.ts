/**
 * What a migration's VMIM status costs the API server. Phase steps that come
 * close together go out as one write that still records every step; progress
 * reported every few hundred ms reaches the VMIM at most once per interval,
 * with the latest figures, and rides on a phase write when there is one.
 * Real dev cluster over HTTP; the writes are counted from its request log.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { StatusWriter } from '../../../src/controller/statusWriter.js';
import { STALE_PLACEMENT_CONDITION_REASON, stalePlacementReason } from '../../../src/controller/stalePlacement.js';
import { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';
import { startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import type { JobStats } from '../../../src/hypervisor/driver.js';
import { KubeClient, VMIM_RESOURCE } from '../../../src/kube/client.js';
import { silentLogger } from '../../../src/util/log.js';

let cluster: DevCluster;
let kube: KubeClient;
const statusWrites: string[] = [];

beforeAll(async () => {
  cluster = await startDevCluster({
    log: (line) => {
      const m = /^(PATCH|PUT) (\S+)/.exec(line);
      if (m && /virtualmachineinstancemigrations\/[^/]+\/status/.test(m[2]!)) statusWrites.push(m[2]!);
    },
  });
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeConfigYaml());
  kube = new KubeClient(kc);
});
afterAll(async () => {
  await cluster?.close();
});

async function vmim(name: string) {
  await kube.createCustom(VMIM_RESOURCE, 'default', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name, namespace: 'default' }, spec: { vmiName: `vm-${name}` } });
  return read(name);
}

async function read(name: string) {
  const r = VirtualMachineInstanceMigration.safeParse(await kube.getCustom(VMIM_RESOURCE, 'default', name));
  if (!r.success) throw new Error('bad VMIM');
  return r.data;
}

const writesOf = (name: string) => statusWrites.filter((u) => u.includes(`/${name}/status`)).length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stats(processed: number): JobStats {
  return { phase: 'running', mode: 'PreCopy', elapsedMs: processed, dataTotal: 1000, dataProcessed: processed, dataRemaining: 1000 - processed, memoryBandwidth: 100, dirtyRate: 0, iteration: 1, autoConvergeThrottle: 0, bandwidthLimit: 0 };
}

test('reporting steps wait for the next one to share its write; resume points and final phases go out at once, every step recorded', async () => {
  const writer = new StatusWriter(kube, await vmim('burst'), silentLogger, () => undefined, { coalesceMs: 500 });
  await writer.phase('Scheduling');
  expect(writesOf('burst')).toBe(1);
  const held = [writer.phase('Scheduled')];
  await sleep(50);
  held.push(writer.phase('PreparingTarget'));
  await sleep(50);
  expect(writesOf('burst')).toBe(1); // both held
  // TargetReady is where a restarted controller resumes before starting the source: written now, with the held two.
  await writer.phase('TargetReady');
  await Promise.all(held);
  expect(writesOf('burst')).toBe(2);
  await writer.phase('Running');
  expect(writesOf('burst')).toBe(3);
  let st = (await read('burst')).status;
  const steps = ['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running'];
  expect(st?.phase).toBe('Running');
  expect(st?.phaseTransitionTimestamps?.map((t) => t.phase)).toEqual(steps);
  const times = st!.phaseTransitionTimestamps!.map((t) => Date.parse(t.phaseTransitionTimestamp));
  expect([...times].sort((a, b) => a - b)).toEqual(times);
  expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(40); // each step keeps the time it happened, not the write's

  // Steps that arrive while a write is in flight share the next one.
  const writer2 = new StatusWriter(kube, await vmim('burst2'), silentLogger, () => undefined);
  await Promise.all((['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady'] as const).map((p) => writer2.phase(p)));
  expect(writesOf('burst2')).toBe(1);

  // Final: no waiting.
  const t0 = Date.now();
  await writer.phase('Succeeded');
  expect(Date.now() - t0).toBeLessThan(500);
  expect(writesOf('burst')).toBe(4);
  st = (await read('burst')).status;
  expect(st?.phaseTransitionTimestamps?.map((t) => t.phase)).toEqual([...steps, 'Succeeded']);
});

test('progress reported every 50 ms reaches the VMIM once per interval, latest figures first, and rides on the next phase', async () => {
  const writer = new StatusWriter(kube, await vmim('ticks'), silentLogger, () => undefined, { progressIntervalMs: 400 });
  await writer.phase('Running');
  const before = writesOf('ticks');
  for (let i = 1; i <= 20; i++) {
    writer.progress(stats(i * 10));
    await sleep(50);
  }
  // About 1 s of reports at a 400 ms interval after the phase write: two or three writes, not twenty.
  const progressWrites = writesOf('ticks') - before;
  expect(progressWrites).toBeGreaterThanOrEqual(1);
  expect(progressWrites).toBeLessThanOrEqual(3);
  await sleep(500);
  expect((await read('ticks')).status?.progress?.dataProcessed).toBe(200);

  // A bandwidth change is no write of its own; held figures go out with the final phase.
  const n = writesOf('ticks');
  writer.bandwidth(64 * 2 ** 20);
  writer.progress({ ...stats(1000), phase: 'completed', dataRemaining: 0 }, { hold: true });
  await sleep(100);
  expect(writesOf('ticks')).toBe(n);
  await writer.phase('Succeeded');
  expect(writesOf('ticks')).toBe(n + 1);
  const st = (await read('ticks')).status;
  expect(st?.phase).toBe('Succeeded');
  expect(st?.progress?.dataProcessed).toBe(1000);
  expect(st?.progress?.bandwidthLimit).toBe(64 * 2 ** 20);
  writer.close();
});

test('a failure says why in its Failed condition; a placement made stale by a cordon has a reason of its own (the evacuation does not back off for it)', async () => {
  const stale = new StatusWriter(kube, await vmim('stale'), silentLogger, () => undefined);
  await stale.phase('Scheduling');
  await stale.phase('Failed', { failureReason: `target pod is down: ${stalePlacementReason('node-7')}` });
  const cond = (await read('stale')).status?.conditions?.find((c) => c.type === 'Failed');
  expect(cond).toMatchObject({ status: 'True', reason: STALE_PLACEMENT_CONDITION_REASON, message: 'target pod is down: node node-7, where Ferry placed it, was cordoned before it could be scheduled there' });
  const other = new StatusWriter(kube, await vmim('other'), silentLogger, () => undefined);
  await other.phase('Failed', { failureReason: 'target pod is down: target pod was deleted' });
  expect((await read('other')).status?.conditions?.find((c) => c.type === 'Failed')).toMatchObject({ reason: 'MigrationFailed' });
});

test('why a migration waits rides on its held Pending write, a later reason is a write of its own, and the write past Pending takes it away', async () => {
  const writer = new StatusWriter(kube, await vmim('queued'), silentLogger, () => undefined, { coalesceMs: 200 });
  const pending = writer.phase('Pending');
  writer.queued('OutboundLimit', 'outbound limit on node-1 (2/2)');
  await pending;
  expect(writesOf('queued')).toBe(1);
  const cond = () => read('queued').then((m) => m.status?.conditions?.find((c) => c.type === 'Queued'));
  expect((await read('queued')).status?.phase).toBe('Pending');
  expect(await cond()).toMatchObject({ status: 'True', reason: 'OutboundLimit', message: 'outbound limit on node-1 (2/2)' });

  writer.queued('Bandwidth', 'no node has the bandwidth');
  for (let i = 0; i < 50 && writesOf('queued') < 2; i++) await sleep(20);
  expect(writesOf('queued')).toBe(2);
  expect(await cond()).toMatchObject({ reason: 'Bandwidth', message: 'no node has the bandwidth' });

  await writer.phase('Scheduling');
  expect(writesOf('queued')).toBe(3);
  expect(await cond()).toBeUndefined();
  // Past Pending a reason is moot: nothing is written.
  writer.queued('Bandwidth', 'late');
  await sleep(100);
  expect(writesOf('queued')).toBe(3);
});
