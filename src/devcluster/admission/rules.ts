import { isRecord, type KubeObject } from '../object.js';
import { matchesLabelSelectorObject } from '../selectors.js';
import type { AdmissionAttributes } from './attributes.js';

/**
 * Which requests an admission webhook or policy is about, by
 * admissionregistration.k8s.io/v1 semantics: `rules` (resource, subresource,
 * operation, scope), `namespaceSelector`, `objectSelector` and `matchPolicy`.
 * Pure functions of the configuration, the request and the namespace's labels.
 */

export interface RuleWithOperations {
  operations?: string[];
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  scope?: string;
}

const has = (list: string[] | undefined, v: string) => (list ?? []).some((x) => x === '*' || x === v);

/**
 * "pods" matches the resource only, "pods/eviction" one subresource, "pods/*"
 * every subresource of pods, "*" every resource, "*\/*" everything, "*\/status"
 * the status subresource of every resource.
 */
function resourceMatches(patterns: string[] | undefined, resource: string, subResource: string): boolean {
  const wanted = subResource ? `${resource}/${subResource}` : resource;
  return (patterns ?? []).some((p) => {
    if (p === '*/*' || p === wanted) return true;
    const [res, sub] = p.split('/') as [string, string | undefined];
    if (sub === undefined) return res === '*' && !subResource;
    if (res === '*' && sub === subResource) return true;
    return res === resource && sub === '*' && subResource !== '';
  });
}

function scopeMatches(scope: string | undefined, namespaced: boolean): boolean {
  if (!scope || scope === '*') return true;
  return scope === 'Namespaced' ? namespaced : !namespaced;
}

/**
 * One rule against the request. `equivalent` (matchPolicy Equivalent, the
 * default) also matches a request for the same group and resource at another
 * version: the resource is the same whatever version a client spoke.
 */
export function ruleMatches(rule: RuleWithOperations, a: AdmissionAttributes, equivalent: boolean): boolean {
  if (!has(rule.operations, a.operation)) return false;
  if (!has(rule.apiGroups, a.resource.group)) return false;
  if (!equivalent && !has(rule.apiVersions, a.resource.version)) return false;
  if (equivalent && (rule.apiVersions ?? []).length === 0) return false;
  if (!resourceMatches(rule.resources, a.resource.resource, a.subResource)) return false;
  return scopeMatches(rule.scope, a.namespaced);
}

export function anyRuleMatches(rules: unknown, a: AdmissionAttributes, matchPolicy: unknown): boolean {
  const equivalent = matchPolicy !== 'Exact';
  return Array.isArray(rules) && rules.some((r) => isRecord(r) && ruleMatches(r as RuleWithOperations, a, equivalent));
}

/**
 * namespaceSelector: a namespaced request is judged by its namespace's labels,
 * a Namespace by its own; other cluster-scoped requests always match.
 */
export function namespaceSelectorMatches(selector: unknown, a: AdmissionAttributes, namespaceLabels: (ns: string) => Record<string, string> | undefined): boolean {
  if (selector === undefined || selector === null) return true;
  if (a.resource.group === '' && a.resource.resource === 'namespaces') {
    return matchesLabelSelectorObject(selector, (a.object ?? a.oldObject)?.metadata.labels ?? {});
  }
  if (!a.namespaced || !a.namespace) return true;
  return matchesLabelSelectorObject(selector, namespaceLabels(a.namespace) ?? {});
}

/** objectSelector: the new or the old object's labels match (an empty selector matches everything). */
export function objectSelectorMatches(selector: unknown, a: AdmissionAttributes): boolean {
  if (selector === undefined || selector === null) return true;
  const labelsOf = (o: KubeObject | null) => o?.metadata.labels ?? {};
  return matchesLabelSelectorObject(selector, labelsOf(a.object)) || (a.oldObject !== null && matchesLabelSelectorObject(selector, labelsOf(a.oldObject)));
}
