import path from 'node:path';
import { describeDir, startProcessEnvironment } from '../../devcluster/processEnvironment.js';
import type { SupervisorEvent } from '../../devcluster/supervisor.js';
import { untilSignal } from '../shutdown.js';

/** `ferry dev --processes`: see src/devcluster/processEnvironment.ts. */
export async function runDevProcesses(o: {
  nodes: number; vms: number; kubeconfig: string; port: number; timeScale: number; driver?: 'sim' | 'libvirt'; stateDir?: string;
}): Promise<void> {
  if (o.driver === 'libvirt') throw new Error('--processes runs the sim driver only (drop --driver libvirt)');
  if (o.nodes < 2) throw new Error('--nodes must be at least 2 (a migration needs somewhere to go)');
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const t0 = Date.now();
  const dir = path.resolve(o.stateDir ?? '.ferry/processes');
  out(`Starting Ferry dev environment with real processes: ${o.nodes} handler processes, 2 controllers, 3 NATS servers (state: ${dir})`);
  const onProcessEvent = (e: SupervisorEvent) => {
    if (e.type === 'started') out(`  ${e.name} started (pid ${e.pid}${e.restarts ? `, restart ${e.restarts}` : ''})`);
    else if (!e.expected) out(`  ${e.name} (pid ${e.pid}) died (${e.signal ?? `exit code ${e.code}`}); restarting in ${e.restartInMs} ms`);
  };
  const env = await startProcessEnvironment({ nodes: o.nodes, vms: o.vms, dir, timeScale: o.timeScale, cluster: { port: o.port }, onProcessEvent });
  describeDir(env);
  await env.cluster.writeKubeconfig(o.kubeconfig);
  out(`Ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: API ${env.cluster.url}, NATS ${env.natsUrls.join(',')}`);
  out(`Process logs: ${path.join(dir, 'logs')}   guests' ground truth: ${path.join(dir, 'sim')}`);
  out('');
  out(`  export KUBECONFIG=${path.resolve(o.kubeconfig)}`);
  out('  kubectl get lease ferry-controller -o jsonpath={.spec.holderIdentity}   # which controller leads');
  out('  npx ferry migrate default/vm-2');
  out('');
  out('Kill any child (kill -9 PID) and watch it come back. Ctrl-C stops everything.');
  await untilSignal(async () => {
    out('\nStopping…');
    await env.stop();
    out('Stopped.');
  });
}
