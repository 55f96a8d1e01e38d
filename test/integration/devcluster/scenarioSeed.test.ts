import type { DevCluster } from '../../../src/devcluster/index.js';
import { parseScenario } from '../../../src/devcluster/scenarioFile.js';
import { scenarioFerryConfig, seedScenario } from '../../../src/devcluster/scenarioSeed.js';
import { guestSpecFor } from '../../../src/controller/guest.js';
import { parseObject } from '../../../src/api/meta.js';
import { VirtualMachineInstance } from '../../../src/api/vmi.js';
import { clientsFor, startFastCluster, VMI } from './support.js';

let cluster: DevCluster;
beforeEach(async () => {
  cluster = await startFastCluster();
});
afterEach(async () => {
  await cluster.close();
});

const scenario = parseScenario(
  {
    cluster: { bandwidthBudget: '4Gi' },
    config: { parallelOutboundMigrationsPerNode: 3, parallelInboundMigrationsPerNode: 1, allowAutoConverge: true },
    nodes: [{ name: 'fast', nic: '3125M', memory: '256Gi' }, { name: 'slow', nic: '125M', memory: '64Gi' }],
    vms: [{ name: 'db', node: 'fast', memory: '16Gi', dirtyRate: '300Mi', workingSet: '2Gi', zeroFraction: 0.25 }],
    drain: ['fast'],
  },
  'seed',
);

test('the cluster a scenario describes: NICs and memory on the nodes, the guest on the sim driver, only the config it sets', async () => {
  seedScenario(cluster, scenario, { nicAnnotation: 'ferry.dev/nic-capacity' });
  const c = clientsFor(cluster);
  const nodes = (await c.core.listNode()).items;
  expect(nodes.map((n) => [n.metadata?.name, n.metadata?.annotations?.['ferry.dev/nic-capacity'], n.status?.allocatable?.['memory']])).toEqual([
    ['fast', '3125000000', String(256 * 2 ** 30)],
    ['slow', '125000000', String(64 * 2 ** 30)],
  ]);
  const [raw] = (await c.custom.listNamespacedCustomObject({ ...VMI, namespace: 'default' })).items as unknown[];
  const vmi = parseObject(VirtualMachineInstance, raw);
  if (!vmi.ok) throw new Error(vmi.reason);
  expect(vmi.value.status?.nodeName).toBe('fast');
  // What the controller hands the handler, and so what the sim driver migrates.
  expect(guestSpecFor(vmi.value)).toEqual({ name: 'default_db', memoryBytes: 16 * 2 ** 30, dirtyRate: 300 * 2 ** 20, workingSet: 2 * 2 ** 30, zeroFraction: 0.25 });
  const kv = cluster.store.tryGet('kubevirts', 'kubevirt', 'kubevirt') as unknown as { spec: { configuration: { migrations: unknown } } };
  // The cluster limit is left out, so it stays unpinned (adaptive), as in the virtual-time bench.
  expect(kv.spec.configuration.migrations).toEqual({ parallelOutboundMigrationsPerNode: 3, allowAutoConverge: true });
  const config = scenarioFerryConfig(scenario);
  expect(config.limits).toMatchObject({ bandwidthBudget: 4 * 2 ** 30, parallelInboundMigrationsPerNode: 1, defaultNicCapacity: 125e6 });
  expect(config.limits.parallelMigrationsPerCluster).toBeUndefined();
});
