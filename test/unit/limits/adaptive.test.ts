import fc from 'fast-check';
import { predictMigration } from '../../../src/hypervisor/precopy.js';
import { ADAPTIVE_STREAMS_PER_NODE, EFFICIENCY_SLACK, efficientShare, pinnedIn, resolveLimits, TIMEOUT_SHARE, type PinnedLimits } from '../../../src/limits/adaptive.js';
import { decide } from '../../../src/limits/decide.js';
import type { LimitsConfig, NodeState, QueuedMigration, RunningMigration } from '../../../src/limits/types.js';
import { CAPACITY_TOLERANCE } from '../../../src/limits/waterfill.js';
import { waitingReasonClass } from '../../../src/metrics/admissionReason.js';
import { simulate } from '../../bench/run.js';
import { parseScenario } from '../../bench/scenario.js';
import { Gi, Mi, nodes, queued, running } from './fixtures.js';

const base = { bandwidthBudget: 0, defaultNicCapacity: 1000 * Mi, bandwidthPerMigration: 0, completionTimeoutPerGiB: 150 };

describe('which limits are pinned', () => {
  test('a limit set anywhere is a hard cap, the smallest wins; one set nowhere adapts', () => {
    const c = resolveLimits({ ...base, pins: [{ parallelMigrationsPerCluster: 8 }, { parallelMigrationsPerCluster: 6, parallelInboundMigrationsPerNode: 3 }] });
    expect(c.parallelMigrationsPerCluster).toBe(6);
    expect(c.parallelInboundMigrationsPerNode).toBe(3);
    expect(c.parallelOutboundMigrationsPerNode).toBe(ADAPTIVE_STREAMS_PER_NODE);
    expect(c.adaptive).toEqual({ completionTimeoutPerGiB: 150, pinned: { cluster: true, outbound: false, inbound: true } });
    const none = resolveLimits({ ...base, pins: [{}, {}] });
    expect(none.parallelMigrationsPerCluster).toBe(Infinity);
  });

  test('everything pinned: the old fixed-limit behaviour, nothing adaptive', () => {
    const c = resolveLimits({ ...base, pins: [{ parallelMigrationsPerCluster: 5, parallelOutboundMigrationsPerNode: 2 }, { parallelInboundMigrationsPerNode: 2 }] });
    expect(c.adaptive).toBeUndefined();
    expect([c.parallelMigrationsPerCluster, c.parallelOutboundMigrationsPerNode, c.parallelInboundMigrationsPerNode]).toEqual([5, 2, 2]);
  });

  test('pinnedIn reads what a KubeVirt migrations block or Ferry limits block sets, and nothing else', () => {
    expect(pinnedIn({ parallelMigrationsPerCluster: 5, bandwidthPerMigration: '64Mi', parallelOutboundMigrationsPerNode: 'two' })).toEqual({ parallelMigrationsPerCluster: 5 });
    expect(pinnedIn(undefined)).toEqual({});
  });
});

describe('the efficient share', () => {
  const full = 2500 * Mi;
  const bytesAt = (m: QueuedMigration, b: number) => {
    const p = predictMigration({ memoryBytes: m.memoryBytes, dirtyRate: m.dirtyRate, workingSet: m.workingSet ?? m.memoryBytes, zeroFraction: 0 }, { bandwidth: b, maxDowntimeMs: 300, autoConverge: false, postCopy: false });
    return { bytes: (p.durationMs / 1000) * b, ms: p.durationMs };
  };

  test('a quiet guest needs a small slice; a busy one needs the NIC to itself', () => {
    const quiet = queued('q', 'a', { memoryBytes: 4 * Gi, dirtyRate: 10 * Mi, workingSet: 200 * Mi });
    const busy = queued('b', 'a', { memoryBytes: 32 * Gi, dirtyRate: 1300 * Mi, workingSet: 8 * Gi });
    expect(efficientShare(quiet, full, 150)).toBeLessThan(full / 4);
    expect(efficientShare(busy, full, 150)).toBeGreaterThan(full * 0.9);
  });

  test('at its efficient share a guest sends at most 2 % more than alone and finishes within half its completion timeout', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 16, max: 8192 }),
        fc.integer({ min: 5, max: 300 }),
        (gib, dirty, ws, timeout) => {
          const m = queued('m', 'a', { memoryBytes: gib * Gi, dirtyRate: dirty * Mi, workingSet: ws * Mi });
          const share = efficientShare(m, full, timeout);
          expect(share).toBeLessThanOrEqual(full);
          if (share === full) return; // needs everything: nothing to check beyond "not more than the path"
          const at = bytesAt(m, share);
          expect(at.bytes).toBeLessThanOrEqual(bytesAt(m, full).bytes * (1 + EFFICIENCY_SLACK) * (1 + 1e-9));
          expect(at.ms).toBeLessThanOrEqual(TIMEOUT_SHARE * timeout * 1000 * gib * (1 + 1e-9));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('adaptive admission', () => {
  const config = (pins: PinnedLimits = {}) => resolveLimits({ ...base, defaultNicCapacity: 2500 * Mi, pins: [pins] });

  test('with nothing pinned every drained node sends at once, beyond KubeVirt\'s 5 per cluster', () => {
    const ns = nodes(['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 't1', 't2', 't3', 't4', 't5', 't6', 't7', 't8'], ['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']);
    const q = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7'].flatMap((d) => [0, 1, 2].map((i) => queued(`${d}-${i}`, d, { enqueuedAt: i })));
    const d = decide({ config: config(), nodes: ns, running: [], queued: q, now: 0 });
    const sources = new Set(d.start.map((s) => s.id.split('-')[0]));
    expect(sources.size).toBe(7);
    expect(d.start.length).toBeGreaterThan(7);
  });

  test('a busy guest waits for a NIC of its own, and says why in words the metrics classify', () => {
    const ns = nodes(['a', 'b', 'c']);
    const quiet = queued('quiet', 'a', { enqueuedAt: 0 });
    const busy = queued('busy', 'a', { enqueuedAt: 1, memoryBytes: 32 * Gi, dirtyRate: 1300 * Mi, workingSet: 8 * Gi });
    const d = decide({ config: config(), nodes: ns, running: [], queued: [quiet, busy], now: 0 });
    expect(d.start.map((s) => s.id)).toEqual(['quiet']);
    expect(d.waiting['busy']).toMatch(/needs a's NIC to itself to migrate efficiently/);
    expect(waitingReasonClass(d.waiting['busy']!)).toBe('bandwidth');
  });

  test('an adaptive per-node cap says it is adaptive and which setting pins it', () => {
    const ns = nodes(['a', 'b', 'c', 'd', 'e', 'f']);
    const q = Array.from({ length: 6 }, (_, i) => queued(`v${i}`, 'a', { enqueuedAt: i, dirtyRate: 0 }));
    const d = decide({ config: config(), nodes: ns, running: [], queued: q, now: 0 });
    expect(d.start).toHaveLength(ADAPTIVE_STREAMS_PER_NODE);
    expect(d.waiting['v5']).toBe(`outbound limit on a (${ADAPTIVE_STREAMS_PER_NODE}/${ADAPTIVE_STREAMS_PER_NODE}, adaptive: parallelOutboundMigrationsPerNode is not set)`);
    expect(waitingReasonClass(d.waiting['v5']!)).toBe('outbound-limit');
  });

  test('a fast source goes to the target with the most NIC left, not to an idle slow one', () => {
    const ns: NodeState[] = [
      { name: 'src', schedulable: false, nicCapacity: 3125e6 },
      { name: 'slow', schedulable: true, nicCapacity: 125e6 },
      { name: 'fast', schedulable: true, nicCapacity: 3125e6 },
      { name: 'other', schedulable: false, nicCapacity: 3125e6 },
    ];
    // One quiet migration already lands on the fast node: fewest-landing-first would pick the slow one.
    const landing = running('r', 'other', 'fast');
    const d = decide({ config: config(), nodes: ns, running: [landing], queued: [queued('v', 'src')], now: 0 });
    expect(d.start).toEqual([{ id: 'v', targetNode: 'fast' }]);
    const pinned = decide({ config: config({ parallelMigrationsPerCluster: 5, parallelOutboundMigrationsPerNode: 2, parallelInboundMigrationsPerNode: 2 }), nodes: ns, running: [landing], queued: [queued('v', 'src')], now: 0 });
    expect(pinned.start).toEqual([{ id: 'v', targetNode: 'slow' }]);
  });
});

/** Random clusters with random pins, driven by decide alone. */
const pinsArb: fc.Arbitrary<PinnedLimits> = fc.record(
  {
    parallelMigrationsPerCluster: fc.integer({ min: 1, max: 8 }),
    parallelOutboundMigrationsPerNode: fc.integer({ min: 1, max: 5 }),
    parallelInboundMigrationsPerNode: fc.integer({ min: 1, max: 5 }),
  },
  { requiredKeys: [] },
);

test('over random clusters and pins, no moment exceeds a pinned limit, an adaptive cap or a NIC', () => {
  fc.assert(
    fc.property(
      pinsArb,
      fc.integer({ min: 2, max: 7 }),
      fc.array(fc.integer({ min: 30, max: 3000 }), { minLength: 7, maxLength: 7 }),
      fc.oneof(fc.constant(0), fc.integer({ min: 100, max: 8000 })),
      fc.array(
        fc.record({ source: fc.nat(6), gib: fc.integer({ min: 1, max: 32 }), dirty: fc.integer({ min: 0, max: 2500 }), ws: fc.integer({ min: 16, max: 8192 }) }),
        { minLength: 1, maxLength: 30 },
      ),
      fc.array(fc.nat(), { maxLength: 40 }),
      (pins, nodeCount, nics, budget, vms, finishes) => {
        const config: LimitsConfig = resolveLimits({ ...base, bandwidthBudget: budget * Mi, pins: [pins] });
        const ns: NodeState[] = Array.from({ length: nodeCount }, (_, i) => ({ name: `n${i}`, schedulable: true, nicCapacity: nics[i]! * Mi }));
        let queue: QueuedMigration[] = vms.map((v, i) => queued(`vm${i}`, `n${v.source % nodeCount}`, { enqueuedAt: i, memoryBytes: v.gib * Gi, dirtyRate: v.dirty * Mi, workingSet: v.ws * Mi }));
        let running: RunningMigration[] = [];
        const step = () => {
          const d = decide({ config, nodes: ns, running, queued: queue, now: 0 });
          const byId = new Map(queue.map((q) => [q.id, q]));
          for (const s of d.start) {
            const { enqueuedAt: _e, ...q } = byId.get(s.id)!;
            running.push({ ...q, targetNode: s.targetNode! });
          }
          const started = new Set(d.start.map((s) => s.id));
          queue = queue.filter((q) => !started.has(q.id));
          const cap = { cluster: pins.parallelMigrationsPerCluster ?? Infinity, out: pins.parallelOutboundMigrationsPerNode ?? ADAPTIVE_STREAMS_PER_NODE, in: pins.parallelInboundMigrationsPerNode ?? ADAPTIVE_STREAMS_PER_NODE };
          expect(running.length).toBeLessThanOrEqual(cap.cluster);
          const out = new Map<string, number>();
          const inb = new Map<string, number>();
          const load = new Map<string, number>();
          let total = 0;
          for (const r of running) {
            out.set(r.sourceNode, (out.get(r.sourceNode) ?? 0) + 1);
            inb.set(r.targetNode!, (inb.get(r.targetNode!) ?? 0) + 1);
            const bw = d.bandwidth[r.id]!;
            expect(bw).toBeGreaterThan(0);
            total += bw;
            for (const n of [r.sourceNode, r.targetNode!]) load.set(n, (load.get(n) ?? 0) + bw);
          }
          for (const c of out.values()) expect(c).toBeLessThanOrEqual(cap.out);
          for (const c of inb.values()) expect(c).toBeLessThanOrEqual(cap.in);
          for (const n of ns) expect(load.get(n.name) ?? 0).toBeLessThanOrEqual(n.nicCapacity! * (1 + CAPACITY_TOLERANCE) + 1e-6);
          if (budget > 0) expect(total).toBeLessThanOrEqual(budget * Mi * (1 + CAPACITY_TOLERANCE) + 1e-6);
        };
        step();
        for (const f of finishes) {
          if (running.length > 0) running.splice(f % running.length, 1);
          step();
        }
        // Work always moves: with everything finished, something starts.
        running = [];
        if (queue.length > 0) {
          const before = queue.length;
          step();
          expect(queue.length).toBeLessThan(before);
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('in the drain simulator, with random pins, Ferry moves every VM and never breaks a pinned limit or a NIC', () => {
  fc.assert(
    fc.property(
      pinsArb,
      fc.array(fc.record({ node: fc.nat(4), gib: fc.integer({ min: 1, max: 16 }), dirty: fc.integer({ min: 0, max: 200 }) }), { minLength: 1, maxLength: 16 }),
      (pins, vms) => {
        const s = parseScenario(
          {
            config: pins,
            defaults: { nic: '1000Mi', memory: '512Gi' },
            nodes: ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name })),
            vms: vms.map((v, i) => ({ name: `vm${i}`, node: ['a', 'b', 'c', 'd', 'e'][v.node]!, memory: `${v.gib}Gi`, dirtyRate: `${v.dirty}Mi`, workingSet: '1Gi' })),
            drain: ['a', 'b'],
          },
          'random',
        );
        // The engine itself throws the moment a NIC or the policy's limits are exceeded.
        const { result } = simulate(s, 'ferry');
        expect(result.unfinished).toEqual([]);
        expect(result.peakClusterConcurrency).toBeLessThanOrEqual(pins.parallelMigrationsPerCluster ?? Infinity);
        for (const c of Object.values(result.peakOutbound)) expect(c).toBeLessThanOrEqual(pins.parallelOutboundMigrationsPerNode ?? ADAPTIVE_STREAMS_PER_NODE);
        for (const c of Object.values(result.peakInbound)) expect(c).toBeLessThanOrEqual(pins.parallelInboundMigrationsPerNode ?? ADAPTIVE_STREAMS_PER_NODE);
        for (const p of Object.values(result.peakNic)) expect(p.peak).toBeLessThanOrEqual(p.capacity * (1 + CAPACITY_TOLERANCE));
      },
    ),
    { numRuns: 60 },
  );
});
