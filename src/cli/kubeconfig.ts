import { existsSync } from 'node:fs';
import { KubeClient } from '../kube/client.js';

/** --kubeconfig, else $KUBECONFIG, else the dev cluster's, else ~/.kube/config. */
export function kubeClientFor(path: string | undefined): KubeClient {
  const chosen = path ?? process.env['KUBECONFIG'] ?? (existsSync('.ferry/kubeconfig') ? '.ferry/kubeconfig' : undefined);
  if (chosen && !existsSync(chosen)) throw new Error(`kubeconfig ${chosen} does not exist (is \`ferry dev\` running?)`);
  return KubeClient.fromFile(chosen);
}

/** "ns/name" or "name" (namespace "default"). */
export function splitRef(ref: string, what: string): { namespace: string; name: string } {
  const parts = ref.split('/');
  if (parts.length === 1 && parts[0]) return { namespace: 'default', name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  throw new Error(`expected ${what} as NAMESPACE/NAME, got "${ref}"`);
}
