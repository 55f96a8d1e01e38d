import { KubeConfig } from '@kubernetes/client-node';
import { defaultMigrationConfiguration } from '../../../src/api/migrationConfig.js';
import { EventRecorder } from '../../../src/controller/eventRecorder.js';
import { Evacuation } from '../../../src/controller/evacuation.js';
import { seedDemo, startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import { KubeClient, VMI_RESOURCE, VMIM_RESOURCE } from '../../../src/kube/client.js';
import type { Cache } from '../../../src/kube/informer.js';
import { ManualClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';

type Raw = { metadata?: { name?: string; namespace?: string; uid?: string } } & Record<string, unknown>;

/** A cache that shows the API server's objects as of the last refresh(): lets a test hold it stale on purpose. */
class SnapshotCache implements Cache<Raw> {
  private items: Raw[] = [];
  constructor(private readonly read: () => Promise<{ items: unknown[] }>) {}
  async refresh(): Promise<void> {
    this.items = (await this.read()).items as Raw[];
  }
  get(name: string, namespace?: string): Raw | undefined {
    return this.items.find((o) => o.metadata?.name === name && (namespace === undefined || (o.metadata?.namespace ?? 'default') === namespace));
  }
  list(): ReadonlyArray<Raw> {
    return this.items;
  }
}

const BACKOFF_MS = 20_000;
const RESYNC_MS = 30_000;

describe('evacuation on the injected clock, against the dev API server', () => {
  let cluster: DevCluster;
  let kube: KubeClient;
  let clock: ManualClock;
  let evacuation: Evacuation;
  let caches: { nodes: SnapshotCache; vmis: SnapshotCache; vmims: SnapshotCache };
  const refresh = async () => {
    for (const c of Object.values(caches)) await c.refresh();
  };
  // Evacuation VMIMs carry the migration controller's finalizer from birth; one being deleted is withdrawn
  // (no migration controller runs here to let it go).
  const evacuations = async () =>
    ((await kube.listCustom(VMIM_RESOURCE, 'default')).items as Array<{ metadata: { name: string; deletionTimestamp?: string; annotations?: Record<string, string> }; spec: { vmiName: string } }>).filter(
      (m) => m.metadata.annotations?.['kubevirt.io/evacuationMigration'] === 'node-1' && !m.metadata.deletionTimestamp,
    );
  const markOf = async (vmi: string) => ((await kube.getCustom(VMI_RESOURCE, 'default', vmi)) as { status?: { evacuationNodeName?: string } }).status?.evacuationNodeName;
  /** Moves the clock and lets every reconcile it released run to the end. */
  const advance = async (ms: number) => {
    clock.advance(ms);
    await new Promise((r) => setImmediate(r));
    await evacuation.whenIdle();
  };

  beforeEach(async () => {
    cluster = await startDevCluster();
    await seedDemo(cluster, { nodes: 2, vms: 2 });
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeConfigYaml());
    kube = new KubeClient(kc);
    clock = new ManualClock(Date.parse('2026-12-03T12:00:00Z'));
    caches = {
      nodes: new SnapshotCache(() => kube.core.listNode() as Promise<{ items: unknown[] }>),
      vmis: new SnapshotCache(() => kube.listCustom(VMI_RESOURCE)),
      vmims: new SnapshotCache(() => kube.listCustom(VMIM_RESOURCE)),
    };
    await refresh();
    evacuation = new Evacuation({
      kube,
      log: silentLogger,
      clock,
      events: new EventRecorder(kube, silentLogger),
      ...caches,
      migrations: () => defaultMigrationConfiguration,
      clusterEvictionStrategy: () => 'LiveMigrate',
      backoffBaseMs: BACKOFF_MS,
      resyncMs: RESYNC_MS,
    });
    evacuation.start();
    await evacuation.whenIdle();
  });
  afterEach(async () => {
    await evacuation.stop();
    await cluster.close();
  });

  test('a drained node nobody tells evacuation about is evacuated at the next periodic resync', async () => {
    await kube.patchNode('node-1', { spec: { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } });
    await refresh(); // the caches see it, but no change is reported to evacuation
    await advance(RESYNC_MS - 1);
    expect(await evacuations()).toEqual([]);
    await advance(1);
    expect((await evacuations()).length).toBe(1);
  });

  test('the back-off after a failed evacuation runs on the injected clock, whatever the status timestamps say', async () => {
    const created = (await kube.createCustom(VMIM_RESOURCE, 'default', {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstanceMigration',
      metadata: { name: 'failed-evacuation', namespace: 'default', annotations: { 'kubevirt.io/evacuationMigration': 'node-1' } },
      spec: { vmiName: 'vm-1' },
    })) as { metadata: { name: string } };
    // Written by another clock: a wall-clock reading of the back-off would say it expired long ago.
    await kube.patchCustomStatus(VMIM_RESOURCE, 'default', created.metadata.name, {
      status: { phase: 'Failed', phaseTransitionTimestamps: [{ phase: 'Failed', phaseTransitionTimestamp: '2000-01-01T00:00:00Z' }] },
    });
    await kube.patchNode('node-1', { spec: { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } });
    await refresh();
    evacuation.enqueue('node-1');
    await advance(0);
    expect((await evacuations()).map((m) => m.metadata.name)).toEqual(['failed-evacuation']);
    // Waiting out the back-off with no VMIM of its own: the mark is what shows it is to leave.
    expect(await markOf('vm-1')).toBe('node-1');
    await advance(BACKOFF_MS - 1);
    expect((await evacuations()).length).toBe(1);
    await advance(1);
    expect((await evacuations()).length).toBe(2);
  });

  test('a VM that gets its evacuation VMIM is not marked; with the taint lifted, the cordoned node keeps evacuating it until uncordoned', async () => {
    await kube.patchNode('node-1', { spec: { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } });
    await refresh();
    evacuation.enqueue('node-1');
    await advance(0);
    const [created] = await evacuations();
    expect(created?.spec.vmiName).toBe('vm-1');
    expect(await markOf('vm-1')).toBeUndefined();

    // Still cordoned: the open evacuation VMIM counts as the mark, so it is not withdrawn.
    await kube.patchNode('node-1', { spec: { unschedulable: true, taints: null } });
    await refresh();
    evacuation.enqueue('node-1');
    await advance(0);
    expect((await evacuations()).map((m) => m.metadata.name)).toEqual([created!.metadata.name]);

    await kube.patchNode('node-1', { spec: { unschedulable: false } });
    await refresh();
    evacuation.enqueue('node-1');
    await advance(0);
    expect(await evacuations()).toEqual([]);
  });

  test('a queued evacuation that changed since the cache saw it is not withdrawn on uncordon', async () => {
    await kube.patchNode('node-1', { spec: { unschedulable: true, taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] } });
    await refresh();
    evacuation.enqueue('node-1');
    await advance(0);
    await refresh();
    const [queued] = await evacuations();
    expect(queued).toBeDefined();
    // Admission starts it, but our cache has not seen that yet when the node returns to service.
    await kube.patchCustomStatus(VMIM_RESOURCE, 'default', queued!.metadata.name, { status: { phase: 'Scheduling' } });
    await kube.patchNode('node-1', { spec: { unschedulable: false, taints: null } });
    await caches.nodes.refresh();
    evacuation.enqueue('node-1');
    await advance(0);
    expect((await evacuations()).map((m) => m.metadata.name)).toEqual([queued!.metadata.name]);

    // Still Pending as far as anyone knows: withdrawn.
    await kube.patchCustomStatus(VMIM_RESOURCE, 'default', queued!.metadata.name, { status: { phase: 'Pending' } });
    await refresh();
    evacuation.enqueue('node-1');
    await advance(0);
    expect(await evacuations()).toEqual([]);
  });
});
