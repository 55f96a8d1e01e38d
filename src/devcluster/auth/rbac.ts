import type { RequestAttributes } from './requestAttributes.js';
import { serviceAccountUserName, type UserInfo } from './user.js';

/**
 * RBAC evaluation, as the API server's RBAC authorizer does it: a request is
 * allowed when any rule of any role bound to the user (ClusterRoleBindings
 * anywhere, RoleBindings in the request's namespace) covers it. There is no
 * deny; a binding to a role that does not exist grants nothing and is named
 * in the reason, like the real server's "RBAC: clusterrole ... not found".
 */
export interface PolicyRule {
  verbs?: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface RoleRef {
  apiGroup?: string;
  kind: string;
  name: string;
}

export interface Subject {
  kind: string;
  name: string;
  namespace?: string;
  apiGroup?: string;
}

export interface Binding {
  /** Empty for ClusterRoleBindings. */
  namespace: string;
  name: string;
  roleRef: RoleRef;
  subjects: Subject[];
}

/** Where the authorizer reads roles and bindings from (the dev cluster's store). */
export interface PolicySource {
  clusterRoleBindings(): Binding[];
  roleBindings(namespace: string): Binding[];
  /** The rules of a ClusterRole, or undefined if there is none. */
  clusterRoleRules(name: string): PolicyRule[] | undefined;
  roleRules(namespace: string, name: string): PolicyRule[] | undefined;
}

export interface Decision {
  allowed: boolean;
  /** Why nothing matched when something was broken (missing roles); empty otherwise. */
  reason: string;
}

export function authorize(policy: PolicySource, user: UserInfo, attrs: RequestAttributes): Decision {
  const errors: string[] = [];
  const check = (bindings: Binding[]): boolean => {
    for (const b of bindings) {
      if (!b.subjects.some((s) => subjectMatches(s, user, b.namespace))) continue;
      const rules = rulesOf(policy, b, errors);
      if (rules?.some((r) => ruleAllows(r, attrs))) return true;
    }
    return false;
  };
  if (check(policy.clusterRoleBindings())) return { allowed: true, reason: '' };
  if (attrs.resourceRequest && attrs.namespace !== '' && check(policy.roleBindings(attrs.namespace))) return { allowed: true, reason: '' };
  return { allowed: false, reason: errors.length ? `RBAC: ${aggregate(errors)}` : '' };
}

function rulesOf(policy: PolicySource, b: Binding, errors: string[]): PolicyRule[] | undefined {
  const { kind, name } = b.roleRef;
  if (kind === 'ClusterRole') {
    const rules = policy.clusterRoleRules(name);
    if (!rules) errors.push(`clusterrole.rbac.authorization.k8s.io "${name}" not found`);
    return rules;
  }
  if (kind === 'Role' && b.namespace !== '') {
    const rules = policy.roleRules(b.namespace, name);
    if (!rules) errors.push(`role.rbac.authorization.k8s.io "${name}" not found`);
    return rules;
  }
  errors.push(`unsupported roleRef kind "${kind}" in binding ${b.namespace ? `${b.namespace}/` : ''}${b.name}`);
  return undefined;
}

/** The API server's aggregate error text: one error alone, several in brackets. */
function aggregate(errors: string[]): string {
  return errors.length === 1 ? errors[0]! : `[${errors.join(', ')}]`;
}

export function subjectMatches(s: Subject, user: UserInfo, bindingNamespace: string): boolean {
  switch (s.kind) {
    case 'User':
      return s.name === user.name;
    case 'Group':
      return user.groups.includes(s.name);
    case 'ServiceAccount': {
      // A RoleBinding's ServiceAccount subject without a namespace means the binding's own.
      const ns = s.namespace || bindingNamespace;
      return ns !== '' && serviceAccountUserName(ns, s.name) === user.name;
    }
    default:
      return false;
  }
}

export function ruleAllows(rule: PolicyRule, attrs: RequestAttributes): boolean {
  if (!matchesVerb(rule.verbs, attrs.verb)) return false;
  if (!attrs.resourceRequest) return (rule.nonResourceURLs ?? []).some((u) => urlMatches(u, attrs.path));
  if (!(rule.apiGroups ?? []).some((g) => g === '*' || g === attrs.apiGroup)) return false;
  if (!resourceMatches(rule.resources ?? [], attrs.resource, attrs.subresource)) return false;
  const names = rule.resourceNames ?? [];
  return names.length === 0 || names.includes(attrs.name);
}

function matchesVerb(verbs: string[] | undefined, verb: string): boolean {
  return (verbs ?? []).some((v) => v === '*' || v === verb);
}

/** "pods" covers pods only; "pods/status" the subresource; "*" everything; "*\/status" every resource's status. */
function resourceMatches(ruleResources: string[], resource: string, subresource: string): boolean {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  return ruleResources.some((r) => r === '*' || r === combined || (subresource !== '' && r === `*/${subresource}`));
}

function urlMatches(rule: string, path: string): boolean {
  if (rule === '*' || rule === path) return true;
  return rule.endsWith('*') && path.startsWith(rule.slice(0, -1));
}
