/** Optional authentication and RBAC for the embedded dev cluster (`startDevCluster({ rbac: true })`). */
export { ClusterAuth, ADMIN_USER } from './clusterAuth.js';
export { authorize, ruleAllows, subjectMatches, type PolicyRule, type PolicySource, type Binding, type Subject, type RoleRef, type Decision } from './rbac.js';
export { requestAttributes, type RequestAttributes } from './requestAttributes.js';
export { forbidden } from './forbidden.js';
export { bootstrapPolicy } from './bootstrapPolicy.js';
export { registerRbacResources, rbacResources } from './resources.js';
export { ANONYMOUS, Groups, serviceAccountUser, serviceAccountUserName, parseServiceAccountUser, type UserInfo } from './user.js';
export { devClusterAuth, type DevClusterAuth } from './kubeconfig.js';
