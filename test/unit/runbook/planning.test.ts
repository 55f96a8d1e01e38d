import type { Node } from '../../../src/api/core.js';
import { MaintenanceAnnotations, MaintenanceWindowSpec } from '../../../src/api/maintenanceWindow.js';
import { defaultMigrationConfiguration } from '../../../src/api/migrationConfig.js';
import type { VirtualMachineInstance } from '../../../src/api/vmi.js';
import { defaultFerryConfig } from '../../../src/config/ferryConfig.js';
import type { ClusterSnapshot } from '../../../src/runbook/decisions.js';
import { makePlan, planNextBatch, unavailable } from '../../../src/runbook/planning.js';
import { settingsFrom } from '../../../src/runbook/settings.js';
import type { RunbookContext } from '../../../statecharts/runbook.js';

const T0 = Date.parse('2026-12-03T02:00:00Z');
const node = (name: string, opts: { owner?: string; cordoned?: boolean } = {}): Node => ({
  metadata: { name, labels: { 'kubernetes.io/hostname': name }, ...(opts.owner ? { annotations: { [MaintenanceAnnotations.owner]: opts.owner } } : {}) },
  spec: opts.cordoned ? { unschedulable: true } : {},
  status: { conditions: [{ type: 'Ready', status: 'True' }], allocatable: { memory: '64Gi' } },
} as Node);
const vmi = (name: string, on: string): VirtualMachineInstance => ({
  metadata: { name, namespace: 'default' },
  spec: { evictionStrategy: 'LiveMigrate', domain: { memory: { guest: '1Gi' } } },
  status: { phase: 'Running', nodeName: on },
} as VirtualMachineInstance);

const spec = MaintenanceWindowSpec.parse({ nodes: ['a', 'b', 'c'], maxNodesInMaintenance: 1, window: { start: '2026-12-03T02:00:00Z', end: '2026-12-03T06:00:00Z' } });
const context = (over: Partial<RunbookContext> = {}): RunbookContext => ({ name: 'mw', recurring: false, paused: false, resumeDeleting: false, nodes: [], ...over });
const settings = settingsFrom(defaultMigrationConfiguration, defaultFerryConfig);

describe('runbook planning, as pure functions of spec, context and cluster', () => {
  test('a node held by another runbook or cordoned by someone else is unavailable, and says why', () => {
    expect(unavailable('mw', 'a', node('a'))).toBeUndefined();
    expect(unavailable('mw', 'a', node('a', { owner: 'mw', cordoned: true }))).toBeUndefined();
    expect(unavailable('mw', 'a', node('a', { owner: 'other' }))).toBe('held by maintenance window other');
    expect(unavailable('mw', 'a', node('a', { cordoned: true }))).toBe('already cordoned by someone else');
    expect(unavailable('mw', 'z', undefined)).toBe('no such node');
  });

  test('the plan covers the available nodes in the open window; an unavailable node is not planned', () => {
    const cluster: ClusterSnapshot = { nodes: [node('a'), node('b', { cordoned: true }), node('c'), node('d')], vmis: [vmi('v1', 'a'), vmi('v2', 'c')], vmims: [] };
    const { outcome, plan } = makePlan({ runbook: 'mw', spec, context: context(), cluster, settings, now: T0 + 60_000 });
    expect(outcome.window).toEqual({ start: T0, end: T0 + 4 * 3600_000 });
    expect(plan?.order.sort()).toEqual(['a', 'c']);
    expect(outcome.nodes.map((n) => n.name)).toEqual(expect.arrayContaining(['a', 'c']));
    expect(outcome.eta).toBeGreaterThan(T0 + 60_000);
  });

  test('an invalid window is an error the chart records; a window already over gives no plan', () => {
    const bad = { ...spec, window: { start: 'yesterday', end: 'tomorrow' } };
    const cluster: ClusterSnapshot = { nodes: [node('a')], vmis: [], vmims: [] };
    expect(() => makePlan({ runbook: 'mw', spec: bad, context: context(), cluster, settings, now: T0 })).toThrow();
    const over = makePlan({ runbook: 'mw', spec, context: context(), cluster, settings, now: T0 + 5 * 3600_000 });
    expect(over.outcome.window).toBeUndefined();
    expect(over.plan).toBeUndefined();
  });

  test('the next batch skips a node someone took since the plan, with the reason', () => {
    const cluster: ClusterSnapshot = { nodes: [node('a', { owner: 'other', cordoned: true }), node('b'), node('c')], vmis: [vmi('v1', 'b')], vmims: [] };
    const nodes = ['a', 'b', 'c'].map((name) => ({ name, phase: 'Pending' as const }));
    const out = planNextBatch({ runbook: 'mw', spec, context: context({ nodes, window: { start: T0, end: T0 + 4 * 3600_000 } }), cluster, settings, now: T0 });
    expect(out.nodes.find((n) => n.name === 'a')).toMatchObject({ phase: 'Skipped', reason: 'held by maintenance window other' });
    expect(out.started).toHaveLength(1);
    expect(() => planNextBatch({ runbook: 'mw', spec, context: context({ nodes }), cluster, settings, now: T0 })).toThrow(/no window/);
  });
});
