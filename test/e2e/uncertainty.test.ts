/**
 * Ferry when it does not know (issue 10): the real controller and handlers on
 * the sim driver over a real nats-server, with a fault injected at the exact
 * moment each finding names. Each test fails on the controller that read
 * "timed out" or "no record" as "nothing happened".
 */
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { JSONCodec, type NatsConnection } from 'nats';
import { closeBus, connectBus } from '../../src/bus/connection.js';
import { RESULTS_STREAM, subjects } from '../../src/bus/subjects.js';
import { requestCommand } from '../../src/bus/rpc.js';
import { ResultMessage } from '../../src/bus/protocol.js';
import { publishResult } from '../../src/bus/results.js';
import { FerryConfig } from '../../src/config/ferryConfig.js';
import { startDevEnvironment, type DevEnvironment } from '../../src/devcluster/environment.js';
import { ApiFaults } from '../../src/devcluster/faults.js';
import { startHandler } from '../../src/handler/handler.js';
import type { HypervisorDriver } from '../../src/hypervisor/driver.js';
import { VMI_RESOURCE, VMIM_RESOURCE, type JsonPatchOp } from '../../src/kube/client.js';
import { silentLogger } from '../../src/util/log.js';
import { createVmim, domainsOf, getVmi, getVmim, launcherPods, waitForPhase } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';

/** Test hooks around one node's driver: gate or delay `migrate`, count boots. */
class Faults {
  migrateDelayMs = 0;
  gate: Promise<void> | undefined;
  onMigrate: (() => void) | undefined;
  postCopyFails = false;
  boots: string[] = [];

  wrap(node: string, d: HypervisorDriver): HypervisorDriver {
    const faults = this;
    return new Proxy(d, {
      get(target, prop, receiver) {
        if (prop === 'migrate') {
          return async (...args: Parameters<HypervisorDriver['migrate']>) => {
            faults.onMigrate?.();
            if (faults.gate) await faults.gate;
            if (faults.migrateDelayMs) await new Promise((r) => setTimeout(r, faults.migrateDelayMs));
            const job = await target.migrate(...args);
            if (!faults.postCopyFails) return job;
            return new Proxy(job, {
              get(j, p, r) {
                if (p === 'startPostCopy') return async () => { throw new Error('post-copy is not possible for this guest (injected)'); };
                const v = Reflect.get(j, p, r) as unknown;
                return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(j) : v;
              },
            });
          };
        }
        if (prop === 'ensureRunning') {
          return async (guest: Parameters<HypervisorDriver['ensureRunning']>[0]) => {
            const before = (await target.listDomains()).some((x) => x.name === guest.name);
            await target.ensureRunning(guest);
            if (!before) faults.boots.push(`${guest.name}@${node}`);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
}

/** A handler process restart: a new handler on the same driver, with an empty memory of jobs. */
async function restartHandler(env: DevEnvironment, node: string): Promise<void> {
  const agent = env.agents.get(node)!;
  await agent.handler.stop();
  agent.handler = startHandler({ nc: agent.nc, node, driver: agent.driver, log: silentLogger, progressIntervalMs: 250 });
}

/** The result of a migration, lost before the controller read it (it was queued behind others, or never delivered). */
async function dropResult(nc: NatsConnection, uid: string): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.purge(RESULTS_STREAM, { filter: subjects.resultsOf(uid) });
}

describe('when a command times out or a record is gone', () => {
  let env: DevEnvironment;
  let nc: NatsConnection;
  const faults = new Map<string, Faults>();
  const f = (node: string) => faults.get(node)!;
  const apiFaults = new ApiFaults(5);

  beforeAll(async () => {
    // 2 Gi guests at 256 Mi/s: a few seconds of streaming, enough to act in the middle.
    const config = FerryConfig.parse({ commandTimeoutMs: 400, limits: { defaultNicCapacity: '256Mi' }, timeouts: { retrySeconds: 0.2, abortRetrySeconds: 1 } });
    env = await startDevEnvironment({
      nodes: 3,
      vms: 6,
      natsUrl: process.env['NATS_URL']!,
      config,
      timeScale: 2,
      cluster: { faults: apiFaults },
      wrapDriver: (node, d) => {
        const x = new Faults();
        faults.set(node, x);
        return x.wrap(node, d);
      },
    });
    nc = await connectBus({ servers: env.natsUrl, name: 'uncertainty-test', log: silentLogger });
  });
  afterAll(async () => {
    if (nc) await closeBus(nc);
    await env?.stop();
  });
  afterEach(() => {
    for (const x of faults.values()) {
      x.migrateDelayMs = 0;
      x.gate = undefined;
      x.onMigrate = undefined;
      x.boots = [];
    }
  });

  test('start-source times out while the source streams, then completes: Succeeded, the guest on the target once', async () => {
    const vmi = await getVmi(env.kube, 'vm-1');
    const source = vmi.status!.nodeName!;
    // The handler answers start-source only after the controller gave up waiting (400 ms).
    f(source).migrateDelayMs = 1200;
    const name = await createVmim(env.kube, 'vm-1');
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.conditions?.find((c) => c.type === 'Failed')?.message).toBeUndefined();
    expect(done.status?.phase).toBe('Succeeded');
    const after = await getVmi(env.kube, 'vm-1');
    expect(after.status?.nodeName).not.toBe(source);
    expect(await domainsOf(env, 'default_vm-1')).toEqual([{ node: after.status!.nodeName!, state: 'running' }]);
    const pods = await waitFor('one launcher pod', async () => {
      const p = await launcherPods(env.kube, vmi.metadata.uid!);
      return p.length === 1 ? p : undefined;
    });
    expect(pods[0]!.spec?.nodeName).toBe(after.status?.nodeName);
    // Final and written: both handlers were told to forget the job (no tombstone left behind).
    for (const node of [source, after.status!.nodeName!]) {
      await waitFor(`${node} to forget the job`, async () => {
        const jobs = (await requestCommand(nc, node, 'list-jobs', {})).jobs;
        return !jobs.some((j) => j.migrationUid === done.metadata.uid);
      });
    }
  }, 40_000);

  test('a handler restart after completion, then an abort: no pod that holds the guest is deleted', async () => {
    const vmi = await getVmi(env.kube, 'vm-2');
    const source = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-2');
    const running = await waitForPhase(env.kube, name, ['Running']);
    const uid = running.metadata.uid!;
    // The controller is away while the migration completes; its result never reaches it.
    await env.stopController();
    await waitFor('the guest to leave the source', async () => !(await domainsOf(env, 'default_vm-2')).some((d) => d.node === source), { timeoutMs: 30_000 });
    await dropResult(nc, uid);
    await restartHandler(env, source); // forgets the finished job: abort now answers not-found
    await env.kube.deleteCustom(VMIM_RESOURCE, 'default', name); // the user aborts
    await env.startController();
    await waitFor('the VMIM to be gone', async () => (await getVmim(env.kube, name)) === undefined, { timeoutMs: 30_000 });

    const after = await getVmi(env.kube, 'vm-2');
    const target = after.status!.nodeName!;
    expect(target).not.toBe(source);
    expect(after.status?.migrationState).toMatchObject({ migrationUid: uid, completed: true, failed: false });
    expect(await domainsOf(env, 'default_vm-2')).toEqual([{ node: target, state: 'running' }]);
    const pods = await waitFor('one launcher pod', async () => {
      const p = await launcherPods(env.kube, vmi.metadata.uid!);
      return p.length === 1 ? p : undefined;
    });
    expect(pods[0]!.spec?.nodeName).toBe(target);
  }, 60_000);

  test('a controller crash between the start-source send and the phase write resumes without booting a second copy', async () => {
    const vmi = await getVmi(env.kube, 'vm-4');
    const source = vmi.status!.nodeName!;
    let release!: () => void;
    f(source).gate = new Promise<void>((r) => (release = r));
    const sent = new Promise<void>((r) => (f(source).onMigrate = r));
    const name = await createVmim(env.kube, 'vm-4');
    await sent; // start-source reached the source...
    await env.stopController(); // ...and the controller dies before writing Running
    expect((await getVmim(env.kube, name))?.status?.phase).toBe('TargetReady');
    f(source).onMigrate = undefined;
    release();
    await waitFor('the guest to leave the source', async () => !(await domainsOf(env, 'default_vm-4')).some((d) => d.node === source), { timeoutMs: 30_000 });
    const uid = (await getVmim(env.kube, name))!.metadata.uid!;
    await dropResult(nc, uid);
    await restartHandler(env, source);
    await env.startController();

    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Succeeded');
    const after = await getVmi(env.kube, 'vm-4');
    expect(after.status?.nodeName).not.toBe(source);
    // No replayed start booted the guest again on the source.
    expect([...faults.values()].flatMap((x) => x.boots)).toEqual([]);
    expect(await domainsOf(env, 'default_vm-4')).toEqual([{ node: after.status!.nodeName!, state: 'running' }]);
  }, 60_000);

  test('a result from a node that is not the source changes nothing; the source\'s own result still lands', async () => {
    const vmi = await getVmi(env.kube, 'vm-3');
    const source = vmi.status!.nodeName!;
    // The source holds the start until the forged results have been tried.
    let release!: () => void;
    f(source).gate = new Promise<void>((r) => (release = r));
    const sent = new Promise<void>((r) => (f(source).onMigrate = r));
    const name = await createVmim(env.kube, 'vm-3');
    await sent;
    const uid = (await getVmim(env.kube, name))!.metadata.uid!;
    const other = [...env.agents.keys()].find((n) => n !== source)!;
    const forged = ResultMessage.parse({
      migrationUid: uid, attempt: 1, vmi: 'default/vm-3', node: other, outcome: 'completed', mode: 'PreCopy', downtimeMs: 1,
      stats: { phase: 'completed', mode: 'PreCopy', elapsedMs: 1, dataTotal: 1, dataProcessed: 1, dataRemaining: 0, memoryBandwidth: 0, dirtyRate: 0, iteration: 1, autoConvergeThrottle: 0, bandwidthLimit: 0 },
      at: new Date().toISOString(),
    });
    // Another node's "completed" under its own name, and one that claims the source's name in the body.
    await publishResult(nc.jetstream(), forged);
    await nc.jetstream().publish(subjects.result(uid, other), JSONCodec().encode({ ...forged, node: source }));
    await new Promise((r) => setTimeout(r, 1000));
    expect(['TargetReady', 'Running']).toContain((await getVmim(env.kube, name))?.status?.phase);
    expect((await getVmi(env.kube, 'vm-3')).status?.nodeName).toBe(source);
    expect((await domainsOf(env, 'default_vm-3')).find((d) => d.node === source)?.state).toBe('running');
    release();
    // The real result is not shadowed by the forged one (JetStream's duplicate id names the node).
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Succeeded');
    expect((await getVmi(env.kube, 'vm-3')).status?.nodeName).not.toBe(source);
  }, 40_000);

  test('a cleanup that fails once is retried: the next migration of that VMI is admitted', async () => {
    const vmi = await getVmi(env.kube, 'vm-5');
    const source = vmi.status!.nodeName!;
    // Closing the VMI's migration state fails once, as a flaky API server would.
    const kube = env.kube;
    const real = kube.patchCustomStatusJson.bind(kube);
    let failures = 0;
    kube.patchCustomStatusJson = async (r, ns, n, ops: JsonPatchOp[]) => {
      if (failures === 0 && n === 'vm-5' && ops.some((o) => o.path === '/status/migrationState/failed')) {
        failures++;
        throw Object.assign(new Error('etcdserver: request timed out'), { code: 500 });
      }
      return real(r, ns, n, ops);
    };
    try {
      const first = await createVmim(env.kube, 'vm-5');
      await waitForPhase(env.kube, first, ['Running']);
      await env.kube.deleteCustom(VMIM_RESOURCE, 'default', first);
      await waitFor('the aborted VMIM to be gone', async () => (await getVmim(env.kube, first)) === undefined, { timeoutMs: 30_000 });
      expect(failures).toBe(1);
      expect((await getVmi(env.kube, 'vm-5')).status?.migrationState).toMatchObject({ completed: true, failed: true, abortStatus: 'Succeeded' });
    } finally {
      kube.patchCustomStatusJson = real;
    }
    const second = await createVmim(env.kube, 'vm-5');
    const done = await waitForPhase(env.kube, second, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.conditions?.find((c) => c.type === 'Failed')?.message).toBeUndefined();
    expect(done.status?.phase).toBe('Succeeded');
    expect((await getVmi(env.kube, 'vm-5')).status?.nodeName).not.toBe(source);
  }, 60_000);

  test('a controller that restarts while the API server fails its VMI lists waits for full caches, then settles the Running migration', async () => {
    const vmi = await getVmi(env.kube, 'vm-6');
    const source = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-6');
    await waitForPhase(env.kube, name, ['Running']);
    await env.stopController();
    // The guest moves while no controller runs; its result waits on the bus.
    await waitFor('the guest to leave the source', async () => !(await domainsOf(env, 'default_vm-6')).some((d) => d.node === source), { timeoutMs: 30_000 });
    apiFaults.enable({ internal: 1, paths: 'virtualmachineinstances($|\\?)' });
    const started = env.startController();
    await new Promise((r) => setTimeout(r, 1500));
    expect(apiFaults.counts.internal).toBeGreaterThan(0);
    apiFaults.disable();
    await started;

    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Succeeded');
    const after = await getVmi(env.kube, 'vm-6');
    expect(after.status?.nodeName).not.toBe(source);
    expect(await domainsOf(env, 'default_vm-6')).toEqual([{ node: after.status!.nodeName!, state: 'running' }]);
  }, 60_000);
});

/** The node dies: its handler goes silent and the node controller marks it NotReady. */
async function loseNode(env: DevEnvironment, node: string): Promise<void> {
  await env.agents.get(node)!.handler.stop();
  await env.kube.core.patchNodeStatus(
    { name: node, body: { status: { conditions: [{ type: 'Ready', status: 'False', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' }] } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/**
 * Three nodes, three VMs, and a NIC slow enough (64 Mi/s) that a migration is still streaming when a node goes; node
 * loss is declared after 1 s of silence. One world per describe block: a lost node stays lost.
 */
function nodeLossWorld(): { readonly env: DevEnvironment } {
  let env: DevEnvironment | undefined;
  beforeAll(async () => {
    const config = FerryConfig.parse({ limits: { defaultNicCapacity: '64Mi' }, commandTimeoutMs: 300, timeouts: { nodeLostSeconds: 1, retrySeconds: 0.2, abortRetrySeconds: 1, resolveSeconds: 20 } });
    env = await startDevEnvironment({ nodes: 3, vms: 3, natsUrl: process.env['NATS_URL']!, config });
  });
  afterAll(async () => {
    await env?.stop();
  });
  return {
    get env() {
      if (!env) throw new Error('nodeLossWorld: the world exists only inside tests');
      return env;
    },
  };
}

describe('when the source node is lost', () => {
  const world = nodeLossWorld();
  let env: DevEnvironment;
  beforeAll(() => {
    env = world.env;
  });

  test('mid-Running: the migration resolves within the bound and its slot is freed', async () => {
    const vmi = await getVmi(env.kube, 'vm-2'); // 2 Gi at 64 Mi/s: ~30 s
    const source = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-2');
    await waitForPhase(env.kube, name, ['Running']);
    const target = (await getVmi(env.kube, 'vm-2')).status!.migrationState!.targetNode!;
    expect(env.controller!.activeCount()).toBe(1);

    await loseNode(env, source);
    const lostAt = Date.now();
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 20_000);
    expect(Date.now() - lostAt).toBeLessThan(15_000);
    expect(done.status?.phase).toBe('Failed');
    expect(done.status?.conditions?.find((c) => c.type === 'Failed')?.message).toMatch(new RegExp(`source node ${source} is lost`));
    await waitFor('the slot to be freed', () => env.controller!.activeCount() === 0);
    // The target only ever had an incoming shell: it is removed, and the VMI still names the source.
    await waitFor('the target pod to be removed', async () => !(await launcherPods(env.kube, vmi.metadata.uid!)).some((p) => p.spec?.nodeName === target));
    expect((await env.agents.get(target)!.driver.listDomains()).find((d) => d.name === 'default_vm-2')).toBeUndefined();
    expect((await getVmi(env.kube, 'vm-2')).status?.nodeName).toBe(source);
  }, 40_000);
});

describe('when the target node is lost', () => {
  const world = nodeLossWorld();
  let env: DevEnvironment;
  beforeAll(() => {
    env = world.env;
  });

  test('mid-Running: the source cancels, the VM stays on the source within the bound, and the slot is freed', async () => {
    const vmi = await getVmi(env.kube, 'vm-2'); // 2 Gi at 64 Mi/s: ~30 s
    const source = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-2');
    await waitForPhase(env.kube, name, ['Running']);
    const target = (await getVmi(env.kube, 'vm-2')).status!.migrationState!.targetNode!;
    expect(env.controller!.activeCount()).toBe(1);

    await loseNode(env, target);
    const lostAt = Date.now();
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 20_000);
    expect(Date.now() - lostAt).toBeLessThan(15_000);
    expect(done.status?.phase).toBe('Failed');
    expect(done.status?.conditions?.find((c) => c.type === 'Failed')?.message).toMatch(new RegExp(`target node ${target} is lost`));
    await waitFor('the slot to be freed', () => env.controller!.activeCount() === 0);
    await waitFor('the target pod to be removed', async () => !(await launcherPods(env.kube, vmi.metadata.uid!)).some((p) => p.spec?.nodeName === target));
    const after = await getVmi(env.kube, 'vm-2');
    expect(after.status?.nodeName).toBe(source);
    expect(after.status?.migrationState).toMatchObject({ completed: true, failed: true });
    // The source stopped streaming: its guest runs, and no job is left on it.
    expect((await env.agents.get(source)!.driver.listDomains()).find((d) => d.name === 'default_vm-2')?.state).toBe('running');
    expect((await requestCommand(env.agents.get(source)!.nc, source, 'list-jobs', {})).jobs.filter((j) => j.migrationUid === done.metadata.uid && j.state === 'running')).toEqual([]);
  }, 40_000);
});

describe('when the target node is lost before anything streams', () => {
  let env: DevEnvironment;
  beforeAll(async () => {
    const config = FerryConfig.parse({ commandTimeoutMs: 300, timeouts: { nodeLostSeconds: 1, retrySeconds: 0.2, abortRetrySeconds: 1, resolveSeconds: 20 } });
    // The target pod is placed at once but its kubelet takes a minute to start it: the
    // migration waits in Scheduling, where only node-loss detection can end it early.
    env = await startDevEnvironment({ nodes: 3, vms: 3, natsUrl: process.env['NATS_URL']!, config, cluster: { podStartDelayMs: 60_000 } });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('the migration fails at once with the reason, the VM stays on the source and the slot is freed', async () => {
    const vmi = await getVmi(env.kube, 'vm-1');
    const source = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-1');
    const pod = await waitFor('the target pod to be placed', async () => (await launcherPods(env.kube, vmi.metadata.uid!)).find((p) => p.spec?.nodeName && p.spec.nodeName !== source), { timeoutMs: 10_000 });
    const target = pod.spec!.nodeName!;
    await waitForPhase(env.kube, name, ['Scheduling']);
    expect(env.controller!.activeCount()).toBe(1);

    await loseNode(env, target);
    const lostAt = Date.now();
    const done = await waitForPhase(env.kube, name, ['Succeeded', 'Failed'], 20_000);
    expect(Date.now() - lostAt).toBeLessThan(15_000);
    expect(done.status?.phase).toBe('Failed');
    expect(done.status?.conditions?.find((c) => c.type === 'Failed')?.message).toMatch(new RegExp(`target node ${target} is lost`));
    await waitFor('the slot to be freed', () => env.controller!.activeCount() === 0);
    await waitFor('the target pod to be removed', async () => (await launcherPods(env.kube, vmi.metadata.uid!)).every((p) => p.spec?.nodeName === source));
    expect((await getVmi(env.kube, 'vm-1')).status?.nodeName).toBe(source);
    expect((await env.agents.get(source)!.driver.listDomains()).find((d) => d.name === 'default_vm-1')?.state).toBe('running');
  }, 40_000);
});

describe('a post-copy switch that fails', () => {
  let env: DevEnvironment;
  const faults = new Map<string, Faults>();
  beforeAll(async () => {
    const config = FerryConfig.parse({ limits: { defaultNicCapacity: '64Mi' } });
    env = await startDevEnvironment({
      nodes: 2,
      vms: 2,
      natsUrl: process.env['NATS_URL']!,
      config,
      wrapDriver: (node, d) => {
        const x = new Faults();
        x.postCopyFails = true;
        faults.set(node, x);
        return x.wrap(node, d);
      },
    });
    // Post-copy after a 1 s completion budget per GiB.
    await env.kube.patchCustom({ group: 'kubevirt.io', version: 'v1', plural: 'kubevirts' }, 'kubevirt', 'kubevirt', {
      spec: { configuration: { migrations: { allowPostCopy: true, completionTimeoutPerGiB: 1 } } },
    });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('leaves the migration in pre-copy, and an abort still works', async () => {
    const vmi = await getVmi(env.kube, 'vm-2'); // 2 Gi at 64 Mi/s: far beyond its 2 s budget
    const source = vmi.status!.nodeName!;
    const name = await createVmim(env.kube, 'vm-2');
    await waitForPhase(env.kube, name, ['Running']);
    // Past the 2 s budget the controller asks for post-copy, which the source refuses.
    await new Promise((r) => setTimeout(r, 4000));
    expect((await getVmim(env.kube, name))?.status?.phase).toBe('Running');
    expect((await getVmi(env.kube, 'vm-2')).status?.migrationState?.mode).toBe('PreCopy');
    await env.kube.deleteCustom(VMIM_RESOURCE, 'default', name);
    await waitFor('the VMIM to be gone', async () => (await getVmim(env.kube, name)) === undefined, { timeoutMs: 20_000 });
    const after = await getVmi(env.kube, 'vm-2');
    expect(after.status?.nodeName).toBe(source);
    expect(after.status?.migrationState).toMatchObject({ failed: true, abortStatus: 'Succeeded', mode: 'PreCopy' });
    expect((await env.agents.get(source)!.driver.listDomains()).find((d) => d.name === 'default_vm-2')?.state).toBe('running');
  }, 40_000);
});

describe('a new leader and its predecessor\'s admitted migrations', () => {
  let env: DevEnvironment;
  const used: string[] = [];
  beforeAll(async () => {
    const config = FerryConfig.parse({ limits: { parallelOutboundMigrationsPerNode: 1 }, timeouts: { retrySeconds: 0.2, abortRetrySeconds: 1 } });
    env = await startDevEnvironment({ nodes: 2, vms: 4, natsUrl: process.env['NATS_URL']!, config, controller: false });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test('it admits nothing beyond a limit before it has taken over the migrations its predecessor admitted', async () => {
    // Two VMs on one node: the predecessor admitted a migration of the first (Running in the API, its slot
    // held), and the second waits (Pending). The outbound limit is 1.
    const vmis = await Promise.all(['vm-1', 'vm-2', 'vm-3', 'vm-4'].map((n) => getVmi(env.kube, n)));
    const byNode = new Map<string, string[]>();
    for (const v of vmis) byNode.set(v.status!.nodeName!, [...(byNode.get(v.status!.nodeName!) ?? []), v.metadata.name!]);
    const [first, second] = [...byNode.values()].find((names) => names.length >= 2)!;
    used.push(first!, second!);
    const at = new Date().toISOString();
    const waiting = await createVmim(env.kube, second!, { name: 'a-waiting' });
    const admitted = await createVmim(env.kube, first!, { name: 'z-admitted' });
    for (const name of [waiting, admitted]) {
      await env.kube.patchCustom(VMIM_RESOURCE, 'default', name, { metadata: { finalizers: ['kubevirt.io/migrationJobFinalize'] } });
    }
    await env.kube.patchCustomStatus(VMIM_RESOURCE, 'default', admitted, {
      status: { phase: 'Running', phaseTransitionTimestamps: ['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running'].map((phase) => ({ phase, phaseTransitionTimestamp: at })) },
    });

    await env.startController();
    // The predecessor's migration had no job anywhere: the arbiter fails it, which frees the slot; only then
    // may the waiting one start.
    const failed = await waitForPhase(env.kube, admitted, ['Failed', 'Succeeded'], 30_000);
    expect(failed.status?.phase).toBe('Failed');
    const next = await waitForPhase(env.kube, waiting, ['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running', 'Succeeded', 'Failed'], 30_000);
    const startedAt = Date.parse(next.status!.phaseTransitionTimestamps!.find((p) => p.phase === 'Scheduling')!.phaseTransitionTimestamp!);
    const freedAt = Date.parse(failed.status!.phaseTransitionTimestamps!.find((p) => p.phase === 'Failed')!.phaseTransitionTimestamp!);
    expect(startedAt).toBeGreaterThanOrEqual(freedAt);
  }, 60_000);

  test('a Running migration whose recorded state is gone when a new leader resumes it finds its sides from the launcher pods and succeeds', async () => {
    await env.startController(); // already running after the test above, unless run alone
    const name = ['vm-1', 'vm-2', 'vm-3', 'vm-4'].find((n) => !used.includes(n))!;
    const vmi = await getVmi(env.kube, name);
    const source = vmi.status!.nodeName!;
    const vmim = await createVmim(env.kube, name);
    await waitForPhase(env.kube, vmim, ['Running'], 30_000);
    await env.stopController();
    // What the new leader reads names neither side (as when its view of the VMI was not the API server's).
    await env.kube.patchCustomStatusJson(VMI_RESOURCE, 'default', name, [{ op: 'remove', path: '/status/migrationState' }]);
    await waitFor('the guest to leave the source', async () => !(await env.agents.get(source)!.driver.listDomains()).some((d) => d.name === `default_${name}` && d.state === 'running'), { timeoutMs: 30_000 });
    await env.startController();
    const done = await waitForPhase(env.kube, vmim, ['Succeeded', 'Failed'], 30_000);
    expect(done.status?.phase).toBe('Succeeded');
    const after = await getVmi(env.kube, name);
    expect(after.status?.nodeName).not.toBe(source);
    const pods = await waitFor('one launcher pod', async () => {
      const p = await launcherPods(env.kube, vmi.metadata.uid!);
      return p.length === 1 ? p : undefined;
    });
    expect(pods[0]!.spec?.nodeName).toBe(after.status?.nodeName);
  }, 60_000);
});
