import { ApiError } from '../errors.js';
import { isRecord, type KubeObject } from '../object.js';
import { matchesLabelSelectorObject } from '../selectors.js';
import { admissionRequest, type AdmissionAttributes } from './attributes.js';
import { CelError, evaluate, evaluateBool, evaluateMatchConditions, type MatchCondition } from './cel.js';
import { anyRuleMatches, namespaceSelectorMatches, objectSelectorMatches } from './rules.js';

/**
 * ValidatingAdmissionPolicy + ValidatingAdmissionPolicyBinding
 * (admissionregistration.k8s.io/v1), evaluated in-process in CEL as
 * kube-apiserver does: the binding selects the policy and its params, both
 * the policy's matchConstraints and the binding's matchResources must match,
 * then matchConditions, then every validation. A false validation is a denial
 * worded `ValidatingAdmissionPolicy '<p>' with binding '<b>' denied request: <message>`.
 */

interface MatchResources {
  resourceRules?: unknown[];
  excludeResourceRules?: unknown[];
  namespaceSelector?: unknown;
  objectSelector?: unknown;
  matchPolicy?: string;
}

interface Validation { expression: string; message?: string; messageExpression?: string; reason?: string }

interface PolicySpec {
  paramKind?: { apiVersion: string; kind: string };
  matchConstraints?: MatchResources;
  validations?: Validation[];
  failurePolicy?: 'Fail' | 'Ignore';
  matchConditions?: MatchCondition[];
  variables?: { name: string; expression: string }[];
}

interface BindingSpec {
  policyName?: string;
  paramRef?: { name?: string; namespace?: string; selector?: unknown; parameterNotFoundAction?: 'Allow' | 'Deny' };
  matchResources?: MatchResources;
  validationActions?: string[];
}

export interface PolicySource {
  policies(): KubeObject[];
  bindings(): KubeObject[];
  namespaceLabels(ns: string): Record<string, string> | undefined;
  namespaceObject(ns: string): KubeObject | undefined;
  /** Objects of the param kind: by name or label selector, in a namespace (or cluster-wide for cluster-scoped kinds). */
  params(apiVersion: string, kind: string, namespace: string | undefined): { namespaced: boolean; items: KubeObject[] } | undefined;
  log?: ((msg: string) => void) | undefined;
}

const CODES: Record<string, number> = { Unauthorized: 401, Forbidden: 403, Invalid: 422, RequestEntityTooLarge: 413 };

function matches(m: MatchResources | undefined, a: AdmissionAttributes, src: PolicySource): boolean {
  if (!m) return false;
  if (!anyRuleMatches(m.resourceRules, a, m.matchPolicy)) return false;
  if (Array.isArray(m.excludeResourceRules) && anyRuleMatches(m.excludeResourceRules, a, m.matchPolicy)) return false;
  return namespaceSelectorMatches(m.namespaceSelector, a, (ns) => src.namespaceLabels(ns)) && objectSelectorMatches(m.objectSelector, a);
}

/** Only the policies' and bindings' resource rules: whether this request could concern any policy. */
export function anyPolicyRuleMatches(a: AdmissionAttributes, src: PolicySource): boolean {
  return src.policies().some((p) => {
    const spec = (p['spec'] ?? {}) as PolicySpec;
    return anyRuleMatches(spec.matchConstraints?.resourceRules, a, spec.matchConstraints?.matchPolicy);
  });
}

export async function runPolicies(a: AdmissionAttributes, src: PolicySource): Promise<void> {
  const policies = new Map(src.policies().map((p) => [p.metadata.name!, p]));
  const bindings = [...src.bindings()].sort((x, y) => x.metadata.name!.localeCompare(y.metadata.name!));
  for (const b of bindings) {
    const bspec = (b['spec'] ?? {}) as BindingSpec;
    const policy = bspec.policyName ? policies.get(bspec.policyName) : undefined;
    if (!policy) continue;
    const spec = (policy['spec'] ?? {}) as PolicySpec;
    if (!matches(spec.matchConstraints, a, src)) continue;
    if (bspec.matchResources && !matches({ ...bspec.matchResources, resourceRules: bspec.matchResources.resourceRules ?? [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*', '*/*'] }] }, a, src)) continue;
    const fail = spec.failurePolicy !== 'Ignore';
    const deny = (message: string, reason = 'Invalid') => {
      const actions = bspec.validationActions ?? [];
      const text = `ValidatingAdmissionPolicy '${policy.metadata.name}' with binding '${b.metadata.name}' denied request: ${message}`;
      if (actions.includes('Deny')) throw new ApiError(CODES[reason] ?? 422, reason, text);
      if (actions.includes('Warn') || actions.includes('Audit')) src.log?.(`admission policy (${actions.join(',')}): ${text}`);
    };

    let params: (KubeObject | null)[] = [null];
    if (spec.paramKind) {
      const found = resolveParams(spec.paramKind, bspec.paramRef, a, src);
      if ('error' in found) {
        if (fail) deny(found.error);
        continue;
      }
      if (found.items.length === 0) {
        if (bspec.paramRef?.parameterNotFoundAction === 'Deny') deny('failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction');
        continue;
      }
      params = found.items;
    }
    for (const param of params) {
      let vars: Record<string, unknown> = {
        object: a.object,
        oldObject: a.oldObject,
        request: admissionRequest(a),
        params: param,
        namespaceObject: a.namespace ? src.namespaceObject(a.namespace) ?? null : null,
        authorizer: null,
      };
      const mc = evaluateMatchConditions(spec.matchConditions, vars);
      if (mc.error) {
        if (fail) deny(mc.error);
        continue;
      }
      if (!mc.matches) continue;
      const variables: Record<string, unknown> = {};
      for (const v of spec.variables ?? []) {
        try {
          // Each variable may use the ones before it; a fresh object per step keeps the CEL copy current.
          variables[v.name] = evaluate(v.expression, { ...vars, variables: { ...variables } });
        } catch {
          // Kubernetes evaluates variables lazily: an error surfaces in the validation that uses it.
        }
      }
      vars = { ...vars, variables };
      for (const val of spec.validations ?? []) {
        let ok: boolean;
        try {
          ok = evaluateBool(val.expression, vars);
        } catch (err) {
          if (fail) deny(`expression '${val.expression}' resulted in error: ${(err as CelError).message}`);
          continue;
        }
        if (ok) continue;
        let message = val.message || `failed expression: ${val.expression}`;
        if (val.messageExpression) {
          try {
            const m = evaluate(val.messageExpression, vars);
            if (typeof m === 'string' && m.trim()) message = m;
          } catch {
            // A failing messageExpression falls back to message, as the real server does.
          }
        }
        deny(message, val.reason ?? 'Invalid');
      }
    }
  }
}

function resolveParams(kind: { apiVersion: string; kind: string }, ref: BindingSpec['paramRef'], a: AdmissionAttributes, src: PolicySource): { items: KubeObject[] } | { error: string } {
  if (!ref) return { error: 'failed to configure binding: paramRef is required when the policy has a paramKind' };
  const probe = src.params(kind.apiVersion, kind.kind, undefined);
  if (!probe) return { error: `failed to configure policy: failed to find resource referenced by paramKind: '${kind.apiVersion}, Kind=${kind.kind}'` };
  let namespace: string | undefined;
  if (probe.namespaced) {
    namespace = ref.namespace || (a.namespaced ? a.namespace : undefined);
    if (!namespace) return { error: 'cannot use a namespaced paramKind with a cluster-scoped request and no paramRef.namespace' };
  }
  const all = src.params(kind.apiVersion, kind.kind, namespace)?.items ?? [];
  if (ref.name) return { items: all.filter((o) => o.metadata.name === ref.name) };
  if (isRecord(ref.selector)) return { items: all.filter((o) => matchesLabelSelectorObject(ref.selector, o.metadata.labels ?? {})) };
  return { error: 'failed to configure binding: paramRef needs a name or a selector' };
}

