import { ResourceRegistry } from '../../../src/devcluster/registry.js';
import { registerBuiltinResources } from '../../../src/devcluster/resources.js';
import { humanDuration, toTable, wantsTable } from '../../../src/devcluster/table.js';
import { disruptionStatus } from '../../../src/devcluster/eviction.js';

describe('server-side printing', () => {
  const registry = new ResourceRegistry();
  registerBuiltinResources(registry);
  const now = Date.parse('2026-01-01T01:00:00Z');

  test('recognises the Accept header kubectl get sends', () => {
    expect(wantsTable('application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json')).toBe(true);
    expect(wantsTable('application/json')).toBe(false);
  });

  test('ages read like kubectl prints them', () => {
    expect([45e3, 192e3, 25 * 60e3, 5 * 3600e3 + 3 * 60e3, 20 * 3600e3, 76 * 3600e3, 120 * 86400e3].map(humanDuration)).toEqual(['45s', '3m12s', '25m', '5h3m', '20h', '3d4h', '120d']);
  });

  test('VMI rows follow KubeVirt printer columns, wide ones flagged with priority', () => {
    const vmi = {
      metadata: { name: 'vm-1', creationTimestamp: '2026-01-01T00:55:00Z' },
      status: { phase: 'Running', nodeName: 'node-1', interfaces: [{ ipAddress: '10.244.1.2' }], conditions: [{ type: 'LiveMigratable', status: 'True' }, { type: 'Ready', status: 'True' }] },
    };
    const t = toTable(registry.resolve('vmi'), [vmi], { now });
    expect(t.columnDefinitions.map((c) => `${c.name}:${c.priority}`)).toEqual(['Name:0', 'Age:0', 'Phase:0', 'IP:0', 'NodeName:0', 'Ready:0', 'Live-Migratable:1', 'Paused:1']);
    expect(t.rows[0]!.cells).toEqual(['vm-1', '5m', 'Running', '10.244.1.2', 'node-1', 'True', 'True', '']);
  });

  test('a cordoned node shows Ready,SchedulingDisabled', () => {
    const node = { metadata: { name: 'node-2', creationTimestamp: '2026-01-01T00:00:00Z', labels: { 'node-role.kubernetes.io/worker': '' } }, spec: { unschedulable: true }, status: { conditions: [{ type: 'Ready', status: 'True' }], nodeInfo: { kubeletVersion: 'v1.30.0' } } };
    expect(toTable(registry.resolve('nodes'), [node], { now }).rows[0]!.cells.slice(0, 5)).toEqual(['node-2', 'Ready,SchedulingDisabled', 'worker', '60m', 'v1.30.0']);
  });
});

describe('disruption budget status', () => {
  const pod = (name: string, ready: boolean, extra: Record<string, unknown> = {}) => ({
    metadata: { name, namespace: 'default', labels: { app: 'x' }, ...extra },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  });
  const pods = [pod('a', true), pod('b', true), pod('c', false), pod('d', true, { deletionTimestamp: '2026-01-01T00:00:00Z' })];
  const pdb = (spec: Record<string, unknown>) => ({ metadata: { name: 'b', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'x' } }, ...spec } });

  test('counts Ready pods not being deleted as healthy', () => {
    expect(disruptionStatus(pdb({ minAvailable: 1 }), pods)).toEqual({ currentHealthy: 2, desiredHealthy: 1, disruptionsAllowed: 1, expectedPods: 4 });
  });

  test('maxUnavailable and percentages', () => {
    expect(disruptionStatus(pdb({ maxUnavailable: 1 }), pods)).toMatchObject({ desiredHealthy: 3, disruptionsAllowed: 0 });
    expect(disruptionStatus(pdb({ minAvailable: '25%' }), pods)).toMatchObject({ desiredHealthy: 1, disruptionsAllowed: 1 });
  });
});
