import { getPath, type KubeObject } from '../object.js';
import type { ResourceDefinition, ResourceRegistry } from '../registry.js';

/** The types RBAC is made of, served only when the dev cluster enforces RBAC. */

const RBAC_GROUP = 'rbac.authorization.k8s.io';
const createdAt = { name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp' } as const;
const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' } as const;

function subjectsOfKind(kind: string) {
  return (b: KubeObject): string => {
    const subjects = getPath(b, 'subjects');
    const names = (Array.isArray(subjects) ? subjects : [])
      .filter((s: { kind?: string }) => s?.kind === kind)
      .map((s: { name?: string; namespace?: string }) => (kind === 'ServiceAccount' ? `${s.namespace ?? ''}/${s.name ?? ''}` : String(s.name ?? '')));
    return names.join(', ');
  };
}
const roleOf = (b: KubeObject) => `${String(getPath(b, 'roleRef.kind') ?? '')}/${String(getPath(b, 'roleRef.name') ?? '')}`;
const bindingColumns = [
  { name: 'Role', type: 'string', value: roleOf },
  age,
  { name: 'Users', type: 'string', priority: 1, value: subjectsOfKind('User') },
  { name: 'Groups', type: 'string', priority: 1, value: subjectsOfKind('Group') },
  { name: 'ServiceAccounts', type: 'string', priority: 1, value: subjectsOfKind('ServiceAccount') },
] satisfies ResourceDefinition['printerColumns'];

export const rbacResources: ResourceDefinition[] = [
  {
    group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', shortNames: ['sa'], namespaced: true, strategicMergePatch: true,
    printerColumns: [{ name: 'Secrets', type: 'integer', value: (sa) => (Array.isArray(sa['secrets']) ? sa['secrets'].length : 0) }, age],
  },
  { group: RBAC_GROUP, version: 'v1', kind: 'ClusterRole', plural: 'clusterroles', namespaced: false, nameValidation: 'pathSegment', strategicMergePatch: true, printerColumns: [createdAt] },
  { group: RBAC_GROUP, version: 'v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', namespaced: false, nameValidation: 'pathSegment', strategicMergePatch: true, printerColumns: bindingColumns },
  { group: RBAC_GROUP, version: 'v1', kind: 'Role', plural: 'roles', namespaced: true, nameValidation: 'pathSegment', strategicMergePatch: true, printerColumns: [createdAt] },
  { group: RBAC_GROUP, version: 'v1', kind: 'RoleBinding', plural: 'rolebindings', namespaced: true, nameValidation: 'pathSegment', strategicMergePatch: true, printerColumns: bindingColumns },
];

/** Registers what is not registered yet (another part of the cluster may serve ServiceAccounts already). */
export function registerRbacResources(registry: ResourceRegistry): void {
  for (const def of rbacResources) if (!registry.find(def.group, def.version, def.plural)) registry.register(def);
}
