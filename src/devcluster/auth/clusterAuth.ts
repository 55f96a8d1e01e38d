import { randomBytes } from 'node:crypto';
import { Errors } from '../errors.js';
import { isRecord, type StoredObject } from '../object.js';
import type { ObjectStore } from '../store.js';
import { bootstrapPolicy } from './bootstrapPolicy.js';
import { forbidden } from './forbidden.js';
import { authorize, type Binding, type PolicyRule, type PolicySource, type Subject } from './rbac.js';
import { requestAttributes } from './requestAttributes.js';
import { registerRbacResources } from './resources.js';
import { ANONYMOUS, Groups, serviceAccountUser, type UserInfo } from './user.js';

/** Whom a bearer token stands for: a fixed user, or a ServiceAccount that must still exist. */
type TokenOwner = { kind: 'user'; user: UserInfo } | { kind: 'serviceaccount'; namespace: string; name: string };

export const ADMIN_USER: UserInfo = { name: 'ferry-dev-admin', groups: [Groups.masters, Groups.authenticated] };

/**
 * Authentication and RBAC for the dev cluster. Bearer tokens are minted here
 * (the kubeconfig's admin token, ServiceAccount tokens, tokens for any user);
 * a request without a token is anonymous; an unknown token is a 401; an
 * authenticated request RBAC does not allow is a 403 worded as the real
 * server's. Roles and bindings are read from the store on every request, so a
 * change applies at once.
 */
export class ClusterAuth {
  private readonly tokens = new Map<string, TokenOwner>();
  private readonly policy: PolicySource;

  constructor(private readonly store: ObjectStore, adminToken: string) {
    registerRbacResources(store.registry);
    this.tokens.set(adminToken, { kind: 'user', user: ADMIN_USER });
    const { clusterRoles, clusterRoleBindings } = bootstrapPolicy();
    for (const o of clusterRoles) store.create('clusterroles.rbac.authorization.k8s.io', o);
    for (const o of clusterRoleBindings) store.create('clusterrolebindings.rbac.authorization.k8s.io', o);
    this.policy = storePolicy(store);
  }

  /** A new token that authenticates as `user` (tests of User and Group subjects). */
  tokenFor(user: UserInfo): string {
    return this.mint({ kind: 'user', user: { name: user.name, groups: [...new Set([...user.groups, Groups.authenticated])] } });
  }

  /** A new token for the ServiceAccount; it stops working when the ServiceAccount is deleted, as on a real cluster. */
  serviceAccountToken(namespace: string, name: string): string {
    return this.mint({ kind: 'serviceaccount', namespace, name });
  }

  /** Throws the API server's 401 or 403; returns who made an allowed request. */
  check(method: string, url: URL, authorization: string | undefined): UserInfo {
    const user = this.authenticate(authorization);
    if (user.groups.includes(Groups.masters)) return user;
    const attrs = requestAttributes(method, url);
    const decision = authorize(this.policy, user, attrs);
    if (!decision.allowed) throw forbidden(user, attrs, decision.reason);
    return user;
  }

  authenticate(authorization: string | undefined): UserInfo {
    if (authorization === undefined) return ANONYMOUS;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    const owner = m ? this.tokens.get(m[1]!) : undefined;
    if (!owner) throw Errors.unauthorized();
    if (owner.kind === 'user') return owner.user;
    if (!this.store.tryGet('serviceaccounts', owner.name, owner.namespace)) throw Errors.unauthorized();
    return serviceAccountUser(owner.namespace, owner.name);
  }

  private mint(owner: TokenOwner): string {
    const token = randomBytes(24).toString('base64url');
    this.tokens.set(token, owner);
    return token;
  }
}

function storePolicy(store: ObjectStore): PolicySource {
  const bindings = (plural: string, namespace?: string): Binding[] =>
    store.list(plural, namespace === undefined ? {} : { namespace }).items.map(toBinding);
  const rules = (o: StoredObject | undefined): PolicyRule[] | undefined => (o ? (Array.isArray(o['rules']) ? (o['rules'] as PolicyRule[]) : []) : undefined);
  return {
    clusterRoleBindings: () => bindings('clusterrolebindings.rbac.authorization.k8s.io'),
    roleBindings: (ns) => bindings('rolebindings.rbac.authorization.k8s.io', ns),
    clusterRoleRules: (name) => rules(store.tryGet('clusterroles.rbac.authorization.k8s.io', name)),
    roleRules: (ns, name) => rules(store.tryGet('roles.rbac.authorization.k8s.io', name, ns)),
  };
}

function toBinding(o: StoredObject): Binding {
  const ref = isRecord(o['roleRef']) ? o['roleRef'] : {};
  return {
    namespace: o.metadata.namespace ?? '',
    name: o.metadata.name,
    roleRef: { kind: String(ref['kind'] ?? ''), name: String(ref['name'] ?? '') },
    subjects: Array.isArray(o['subjects']) ? (o['subjects'] as Subject[]) : [],
  };
}
