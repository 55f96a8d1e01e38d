import { ApiError, Errors, successStatus, type Status } from './errors.js';
import { getPath, isRecord, type KubeObject, type StoredObject } from './object.js';
import { isTerminated } from './scheduling.js';
import { matchesLabelSelectorObject } from './selectors.js';
import type { DeleteOptions, ObjectStore } from './store.js';

/**
 * The pods/eviction subresource: an eviction is a delete that a
 * PodDisruptionBudget may refuse. Admission (webhooks such as KubeVirt's or
 * Ferry's eviction interceptor) has already run when evictPod is called.
 */

export interface DisruptionStatus { currentHealthy: number; desiredHealthy: number; disruptionsAllowed: number; expectedPods: number }

function podReady(pod: KubeObject): boolean {
  const conds = getPath(pod, 'status.conditions');
  return getPath(pod, 'status.phase') === 'Running' && Array.isArray(conds) && conds.some((c) => isRecord(c) && c['type'] === 'Ready' && c['status'] === 'True');
}

function budgetCount(value: unknown, expected: number): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    const m = /^(\d+)%$/.exec(value);
    if (m) return Math.ceil((Number(m[1]) * expected) / 100);
    if (/^\d+$/.test(value)) return Number(value);
  }
  return undefined;
}

/** What the disruption controller would write in a PDB's status, from the pods it selects. */
export function disruptionStatus(pdb: KubeObject, pods: KubeObject[]): DisruptionStatus {
  const selector = getPath(pdb, 'spec.selector');
  const selected = pods.filter((p) => p.metadata.namespace === pdb.metadata.namespace && !isTerminated(p) && matchesLabelSelectorObject(selector, p.metadata.labels));
  const expectedPods = selected.length;
  const currentHealthy = selected.filter((p) => podReady(p) && !p.metadata.deletionTimestamp).length;
  const min = budgetCount(getPath(pdb, 'spec.minAvailable'), expectedPods);
  const maxUnavailable = budgetCount(getPath(pdb, 'spec.maxUnavailable'), expectedPods);
  const desiredHealthy = min ?? (maxUnavailable !== undefined ? Math.max(0, expectedPods - maxUnavailable) : 1);
  return { currentHealthy, desiredHealthy, disruptionsAllowed: Math.max(0, currentHealthy - desiredHealthy), expectedPods };
}

export function withDisruptionStatus(store: ObjectStore): (pdb: StoredObject) => StoredObject {
  return (pdb) => {
    const pods = store.list('pods', { namespace: pdb.metadata.namespace }).items;
    const computed = disruptionStatus(pdb, pods);
    const status = isRecord(pdb['status']) ? pdb['status'] : {};
    return { ...pdb, status: { ...status, ...computed, observedGeneration: pdb.metadata.generation ?? 1 } };
  };
}

/**
 * Evicts `namespace/name`: the pod's disruption budget, then a graceful delete.
 * Returns the 201 Status the API server answers; throws ApiError.
 */
export function evictPod(store: ObjectStore, namespace: string, name: string, eviction: unknown): Status {
  const body: KubeObject = isRecord(eviction) && isRecord(eviction['metadata']) ? (eviction as KubeObject) : { metadata: {} };
  if (body.metadata.name && body.metadata.name !== name) {
    throw Errors.badRequest(`name in URL does not match name in Eviction object (${name} != ${body.metadata.name})`);
  }
  const pod = store.get('pods', name, namespace);
  const deleteOptions = isRecord(body['deleteOptions']) ? body['deleteOptions'] : {};
  const opts: DeleteOptions = { namespace };
  if (typeof deleteOptions['gracePeriodSeconds'] === 'number') opts.gracePeriodSeconds = deleteOptions['gracePeriodSeconds'];
  if (isRecord(deleteOptions['preconditions'])) opts.preconditions = deleteOptions['preconditions'] as DeleteOptions['preconditions'];

  // Pods that are not running (not started, finished, already going) are evicted without consulting budgets.
  const phase = getPath(pod, 'status.phase');
  if (pod.metadata.deletionTimestamp || phase === 'Pending' || isTerminated(pod)) {
    store.delete('pods', name, opts);
    return successStatus(201);
  }
  const pdbs = store.list('poddisruptionbudgets', { namespace }).items.filter((b) => matchesLabelSelectorObject(getPath(b, 'spec.selector'), pod.metadata.labels));
  if (pdbs.length > 1) {
    throw new ApiError(500, 'InternalError', 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.');
  }
  const pdb = pdbs[0];
  if (pdb) {
    const s = disruptionStatus(pdb, store.list('pods', { namespace }).items);
    const allowed = podReady(pod) ? s.disruptionsAllowed >= 1 : s.currentHealthy >= s.desiredHealthy || getPath(pdb, 'spec.unhealthyPodEvictionPolicy') === 'AlwaysAllow';
    if (!allowed) {
      throw new ApiError(429, 'TooManyRequests', "Cannot evict pod as it would violate the pod's disruption budget.", {
        causes: [{ reason: 'DisruptionBudget', message: `The disruption budget ${pdb.metadata.name} needs ${s.desiredHealthy} healthy pods and has ${s.currentHealthy} currently` }],
      });
    }
  }
  store.delete('pods', name, opts);
  return successStatus(201);
}
