import { stringify } from 'yaml';

/**
 * A kubeconfig for the dev cluster. Over HTTPS (`ferry dev`) it trusts the
 * server's own certificate as its CA. Over plain HTTP (the test suites'
 * clusters) client-node refuses http:// servers unless TLS verification is
 * off, hence insecure-skip-tls-verify there.
 */
export const CONTEXT_NAME = 'ferry-dev';

export function kubeConfigYaml(server: string, token: string, namespace = 'default', caCert?: string): string {
  const cluster = caCert ? { server, 'certificate-authority-data': Buffer.from(caCert).toString('base64') } : { server, 'insecure-skip-tls-verify': true };
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: CONTEXT_NAME, cluster }],
    users: [{ name: CONTEXT_NAME, user: { token } }],
    contexts: [{ name: CONTEXT_NAME, context: { cluster: CONTEXT_NAME, user: CONTEXT_NAME, namespace } }],
    'current-context': CONTEXT_NAME,
    preferences: {},
  });
}
