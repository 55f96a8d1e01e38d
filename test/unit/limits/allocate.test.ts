import { allocateBandwidth } from '../../../src/limits/allocate.js';
import { convergenceNeed } from '../../../src/limits/convergence.js';
import { Gi, Mi, config, nodes, running } from './fixtures.js';

const cluster = nodes(['a', 'b', 'c', 'd']);

describe('allocateBandwidth', () => {
  test('migrations leaving one node split its NIC equally', () => {
    const bw = allocateBandwidth(config(), cluster, [running('m1', 'a', 'b'), running('m2', 'a', 'c')]);
    expect(bw).toEqual({ m1: 500 * Mi, m2: 500 * Mi });
  });

  test("a node's inbound and outbound migrations share its NIC", () => {
    // b sends one and receives one: 500 each; c's other migration gets the rest of c.
    const bw = allocateBandwidth(config(), cluster, [
      running('out', 'b', 'c'),
      running('in', 'a', 'b'),
      running('other', 'd', 'c'),
    ]);
    expect(bw.out).toBeCloseTo(500 * Mi);
    expect(bw.in).toBeCloseTo(500 * Mi);
    expect(bw.other).toBeCloseTo(500 * Mi);
  });

  test('the slower NIC of source and target bounds a migration, and the spare goes elsewhere', () => {
    const mixed = [
      { name: 'a', schedulable: true },
      { name: 'slow', schedulable: true, nicCapacity: 100 * Mi },
      { name: 'c', schedulable: true },
    ];
    const bw = allocateBandwidth(config(), mixed, [running('to-slow', 'a', 'slow'), running('to-c', 'a', 'c')]);
    expect(bw['to-slow']).toBeCloseTo(100 * Mi);
    expect(bw['to-c']).toBeCloseTo(900 * Mi);
  });

  test('the cluster budget is shared across nodes', () => {
    const bw = allocateBandwidth(config({ bandwidthBudget: 600 * Mi }), cluster, [
      running('m1', 'a', 'b'),
      running('m2', 'c', 'd'),
      running('m3', 'a', 'd'),
    ]);
    expect(bw.m1! + bw.m2! + bw.m3!).toBeCloseTo(600 * Mi);
    expect(bw.m1).toBeCloseTo(200 * Mi);
  });

  test('per-migration and policy caps are honoured and the rest is shared', () => {
    const bw = allocateBandwidth(config({ bandwidthPerMigration: 300 * Mi }), cluster, [
      running('m1', 'a', 'b'),
      running('m2', 'a', 'c', { bandwidthCap: 100 * Mi }),
    ]);
    expect(bw).toEqual({ m1: 300 * Mi, m2: 100 * Mi });
  });

  test('a migration whose target is not known yet loads only its source NIC', () => {
    const bw = allocateBandwidth(config(), cluster, [running('pending', 'a', undefined), running('m', 'c', 'b')]);
    expect(bw.pending).toBeCloseTo(1000 * Mi);
    expect(bw.m).toBeCloseTo(1000 * Mi);
  });

  test('a busy guest gets what it needs to converge, taking from a quiet one only down to its need', () => {
    const busy = running('busy', 'a', 'b', { memoryBytes: 16 * Gi, dirtyRate: 300 * Mi, workingSet: 8 * Gi });
    const quiet = running('quiet', 'a', 'c');
    const need = convergenceNeed(busy);
    expect(need).toBeGreaterThan(500 * Mi); // a fair half would not do
    const bw = allocateBandwidth(config(), cluster, [busy, quiet]);
    expect(bw.busy).toBeCloseTo(need);
    expect(bw.quiet).toBeCloseTo(1000 * Mi - need);
    expect(bw.quiet).toBeGreaterThanOrEqual(convergenceNeed(quiet));
  });

  test('when needs exceed a NIC, every migration still gets a non-zero share', () => {
    const hogs = ['h1', 'h2', 'h3'].map((id) => running(id, 'a', 'b', { memoryBytes: 16 * Gi, dirtyRate: 900 * Mi, workingSet: 8 * Gi }));
    const bw = allocateBandwidth(config(), cluster, [...hogs, running('quiet', 'a', 'c')]);
    const total = Object.values(bw).reduce((s, x) => s + x, 0);
    expect(total).toBeLessThanOrEqual(1000 * Mi);
    for (const x of Object.values(bw)) expect(x).toBeGreaterThan(0);
  });

  test('nodes missing from the node list get the default NIC', () => {
    const bw = allocateBandwidth(config({ defaultNicCapacity: 200 * Mi }), [], [running('m', 'gone', 'b')]);
    expect(bw.m).toBeCloseTo(200 * Mi);
  });

  test('a node with a nonsensical NIC capacity is reported by name', () => {
    expect(() => allocateBandwidth(config(), [{ name: 'x', schedulable: true, nicCapacity: 0 }], [])).toThrow(/node x has NIC capacity 0/);
  });
});
