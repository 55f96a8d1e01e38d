import path from 'node:path';
import { VMIM_RESOURCE } from '../../kube/client.js';
import { startConsole } from '../../console/server.js';
import { startDevEnvironment } from '../../devcluster/environment.js';
import { prepareLibvirtMachine } from '../../devcluster/libvirtLaunchers.js';
import { startTracing } from '../../tracing/setup.js';
import { TraceStore } from '../../tracing/store.js';
import { createLogger } from '../../util/log.js';
import { ControllerMetrics, HandlerMetrics, liveness, startHealthServer } from '../../metrics/index.js';
import { followMigration } from '../follow.js';
import { loadScenario } from '../../devcluster/scenarioFile.js';
import { scenarioFerryConfig } from '../../devcluster/scenarioSeed.js';
import { formatDuration } from '../format.js';
import { untilSignal } from '../shutdown.js';
import { runDevProcesses } from './devProcesses.js';

export async function runDev(o: {
  nodes: number; vms: number; kubeconfig: string; port: number; timeScale: number; logFile: string; demo: boolean; metricsPort?: number; consolePort?: number; traceFile?: string; otlpEndpoint?: string;
  driver?: 'sim' | 'libvirt'; libvirtDir?: string; processes?: boolean; stateDir?: string; scenario?: string;
}): Promise<void> {
  if (o.processes) {
    if (o.scenario) throw new Error('--scenario and --processes cannot be combined yet');
    return runDevProcesses(o);
  }
  const scenario = o.scenario ? loadScenario(o.scenario) : undefined;
  if (scenario) {
    o = { ...o, nodes: scenario.nodes.length, vms: scenario.vms.length };
    if (o.driver === 'libvirt') throw new Error('--scenario runs on the sim driver only');
  }
  if (o.nodes < 2) throw new Error('--nodes must be at least 2 (a migration needs somewhere to go)');
  const libvirt = o.driver === 'libvirt';
  // Every node is a libvirtd with TCG guests: more than 3 swamps a small machine.
  if (libvirt && o.nodes > 3) throw new Error('--driver libvirt runs 2 or 3 nodes (--nodes 2|3)');
  const t0 = Date.now();
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const log = createLogger({ name: 'ferry-dev', destination: o.logFile });
  out(`Starting Ferry dev environment${scenario ? ` from scenario ${scenario.name}` : ''}: ${o.nodes} nodes, ${o.vms} VMIs, ${libvirt ? 'libvirt (real QEMU guests)' : 'simulated hypervisors'} (logs: ${o.logFile})`);
  const metrics = { controller: new ControllerMetrics(), handlers: new HandlerMetrics() };
  const libvirtDir = path.resolve(o.libvirtDir ?? '.ferry/libvirt');
  if (libvirt) await prepareLibvirtMachine({ dir: libvirtDir, onProgress: (line) => out(`  ${line}`) });
  // KubeVirt's layout: the kubelet stand-in starts a libvirtd per launcher pod,
  // handlers find them by pod UID, migrations go through the handlers' mTLS proxy.
  // Spans are always kept in memory for the console; a file and OTLP when asked for.
  const traces = new TraceStore();
  const tracing = startTracing({ service: 'ferry-dev', store: traces, file: o.traceFile, otlpEndpoint: o.otlpEndpoint })!;
  const env = await startDevEnvironment({
    nodes: o.nodes,
    vms: o.vms,
    kubeconfigPath: o.kubeconfig,
    timeScale: o.timeScale,
    cluster: { port: o.port },
    log,
    metrics,
    ...(libvirt ? { driver: { kind: 'launchers' as const, root: libvirtDir, nodes: o.nodes } } : {}),
    ...(scenario ? { scenario, config: scenarioFerryConfig(scenario, { evacuation: { backoffBaseSeconds: 20 / o.timeScale } }) } : {}),
  });
  if (libvirt) out(`Guests: ${o.vms} QEMU guests of 64 MiB, each in its launcher pod's own libvirtd (pods dirs ${libvirtDir}/node-N/pods/<podUID>)`);
  const health = await startHealthServer({
    port: o.metricsPort ?? 0,
    registries: [metrics.controller.registry, metrics.handlers.registry],
    checks: { healthz: liveness(), readyz: { controller: () => env.controller?.ready() ?? false } },
    log,
  });
  const webConsole = await startConsole({ kube: env.kube, port: o.consolePort ?? 0, log, traces });
  const kubeconfig = path.resolve(o.kubeconfig);
  out(`Ferry dev cluster ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: API ${env.cluster.url}, NATS ${env.natsUrl}`);
  out(`Metrics: http://127.0.0.1:${health.port}/metrics  (health: /healthz, /readyz)`);
  out(`Console: ${webConsole.url}`);
  out(`Traces: one per migration, kept for the console${tracing.describe === 'memory' ? '' : `; also to ${tracing.describe}`}`);
  out('');
  out(`  export KUBECONFIG=${kubeconfig}`);
  out('  kubectl get nodes,pods,vmi,vmim');
  out('  kubectl get vmim -w');
  out(`  npx ferry migrate default/${scenario ? scenario.vms[0]?.name ?? 'vm-1' : 'vm-2'}      # or: kubectl create -f examples/migration.yaml`);
  out('  npx ferry status');
  if (scenario) out(`  npx ferry drain ${scenario.drain[0]}      # the scenario drains: ${scenario.drain.slice(0, 5).join(', ')}${scenario.drain.length > 5 ? ', …' : ''}`);
  out('');
  out('Press Ctrl-C to stop (everything started here stops with it).');

  const stop = async () => {
    out('\nStopping Ferry dev environment…');
    await webConsole.close();
    await health.close();
    if (libvirt) out('Stopping the launcher daemons and their guests…');
    await env.stop();
    await tracing.shutdown();
    out('Stopped.');
  };
  let stopping = false;
  const parked = untilSignal(async () => {
    stopping = true;
    await stop();
  });

  if (o.demo && o.vms > 0 && !scenario) {
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
