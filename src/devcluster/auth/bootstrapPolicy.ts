import type { KubeObject } from '../object.js';
import { Groups } from './user.js';

/**
 * The slice of the API server's default RBAC policy a client meets first:
 * cluster-admin for system:masters, discovery for every authenticated user,
 * and health/version for everyone. Stored as ordinary objects, as on a real
 * cluster, so `kubectl get clusterroles` shows them and bindings can use them.
 */
const meta = (name: string) => ({
  name,
  labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' },
  annotations: { 'rbac.authorization.kubernetes.io/autoupdate': 'true' },
});

const RBAC = 'rbac.authorization.k8s.io/v1';
const PUBLIC_INFO = ['/healthz', '/livez', '/readyz', '/version', '/version/'];
const DISCOVERY = ['/api', '/api/*', '/apis', '/apis/*', '/openapi', '/openapi/*', ...PUBLIC_INFO];

function clusterRole(name: string, rules: object[]): KubeObject {
  return { apiVersion: RBAC, kind: 'ClusterRole', metadata: meta(name), rules };
}

function groupBinding(name: string, role: string, groups: string[]): KubeObject {
  return {
    apiVersion: RBAC,
    kind: 'ClusterRoleBinding',
    metadata: meta(name),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: groups.map((g) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: g })),
  };
}

export function bootstrapPolicy(): { clusterRoles: KubeObject[]; clusterRoleBindings: KubeObject[] } {
  return {
    clusterRoles: [
      clusterRole('cluster-admin', [
        { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
        { nonResourceURLs: ['*'], verbs: ['*'] },
      ]),
      clusterRole('system:discovery', [{ nonResourceURLs: DISCOVERY, verbs: ['get'] }]),
      clusterRole('system:public-info-viewer', [{ nonResourceURLs: PUBLIC_INFO, verbs: ['get'] }]),
    ],
    clusterRoleBindings: [
      groupBinding('cluster-admin', 'cluster-admin', [Groups.masters]),
      groupBinding('system:discovery', 'system:discovery', [Groups.authenticated]),
      groupBinding('system:public-info-viewer', 'system:public-info-viewer', [Groups.authenticated, Groups.unauthenticated]),
    ],
  };
}
