import { kubeConfigYaml } from '../kubeconfig.js';
import type { ClusterAuth } from './clusterAuth.js';
import type { UserInfo } from './user.js';

/** What a dev cluster started with `rbac: true` offers for acting as someone other than the admin. */
export interface DevClusterAuth {
  /** A bearer token for the ServiceAccount (valid while the ServiceAccount exists). */
  serviceAccountToken(namespace: string, name: string): string;
  /** A bearer token for any user name and groups (system:authenticated is added). */
  tokenFor(user: UserInfo): string;
  /** A kubeconfig that authenticates as the ServiceAccount, its namespace as the default. */
  serviceAccountKubeconfig(namespace: string, name: string): string;
}

export function devClusterAuth(auth: ClusterAuth, server: string): DevClusterAuth {
  return {
    serviceAccountToken: (ns, name) => auth.serviceAccountToken(ns, name),
    tokenFor: (user) => auth.tokenFor(user),
    serviceAccountKubeconfig: (ns, name) => kubeConfigYaml(server, auth.serviceAccountToken(ns, name), ns),
  };
}
