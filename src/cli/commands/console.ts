import { startConsole } from '../../console/server.js';
import { createLogger } from '../../util/log.js';
import { kubeClientFor } from '../kubeconfig.js';
import { untilSignal } from '../shutdown.js';
import { clusterSettings } from './drain.js';

/** `ferry console`: the web console for a cluster, acting with this kubeconfig's user. */
export async function runConsole(o: { kubeconfig?: string; port: number; address: string }): Promise<void> {
  const kube = kubeClientFor(o.kubeconfig);
  const log = createLogger({ name: 'ferry-console', destination: process.stderr });
  const { taintKey } = await clusterSettings(kube);
  const server = kube.kc.getCurrentCluster()?.server ?? '?';
  const user = kube.kc.getCurrentUser()?.name ?? '?';
  const console = await startConsole({ kube, port: o.port, host: o.address, log, taintKey }).catch((err: unknown) => {
    throw new Error(`console could not start: ${(err as Error).message}`);
  });
  process.stdout.write(`Ferry console: ${console.url}\n  cluster ${server}, acting as kubeconfig user "${user}" (the console has no rights of its own)\nPress Ctrl-C to stop.\n`);
  await untilSignal(() => console.close());
}
