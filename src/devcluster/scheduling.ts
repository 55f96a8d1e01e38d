import { parseQuantity } from '../api/quantity.js';
import { getPath, isRecord, type KubeObject } from './object.js';
import { matchesLabelSelectorObject } from './selectors.js';

/**
 * The scheduler's decision, as a pure function: which node a pod fits on,
 * or why it fits nowhere (in the real scheduler's words). Filters run in the
 * real scheduler's plugin order and a node reports its first failure.
 */
export type Placement = { nodeName: string } | { nodeName?: undefined; message: string };

interface Toleration { key?: string; operator?: string; value?: string; effect?: string }
interface Taint { key: string; value?: string; effect: string }
interface NodeSelectorRequirement { key: string; operator: string; values?: string[] }

const HOSTNAME = 'kubernetes.io/hostname';

export function isTerminated(pod: KubeObject): boolean {
  const phase = getPath(pod, 'status.phase');
  return phase === 'Succeeded' || phase === 'Failed';
}

function isReady(node: KubeObject): boolean {
  const conds = getPath(node, 'status.conditions');
  return Array.isArray(conds) && conds.some((c) => isRecord(c) && c['type'] === 'Ready' && c['status'] === 'True');
}

function tolerates(tolerations: Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.operator === 'Exists') return !t.key || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

/** Memory the pod asks for: the sum of its containers' requests (a limit alone counts as the request, as in the API defaults). */
export function podMemoryRequest(pod: KubeObject): number {
  const containers = getPath(pod, 'spec.containers');
  if (!Array.isArray(containers)) return 0;
  let total = 0;
  for (const c of containers) {
    const q = getPath(c, 'resources.requests.memory') ?? getPath(c, 'resources.limits.memory');
    if (typeof q === 'string' || typeof q === 'number') total += parseQuantity(q);
  }
  return total;
}

function allocatable(node: KubeObject, resource: string): number {
  const q = getPath(node, `status.allocatable.${resource}`) ?? getPath(node, `status.capacity.${resource}`);
  return typeof q === 'string' || typeof q === 'number' ? parseQuantity(q) : Infinity;
}

function matchesNodeRequirement(req: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
      return value !== undefined && Number(value) > Number(values[0]);
    case 'Lt':
      return value !== undefined && Number(value) < Number(values[0]);
    default:
      return false;
  }
}

function matchesNodeAffinity(pod: KubeObject, node: KubeObject): boolean {
  const labels = node.metadata.labels ?? {};
  const selector = getPath(pod, 'spec.nodeSelector');
  if (isRecord(selector) && !Object.entries(selector).every(([k, v]) => labels[k] === v)) return false;
  const terms = getPath(pod, 'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms');
  if (!Array.isArray(terms)) return true;
  return terms.some((term) => {
    const exprs = (getPath(term, 'matchExpressions') ?? []) as NodeSelectorRequirement[];
    const fields = (getPath(term, 'matchFields') ?? []) as NodeSelectorRequirement[];
    if (exprs.length === 0 && fields.length === 0) return false;
    return (
      exprs.every((r) => matchesNodeRequirement(r, labels[r.key])) &&
      fields.every((r) => matchesNodeRequirement(r, r.key === 'metadata.name' ? node.metadata.name : undefined))
    );
  });
}

interface AntiAffinityTerm { labelSelector?: unknown; topologyKey?: string; namespaces?: string[] }

function antiAffinityTerms(pod: KubeObject): AntiAffinityTerm[] {
  const t = getPath(pod, 'spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution');
  return Array.isArray(t) ? (t.filter(isRecord) as AntiAffinityTerm[]) : [];
}

function topologyValue(node: KubeObject | undefined, key: string): string | undefined {
  if (!node) return undefined;
  return node.metadata.labels?.[key] ?? (key === HOSTNAME ? node.metadata.name : undefined);
}

function termSelects(term: AntiAffinityTerm, termOwnerNamespace: string | undefined, other: KubeObject): boolean {
  const namespaces = term.namespaces && term.namespaces.length > 0 ? term.namespaces : [termOwnerNamespace];
  return namespaces.includes(other.metadata.namespace) && matchesLabelSelectorObject(term.labelSelector, other.metadata.labels);
}

/** Required pod anti-affinity, both ways: the pod's own terms, and terms of pods already placed in that topology domain. */
function violatesAntiAffinity(pod: KubeObject, node: KubeObject, cluster: PlacedPods): boolean {
  const own = antiAffinityTerms(pod);
  // Only pods with terms of their own can refuse the newcomer; the newcomer's terms look at every pod.
  const others = own.length > 0 ? cluster.placed : cluster.withAntiAffinity;
  for (const other of others) {
    const otherNode = cluster.nodesByName.get(String(getPath(other, 'spec.nodeName')));
    for (const term of own) {
      const key = term.topologyKey ?? HOSTNAME;
      const v = topologyValue(node, key);
      if (v !== undefined && topologyValue(otherNode, key) === v && termSelects(term, pod.metadata.namespace, other)) return true;
    }
    for (const term of antiAffinityTerms(other)) {
      const key = term.topologyKey ?? HOSTNAME;
      const v = topologyValue(node, key);
      if (v !== undefined && topologyValue(otherNode, key) === v && termSelects(term, other.metadata.namespace, pod)) return true;
    }
  }
  return false;
}

/**
 * The bound, running pods of a cluster, indexed by node, with each node's
 * requested memory summed once. A scheduler pass builds it once and records
 * each binding in it (`bind`), so placing a pod costs a look at every node,
 * not at every pod on every node (2,000 pods × 100 nodes per pending pod
 * made the stand-in the busiest thing in a scale run).
 */
export class PlacedPods {
  readonly nodesByName: Map<string, KubeObject>;
  readonly placed: KubeObject[] = [];
  /** Placed pods with required anti-affinity terms: the only ones that can refuse a pod without terms. */
  readonly withAntiAffinity: KubeObject[] = [];
  private readonly count = new Map<string, number>();
  private readonly memory = new Map<string, number>();

  constructor(readonly nodes: KubeObject[], pods: Iterable<KubeObject>) {
    this.nodesByName = new Map(nodes.map((n) => [n.metadata.name!, n]));
    for (const p of pods) {
      const node = getPath(p, 'spec.nodeName');
      if (typeof node === 'string' && !isTerminated(p)) this.add(p, node);
    }
  }

  /** Records a pod bound to `nodeName` (the pass's own binding). */
  bind(pod: KubeObject, nodeName: string): void {
    this.add(pod, nodeName);
  }

  podsOn(node: string): number {
    return this.count.get(node) ?? 0;
  }

  memoryOn(node: string): number {
    return this.memory.get(node) ?? 0;
  }

  private add(p: KubeObject, node: string): void {
    this.placed.push(p);
    if (antiAffinityTerms(p).length > 0) this.withAntiAffinity.push(p);
    this.count.set(node, (this.count.get(node) ?? 0) + 1);
    this.memory.set(node, (this.memory.get(node) ?? 0) + podMemoryRequest(p));
  }
}

/** Why `pod` cannot go on `node` (first failing filter), or null if it fits. */
export function unfitReasons(pod: KubeObject, node: KubeObject, cluster: PlacedPods, wants?: number): string[] {
  const tolerations = (getPath(pod, 'spec.tolerations') ?? []) as Toleration[];
  if (getPath(node, 'spec.unschedulable') === true && !tolerates(tolerations, { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' })) {
    return ['node(s) were unschedulable'];
  }
  const taints = ((getPath(node, 'spec.taints') ?? []) as Taint[]).filter((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute');
  if (!isReady(node)) taints.unshift({ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' });
  const untolerated = taints.find((t) => !tolerates(tolerations, t));
  if (untolerated) return [`node(s) had untolerated taint {${untolerated.key}: ${untolerated.value ?? ''}}`];
  if (!matchesNodeAffinity(pod, node)) return ["node(s) didn't match Pod's node affinity/selector"];
  const reasons: string[] = [];
  const name = node.metadata.name!;
  if (cluster.memoryOn(name) + (wants ?? podMemoryRequest(pod)) > allocatable(node, 'memory')) reasons.push('Insufficient memory');
  if (cluster.podsOn(name) + 1 > allocatable(node, 'pods')) reasons.push('Too many pods');
  if (reasons.length > 0) return reasons;
  if (violatesAntiAffinity(pod, node, cluster)) return ["node(s) didn't match pod anti-affinity rules"];
  return [];
}

/**
 * Picks the least-loaded fitting node (by requested memory, ties by name) for
 * `pod`, given every node and every pod in the cluster (or a pass's index of them).
 */
export function placePod(pod: KubeObject, nodes: KubeObject[], pods: KubeObject[] | PlacedPods): Placement {
  if (nodes.length === 0) return { message: 'no nodes available to schedule pods' };
  const cluster = pods instanceof PlacedPods ? pods : new PlacedPods(nodes, pods.filter((p) => p.metadata.uid !== pod.metadata.uid));
  const counts = new Map<string, number>();
  const wants = podMemoryRequest(pod);
  let best: { name: string; load: number } | undefined;
  for (const node of nodes) {
    const name = node.metadata.name!;
    const reasons = unfitReasons(pod, node, cluster, wants);
    if (reasons.length > 0) {
      for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
      continue;
    }
    const load = cluster.memoryOn(name);
    if (!best || load < best.load || (load === best.load && name < best.name)) best = { name, load };
  }
  if (best) return { nodeName: best.name };
  const parts = [...counts].map(([r, n]) => `${n} ${r}`).sort();
  return { message: `0/${nodes.length} nodes are available: ${parts.join(', ')}.` };
}
