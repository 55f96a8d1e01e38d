/**
 * Who a request comes from, as the API server's authenticators describe it:
 * a name and groups. RBAC subjects match on these strings only.
 */
export interface UserInfo {
  name: string;
  groups: string[];
}

export const Groups = {
  /** Bypasses authorization altogether, as on a real API server (kubeadm's admin.conf user). */
  masters: 'system:masters',
  authenticated: 'system:authenticated',
  unauthenticated: 'system:unauthenticated',
  serviceAccounts: 'system:serviceaccounts',
} as const;

export const ANONYMOUS: UserInfo = { name: 'system:anonymous', groups: [Groups.unauthenticated] };

const SA_PREFIX = 'system:serviceaccount:';

/** The user a ServiceAccount's token authenticates as. */
export function serviceAccountUser(namespace: string, name: string): UserInfo {
  return {
    name: serviceAccountUserName(namespace, name),
    groups: [Groups.serviceAccounts, `${Groups.serviceAccounts}:${namespace}`, Groups.authenticated],
  };
}

export function serviceAccountUserName(namespace: string, name: string): string {
  return `${SA_PREFIX}${namespace}:${name}`;
}

/** The namespace and name of a ServiceAccount user, or undefined for any other user. */
export function parseServiceAccountUser(userName: string): { namespace: string; name: string } | undefined {
  if (!userName.startsWith(SA_PREFIX)) return undefined;
  const [namespace, name, ...rest] = userName.slice(SA_PREFIX.length).split(':');
  if (!namespace || !name || rest.length > 0) return undefined;
  return { namespace, name };
}
