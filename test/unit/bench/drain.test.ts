import { fileURLToPath } from 'node:url';
import { bounds } from '../../bench/bounds.js';
import type { ClusterView, Policy, PolicyDecision } from '../../bench/policy.js';
import { makePolicy, simulate } from '../../bench/run.js';
import { loadScenario, parseScenario, type Scenario } from '../../bench/scenario.js';
import { DrainSimulator, RETRY_BASE_MS } from '../../bench/simulator.js';

const scenarioFile = (name: string) => fileURLToPath(new URL(`../../bench/scenarios/${name}.yaml`, import.meta.url));

describe('draining the small rack', () => {
  const scenario = loadScenario(scenarioFile('small-rack'));
  const drained = new Set(scenario.drain);

  for (const name of ['ferry', 'kubevirt-tuned', 'kubevirt-default'] as const) {
    test(`${name}: every VM leaves the drained node, within every limit and NIC`, () => {
      const { result, policy } = simulate(scenario, name);
      expect(result.unfinished).toEqual([]);
      expect(result.failed).toBe(0);
      expect(result.succeeded).toBe(scenario.vms.filter((v) => drained.has(v.node)).length);
      for (const vm of scenario.vms) {
        const now = result.placement[vm.name]!;
        if (drained.has(vm.node)) expect(drained.has(now)).toBe(false);
        else expect(now).toBe(vm.node);
      }
      for (const [node, p] of Object.entries(result.peakNic)) {
        expect({ node, over: p.peak > p.capacity }).toEqual({ node, over: false });
      }
      expect(result.peakClusterConcurrency).toBeLessThanOrEqual(policy.limits.cluster);
      for (const c of Object.values(result.peakOutbound)) expect(c).toBeLessThanOrEqual(policy.limits.outbound);
      for (const c of Object.values(result.peakInbound)) expect(c).toBeLessThanOrEqual(policy.limits.inbound);
      expect(result.maxDowntimeMs).toBeLessThanOrEqual(scenario.config.maxDowntimeMs);
    });
  }

  test('ferry never beats the physical lower bound, and stays within 10 % of it', () => {
    const { result } = simulate(scenario, 'ferry');
    const lower = bounds(scenario).lower.ms;
    expect(result.makespanMs!).toBeGreaterThanOrEqual(lower);
    expect(result.makespanMs! / lower).toBeLessThanOrEqual(1.1);
  });
});

describe('write-heavy databases', () => {
  const scenario = loadScenario(scenarioFile('write-heavy'));

  test('kubevirt-default shares NICs until databases stall and abort; ferry moves them without a failure', () => {
    const kubevirt = simulate(scenario, 'kubevirt-default').result;
    expect(kubevirt.failed).toBeGreaterThan(0);
    expect(kubevirt.failures[0]!.reason).toMatch(/stuck for 150 seconds/);
    expect(kubevirt.retried).toBe(kubevirt.failed);
    const ferry = simulate(scenario, 'ferry').result;
    expect(ferry.failed).toBe(0);
    expect(ferry.unfinished).toEqual([]);
    expect(ferry.makespanMs!).toBeLessThan(kubevirt.makespanMs!);
    // Nothing but pre-copy's own re-sends separates ferry from the best a NIC can do.
    expect(ferry.makespanMs! / bounds(scenario).precopy!.ms).toBeLessThan(1.02);
  });
});

/** Two nodes, one VM that can never converge: every attempt stalls. */
const stuck: Scenario = parseScenario(
  {
    nodes: [{ name: 'a', nic: '1000Mi', memory: '64Gi' }, { name: 'b', nic: '1000Mi', memory: '64Gi' }],
    vms: [{ name: 'hot', node: 'a', memory: '4Gi', dirtyRate: '2000Mi', workingSet: '4Gi' }],
    drain: ['a'],
  },
  'stuck',
);

test('a failed evacuation is retried after 20 s, then 40 s, doubling', () => {
  const { result } = simulate(stuck, 'kubevirt-default', { maxVirtualMs: 1_200_000 });
  expect(result.unfinished).toEqual(['hot']);
  const at = result.failures.map((f) => f.atMs);
  expect(at.length).toBeGreaterThanOrEqual(3);
  // Each attempt stalls the same way, so the gaps between failures grow by the back-off alone.
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  expect(gaps[1]! - gaps[0]!).toBeCloseTo(RETRY_BASE_MS, 3);
});

describe('the simulator refuses a policy that cheats', () => {
  const scenario = loadScenario(scenarioFile('small-rack'));
  const rogue = (decide: (v: ClusterView) => PolicyDecision): Policy => {
    const honest = makePolicy('kubevirt-default', scenario);
    return { name: 'kubevirt-default', limits: honest.limits, rules: honest.rules, decide };
  };

  test('starting more than the outbound limit', () => {
    const greedy = rogue((v) => ({ start: v.queue.slice(0, 3).map((q) => ({ vm: q.vm.name, target: 'node-2' })), limits: new Map() }));
    expect(() => new DrainSimulator(scenario, greedy).run()).toThrow(/broke its outbound limit on node-1 \(3 > 2\)/);
  });

  test('sending a VM to a node being drained', () => {
    const lost = rogue((v) => ({ start: v.queue.slice(0, 1).map((q) => ({ vm: q.vm.name, target: 'node-1' })), limits: new Map() }));
    expect(() => new DrainSimulator(scenario, lost).run()).toThrow(/to node-1, which is being drained/);
  });
});

describe('scenario files', () => {
  test('a generator block expands the same way every time', () => {
    const file = {
      generate: {
        seed: 7,
        nodes: { count: 4, nic: '1Gi', memory: '64Gi' },
        vms: [{ count: 6, memory: { choice: ['2Gi', '4Gi'] }, dirtyRate: { uniform: ['1Mi', '9Mi'] }, workingSetFraction: 0.5 }],
        drain: { first: 1 },
      },
    };
    const a = parseScenario(file, 'gen');
    expect(parseScenario(file, 'gen')).toEqual(a);
    expect(a.nodes.map((n) => n.name)).toEqual(['node-1', 'node-2', 'node-3', 'node-4']);
    expect(a.vms.map((v) => v.node)).toEqual(['node-1', 'node-2', 'node-3', 'node-4', 'node-1', 'node-2']);
    expect(a.drain).toEqual(['node-1']);
    for (const v of a.vms) {
      expect([2 * 2 ** 30, 4 * 2 ** 30]).toContain(v.memory);
      expect(v.workingSet).toBe(v.memory / 2);
    }
  });

  test('mistakes are reported with where they are', () => {
    expect(() => parseScenario({ nodes: [{ name: 'a', nic: 'fast' }], drain: ['a'] }, 'bad')).toThrow(/nodes\.0\.nic: "fast" is not a Kubernetes quantity/);
    expect(() =>
      parseScenario(
        {
          defaults: { nic: '1Gi', memory: '8Gi' },
          nodes: [{ name: 'a' }, { name: 'b' }],
          vms: [{ name: 'v', node: 'c', memory: '4Gi' }, { name: 'w', node: 'a', memory: '16Gi' }],
          drain: ['a', 'z'],
        },
        'bad',
      ),
    ).toThrow(/vm v runs on c, which is not a node[\s\S]*node a holds .* but has only[\s\S]*drain names z, which is not a node/);
    expect(() => parseScenario({ nodes: [{ name: 'a', nic: '1Gi', memory: '1Gi', colour: 'red' }], drain: ['a'] }, 'bad')).toThrow(/colour/);
  });
});

describe('kubevirt-tuned is KubeVirt given the scenario\'s config', () => {
  const base = {
    defaults: { nic: '1000Mi', memory: '64Gi' },
    nodes: [{ name: 'a' }, { name: 'b' }, { name: 'c' }],
    vms: Array.from({ length: 6 }, (_, i) => ({ name: `vm-${i}`, node: 'a', memory: '2Gi' })),
    drain: ['a'],
  };

  test('its count limits and per-migration bandwidth apply; kubevirt-default ignores them', () => {
    const s = parseScenario({ ...base, config: { parallelMigrationsPerCluster: 3, parallelOutboundMigrationsPerNode: 3, bandwidthPerMigration: '100Mi' } }, 'capped');
    const tuned = simulate(s, 'kubevirt-tuned');
    expect(tuned.policy.limits).toEqual({ cluster: 3, outbound: 3, inbound: Infinity });
    expect(tuned.result.peakClusterConcurrency).toBe(3);
    // Three streams of 100Mi/s: 300Mi/s of a 1000Mi/s NIC, so 12Gi takes 40.96 s.
    expect(tuned.result.peakNic['a']!.peak).toBeCloseTo(300 * 2 ** 20, -3);
    expect(tuned.result.makespanMs! / 1000).toBeCloseTo((12 * 1024) / 300, 1);
    const dflt = simulate(s, 'kubevirt-default');
    expect(dflt.policy.limits.outbound).toBe(2);
    expect(dflt.result.peakNic['a']!.peak).toBeCloseTo(1000 * 2 ** 20, -3);
  });

  test('with allowPostCopy a migration past its completion timeout switches to post-copy instead of failing', () => {
    const hot = { nodes: base.nodes, defaults: base.defaults, vms: [{ name: 'hot', node: 'a', memory: '4Gi', dirtyRate: '2000Mi', workingSet: '4Gi' }], drain: ['a'] };
    const s = parseScenario({ ...hot, config: { allowPostCopy: true, completionTimeoutPerGiB: 10 } }, 'postcopy');
    const tuned = simulate(s, 'kubevirt-tuned', { maxVirtualMs: 600_000 }).result;
    expect(tuned.failed).toBe(0);
    expect(tuned.unfinished).toEqual([]);
    const dflt = simulate(s, 'kubevirt-default', { maxVirtualMs: 600_000 }).result;
    expect(dflt.failed).toBeGreaterThan(0);
    expect(dflt.unfinished).toEqual(['hot']);
  });
});

describe('every shipped scenario (but scale-10k)', () => {
  for (const name of ['small-rack', 'rolling-50', 'write-heavy', 'rolling-30', 'hetero-nics', 'nearly-full']) {
    test(`${name}: ferry moves everything and is never slower than kubevirt-tuned`, () => {
      const s = loadScenario(scenarioFile(name));
      const ferry = simulate(s, 'ferry').result;
      const tuned = simulate(s, 'kubevirt-tuned').result;
      expect(ferry.unfinished).toEqual([]);
      expect(ferry.failed).toBe(0);
      expect(tuned.unfinished).toEqual([]);
      expect(ferry.makespanMs!).toBeLessThanOrEqual(tuned.makespanMs! * (1 + 1e-9));
    });
  }

  test('with no config, Ferry adapts: rolling-30 within 10 % of the lower bound, ≥ 2× KubeVirt as shipped', () => {
    const s = loadScenario(scenarioFile('rolling-30'));
    expect(s.pinned).toEqual({});
    const ferry = simulate(s, 'ferry').result;
    expect(ferry.makespanMs! / bounds(s).lower.ms).toBeLessThanOrEqual(1.1);
    expect(ferry.peakClusterConcurrency).toBeGreaterThan(5);
    expect(simulate(s, 'kubevirt-default').result.makespanMs! / ferry.makespanMs!).toBeGreaterThanOrEqual(2);
  });

  test('with no config, busy guests get what they need to send little more than alone (≤ 1.05 × the pre-copy bound)', () => {
    for (const name of ['hetero-nics', 'nearly-full']) {
      const s = loadScenario(scenarioFile(name));
      const ferry = simulate(s, 'ferry').result;
      expect({ name, ratio: ferry.makespanMs! / bounds(s).precopy!.ms <= 1.05 }).toEqual({ name, ratio: true });
    }
  });
});
