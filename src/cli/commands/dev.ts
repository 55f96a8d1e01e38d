import path from 'node:path';
import { VMIM_RESOURCE } from '../../kube/client.js';
import { startDevEnvironment } from '../../devcluster/environment.js';
import { startLibvirtLaunchers, type LibvirtLaunchers } from '../../devcluster/libvirtLaunchers.js';
import { createLogger } from '../../util/log.js';
import { ControllerMetrics, HandlerMetrics, liveness, startHealthServer } from '../../metrics/index.js';
import { followMigration } from '../follow.js';
import { formatDuration } from '../format.js';
import { untilSignal } from '../shutdown.js';

export async function runDev(o: {
  nodes: number; vms: number; kubeconfig: string; port: number; timeScale: number; logFile: string; demo: boolean; metricsPort?: number;
  driver?: 'sim' | 'libvirt'; libvirtDir?: string;
}): Promise<void> {
  if (o.nodes < 2) throw new Error('--nodes must be at least 2 (a migration needs somewhere to go)');
  const libvirt = o.driver === 'libvirt';
  // Every node is a libvirtd with TCG guests: more than 3 swamps a small machine.
  if (libvirt && o.nodes > 3) throw new Error('--driver libvirt runs 2 or 3 nodes (--nodes 2|3)');
  const t0 = Date.now();
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const log = createLogger({ name: 'ferry-dev', destination: o.logFile });
  out(`Starting Ferry dev environment: ${o.nodes} nodes, ${o.vms} VMIs, ${libvirt ? 'libvirt (real QEMU guests)' : 'simulated hypervisors'} (logs: ${o.logFile})`);
  const metrics = { controller: new ControllerMetrics(), handlers: new HandlerMetrics() };
  let launchers: LibvirtLaunchers | undefined;
  if (libvirt) {
    const nodes = Array.from({ length: o.nodes }, (_, i) => `node-${i + 1}`);
    launchers = await startLibvirtLaunchers({ dir: o.libvirtDir ?? '.ferry/libvirt', nodes, onProgress: (line) => out(`  ${line}`) });
  }
  const env = await startDevEnvironment({
    nodes: o.nodes,
    vms: o.vms,
    kubeconfigPath: o.kubeconfig,
    timeScale: o.timeScale,
    cluster: { port: o.port },
    log,
    metrics,
    ...(launchers ? { driver: { kind: 'libvirt' as const, sockets: launchers.sockets } } : {}),
  }).catch(async (err: unknown) => {
    await launchers?.stop().catch((e: unknown) => out(`could not stop the libvirt launchers: ${(e as Error).message}`));
    throw err;
  });
  if (launchers) out(`Guests: ${o.vms} QEMU guests of 64 MiB running in their nodes' libvirtd (sockets under ${path.resolve(o.libvirtDir ?? '.ferry/libvirt')})`);
  const health = await startHealthServer({
    port: o.metricsPort ?? 0,
    registries: [metrics.controller.registry, metrics.handlers.registry, ...(env.webhook ? [env.webhook.metrics.registry] : [])],
    checks: { healthz: liveness(), readyz: { controller: () => env.controller?.ready() ?? false } },
    log,
  });
  const kubeconfig = path.resolve(o.kubeconfig);
  out(`Ferry dev cluster ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: API ${env.cluster.url}, NATS ${env.natsUrl}`);
  out(`Metrics: http://127.0.0.1:${health.port}/metrics  (health: /healthz, /readyz)`);
  const hook = env.webhook?.server();
  if (hook) out(`Admission webhook: HTTPS on 127.0.0.1:${hook.port}, registered as deploy/ does (Service ferry-system/ferry-webhook, ValidatingWebhookConfiguration ferry-admission)`);
  out('');
  out(`  export KUBECONFIG=${kubeconfig}`);
  out('  kubectl get nodes,pods,vmi,vmim');
  out('  kubectl get vmim -w');
  out('  npx ferry migrate default/vm-2      # or: kubectl create -f examples/migration.yaml');
  out('  npx ferry status');
  out('  kubectl drain node-2 --ignore-daemonsets   # evictions go through the webhook; the VMs move');
  out('');
  out('Press Ctrl-C to stop (everything started here stops with it).');

  const stop = async () => {
    out('\nStopping Ferry dev environment…');
    await health.close();
    await env.stop();
    if (launchers) {
      out('Stopping libvirtd launchers and their guests…');
      await launchers.stop();
    }
    out('Stopped.');
  };
  let stopping = false;
  const parked = untilSignal(async () => {
    stopping = true;
    await stop();
  });

  if (o.demo && o.vms > 0) {
    out('');
    out('Demo: migrating default/vm-1');
    const created = (await env.kube.createCustom(VMIM_RESOURCE, 'default', {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstanceMigration',
      metadata: { name: 'demo-migration-vm-1', namespace: 'default' },
      spec: { vmiName: 'vm-1' },
    })) as { metadata: { name: string } };
    try {
      const r = await followMigration(env.kube, 'default', created.metadata.name, { out: process.stdout, timeoutMs: 300_000 });
      const ms = r.vmim.status?.migrationState;
      if (r.phase === 'Succeeded') {
        out(`Demo: default/vm-1 Succeeded — moved ${ms?.sourceNode} → ${ms?.targetNode} in ${formatDuration(r.seconds)} (${((Date.now() - t0) / 1000).toFixed(1)}s since start)`);
      } else {
        out(`Demo: default/vm-1 ${r.phase}: ${ms?.failureReason ?? 'see logs'}`);
      }
    } catch (err) {
      if (!stopping) out(`Demo could not be followed: ${(err as Error).message}`);
    }
  }
  await parked;
}
