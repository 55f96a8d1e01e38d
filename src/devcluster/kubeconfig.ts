import { stringify } from 'yaml';

/**
 * A kubeconfig for the dev cluster. The server speaks plain HTTP, and
 * client-node refuses http:// servers unless TLS verification is off, hence
 * insecure-skip-tls-verify.
 */
export const CONTEXT_NAME = 'ferry-dev';

export function kubeConfigYaml(server: string, token: string, namespace = 'default'): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: CONTEXT_NAME, cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: CONTEXT_NAME, user: { token } }],
    contexts: [{ name: CONTEXT_NAME, context: { cluster: CONTEXT_NAME, user: CONTEXT_NAME, namespace } }],
    'current-context': CONTEXT_NAME,
    preferences: {},
  });
}
