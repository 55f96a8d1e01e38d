import type { KubeObject } from '../../../src/devcluster/object.js';
import { placePod, PlacedPods } from '../../../src/devcluster/scheduling.js';

function node(name: string, opts: { memory?: string; pods?: string; unschedulable?: boolean; ready?: boolean; labels?: Record<string, string>; taints?: unknown[] } = {}): KubeObject {
  return {
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...opts.labels } },
    spec: { ...(opts.unschedulable ? { unschedulable: true } : {}), ...(opts.taints ? { taints: opts.taints } : {}) },
    status: {
      allocatable: { memory: opts.memory ?? '8Gi', pods: opts.pods ?? '110' },
      conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }],
    },
  };
}

let uid = 0;
function pod(name: string, opts: { node?: string; memory?: string; labels?: Record<string, string>; spec?: Record<string, unknown>; phase?: string } = {}): KubeObject {
  return {
    metadata: { name, namespace: 'default', uid: `uid-${++uid}`, labels: opts.labels ?? {} },
    spec: {
      ...(opts.node ? { nodeName: opts.node } : {}),
      containers: [{ name: 'c', resources: { requests: { memory: opts.memory ?? '1Gi' } } }],
      ...opts.spec,
    },
    status: { phase: opts.phase ?? (opts.node ? 'Running' : 'Pending') },
  };
}

const antiAffinity = (labels: Record<string, string>) => ({
  affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: labels }, topologyKey: 'kubernetes.io/hostname' }] } },
});

describe('placing a pod', () => {
  test('picks the node with the least requested memory, ties broken by name', () => {
    const nodes = [node('node-a'), node('node-b'), node('node-c')];
    expect(placePod(pod('p'), nodes, [])).toEqual({ nodeName: 'node-a' });
    const pods = [pod('x', { node: 'node-a', memory: '2Gi' }), pod('y', { node: 'node-b', memory: '1Gi' }), pod('z', { node: 'node-c', memory: '3Gi' })];
    expect(placePod(pod('p'), nodes, pods)).toEqual({ nodeName: 'node-b' });
  });

  test('never uses a cordoned or not-ready node', () => {
    const nodes = [node('node-a', { unschedulable: true }), node('node-b', { ready: false }), node('node-c')];
    expect(placePod(pod('p'), nodes, [])).toEqual({ nodeName: 'node-c' });
  });

  test('a pod tolerating the unschedulable taint may land on a cordoned node', () => {
    const tolerant = pod('p', { spec: { tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] } });
    expect(placePod(tolerant, [node('node-a', { unschedulable: true })], [])).toEqual({ nodeName: 'node-a' });
  });

  test('honours nodeSelector and required node affinity (labels and metadata.name)', () => {
    const nodes = [node('node-a', { labels: { zone: 'x' } }), node('node-b', { labels: { zone: 'y' } }), node('node-c', { labels: { zone: 'y' } })];
    expect(placePod(pod('p', { spec: { nodeSelector: { zone: 'y' } } }), nodes, [])).toEqual({ nodeName: 'node-b' });
    const affinity = {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['y'] }], matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['node-b'] }] }],
          },
        },
      },
    };
    expect(placePod(pod('p', { spec: affinity }), nodes, [])).toEqual({ nodeName: 'node-c' });
  });

  test('NoSchedule taints need a matching toleration; PreferNoSchedule is ignored', () => {
    const nodes = [node('node-a', { taints: [{ key: 'kubevirt.io/drain', effect: 'NoSchedule' }] }), node('node-b', { taints: [{ key: 'soft', effect: 'PreferNoSchedule' }] })];
    expect(placePod(pod('p'), nodes, [pod('x', { node: 'node-b', memory: '4Gi' })])).toEqual({ nodeName: 'node-b' });
    const tolerant = pod('p', { spec: { tolerations: [{ key: 'kubevirt.io/drain', operator: 'Exists' }] } });
    expect(placePod(tolerant, nodes, [pod('x', { node: 'node-b', memory: '4Gi' })])).toEqual({ nodeName: 'node-a' });
  });

  test('required anti-affinity keeps a target pod off the node running a matching pod', () => {
    const nodes = [node('node-a'), node('node-b')];
    const source = pod('source', { node: 'node-a', memory: '0', labels: { 'kubevirt.io/created-by': 'vmi-1' } });
    const target = pod('target', { spec: antiAffinity({ 'kubevirt.io/created-by': 'vmi-1' }), memory: '1Gi' });
    expect(placePod(target, nodes, [source, pod('big', { node: 'node-b', memory: '4Gi' })])).toEqual({ nodeName: 'node-b' });
  });

  test('finished pods neither use memory nor repel', () => {
    const nodes = [node('node-a', { memory: '2Gi' })];
    const done = pod('done', { node: 'node-a', memory: '2Gi', phase: 'Succeeded', labels: { app: 'x' } });
    expect(placePod(pod('p', { spec: antiAffinity({ app: 'x' }) }), nodes, [done])).toEqual({ nodeName: 'node-a' });
  });

  test('memory requests must fit in allocatable memory, and pod count in allocatable pods', () => {
    const nodes = [node('node-a', { memory: '2Gi' }), node('node-b', { pods: '1' })];
    const pods = [pod('x', { node: 'node-a', memory: '1536Mi' }), pod('y', { node: 'node-b', memory: '0' })];
    expect(placePod(pod('p', { memory: '512Mi' }), nodes, pods)).toEqual({ nodeName: 'node-a' });
    expect(placePod(pod('p', { memory: '1Gi' }), nodes, pods)).toEqual({ message: '0/2 nodes are available: 1 Insufficient memory, 1 Too many pods.' });
  });

  test('explains an unschedulable pod the way the real scheduler does', () => {
    const nodes = [node('node-1', { unschedulable: true }), node('node-2'), node('node-3')];
    const pods = [pod('a', { node: 'node-2', labels: { app: 'x' } }), pod('b', { node: 'node-3', labels: { app: 'x' } })];
    expect(placePod(pod('p', { spec: antiAffinity({ app: 'x' }) }), nodes, pods)).toEqual({
      message: "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match pod anti-affinity rules.",
    });
  });

  test('existing pods anti-affine to the newcomer repel it too', () => {
    const nodes = [node('node-a'), node('node-b')];
    const loner = pod('loner', { node: 'node-a', memory: '0', spec: antiAffinity({ app: 'noisy' }) });
    expect(placePod(pod('p', { labels: { app: 'noisy' } }), nodes, [loner, pod('big', { node: 'node-b', memory: '4Gi' })])).toEqual({ nodeName: 'node-b' });
  });

  test('a pass counts its own bindings: memory, pod count and anti-affinity of pods it just placed', () => {
    const nodes = [node('node-a', { memory: '4Gi' }), node('node-b', { memory: '4Gi', pods: '2' })];
    const placed = new PlacedPods(nodes, [pod('x', { node: 'node-b', memory: '1Gi' }), pod('gone', { node: 'node-a', memory: '4Gi', phase: 'Succeeded' })]);
    const first = pod('p1', { memory: '3Gi', spec: antiAffinity({ app: 'solo' }) });
    expect(placePod(first, nodes, placed)).toEqual({ nodeName: 'node-a' });
    placed.bind(first, 'node-a');
    // node-a now holds 3Gi (and a pod that repels app=solo); node-b has room for one more pod.
    expect(placePod(pod('p2', { memory: '2Gi', labels: { app: 'solo' } }), nodes, placed)).toEqual({ nodeName: 'node-b' });
    placed.bind(pod('p2', { memory: '2Gi' }), 'node-b');
    expect(placePod(pod('p3', { memory: '512Mi' }), nodes, placed)).toEqual({ nodeName: 'node-a' });
    expect(placePod(pod('p4', { memory: '2Gi' }), nodes, placed)).toEqual({ message: '0/2 nodes are available: 1 Too many pods, 2 Insufficient memory.' });
  });
});
