import { KubeConfig } from '@kubernetes/client-node';
import type { NatsConnection } from 'nats';
import { closeBus, connectBus } from '../bus/connection.js';
import { superviseNatsServer, type SupervisedNatsServer } from '../bus/natsSupervisor.js';
import { natsConnectionCheck } from '../metrics/readiness.js';
import { fail, pass, type Check, type CheckResult } from '../metrics/healthServer.js';
import { defaultFerryConfig, type FerryConfig } from '../config/ferryConfig.js';
import { MigrationController } from '../controller/controller.js';
import { RunbookController } from '../runbook/controller.js';
import { startHandler, type RunningHandler } from '../handler/handler.js';
import { JobRecordStore } from '../handler/jobRecords.js';
import type { HypervisorDriver } from '../hypervisor/driver.js';
import { SimDriver } from '../hypervisor/sim.js';
import { KubeClient } from '../kube/client.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { ControllerMetrics, HandlerMetrics } from '../metrics/index.js';
import { seedDemo, startDevCluster, type DevCluster, type DevClusterOptions } from './index.js';
import { bootGuests, connectLibvirtNode, libvirtNodeNames, libvirtStateDir, type LibvirtNodes } from './libvirtNodes.js';

export interface DevEnvironmentOptions {
  nodes?: number;
  vms?: number;
  /** Use this nats-server instead of spawning one. */
  natsUrl?: string;
  kubeconfigPath?: string;
  config?: FerryConfig;
  /** Sim time runs this many times faster than the wall clock. */
  timeScale?: number;
  cluster?: DevClusterOptions;
  log?: Logger;
  /** Set false to start without the controller (tests that start their own). */
  controller?: boolean;
  progressIntervalMs?: number;
  metrics?: { controller: ControllerMetrics; handlers: HandlerMetrics };
  /**
   * What runs the guests: the simulator (default), or one libvirtd per node
   * (then `nodes` is the number of sockets, VMIs get the guests' memory and
   * their guests are booted in their nodes' daemons).
   */
  driver?: 'sim' | LibvirtNodes;
}

export interface NodeAgent {
  node: string;
  driver: HypervisorDriver;
  nc: NatsConnection;
  handler: RunningHandler;
}

export interface DevEnvironment {
  cluster: DevCluster;
  kube: KubeClient;
  natsUrl: string;
  agents: Map<string, NodeAgent>;
  controller: MigrationController | undefined;
  /** The maintenance-window runbooks, run beside the controller as `ferry controller` does. */
  runbooks: RunbookController | undefined;
  /** Starts (or restarts) the controller with its own NATS connection. */
  startController(): Promise<MigrationController>;
  stopController(): Promise<void>;
  /**
   * Readiness of the bus: the nats-server this environment runs is up (it is
   * restarted if it dies) and the controller's connection to it is open.
   */
  natsCheck: Check;
  /** The nats-server this environment started (undefined with `natsUrl`). */
  natsServer: SupervisedNatsServer | undefined;
  stop(): Promise<void>;
}

/**
 * Everything `ferry dev` runs, in one process: a nats-server, the embedded
 * cluster seeded with nodes and running VMIs, one handler (sim driver) per
 * node, and the controller. End-to-end tests use the same assembly.
 */
export async function startDevEnvironment(opts: DevEnvironmentOptions = {}): Promise<DevEnvironment> {
  const log = opts.log ?? silentLogger;
  const config = opts.config ?? defaultFerryConfig;
  const libvirt = opts.driver && opts.driver !== 'sim' ? opts.driver : undefined;
  const nodes = libvirt ? libvirtNodeNames(libvirt).length : opts.nodes ?? 3;
  let nats: SupervisedNatsServer | undefined;
  const cleanups: Array<() => Promise<void>> = [];
  try {
    let natsUrl = opts.natsUrl;
    if (!natsUrl) {
      nats = await superviseNatsServer({ log: log.child({ component: 'nats-server' }) });
      natsUrl = nats.url;
      const n = nats;
      cleanups.push(() => n.stop());
    }
    const cluster = await startDevCluster(opts.cluster ?? {});
    cleanups.push(() => cluster.close());
    await seedDemo(cluster, { nodes, vms: opts.vms ?? 6, ...(libvirt ? { memory: libvirt.guestMemory ?? '64Mi', simAnnotations: false } : {}) });
    if (opts.kubeconfigPath) await cluster.writeKubeconfig(opts.kubeconfigPath);
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeConfigYaml());
    const kube = new KubeClient(kc);

    // The stand-in for KubeVirt's eviction webhook: launcher pod evictions ask the controller.
    cleanups.push(async () => removeHook());
    // The stand-in for KubeVirt's eviction webhook (failurePolicy Ignore): launcher pod
    // evictions ask the controller; without one, the VMIs' disruption budgets protect them.
    const removeHook = cluster.onEviction(async (pod) => (controller ? controller.checkEviction(pod) : null));

    const agents = new Map<string, NodeAgent>();
    for (let i = 1; i <= nodes; i++) {
      const node = `node-${i}`;
      const records = libvirt ? await JobRecordStore.open(libvirtStateDir(libvirt, node)) : undefined;
      const nc = await connectBus({ servers: natsUrl, name: `ferry-handler-${node}`, log });
      const driver = libvirt
        ? await connectLibvirtNode(libvirt, node, log).catch(async (err: unknown) => { await closeBus(nc); throw err; })
        : new SimDriver({ node, timeScale: opts.timeScale ?? 1, nicBandwidth: config.limits.defaultNicCapacity });
      const handler = startHandler({
        nc,
        node,
        driver,
        ...(records ? { records } : {}),
        log: log.child({ node }),
        progressIntervalMs: opts.progressIntervalMs ?? 250,
        ...(opts.metrics ? { metrics: opts.metrics.handlers } : {}),
      });
      agents.set(node, { node, driver, nc, handler });
      cleanups.push(async () => {
        await handler.stop();
        await driver.close();
        await closeBus(nc);
      });
    }

    if (libvirt) await bootGuests(kube, new Map([...agents].map(([n, a]) => [n, a.driver])), log);

    let controller: MigrationController | undefined;
    let runbooks: RunbookController | undefined;
    let controllerNc: NatsConnection | undefined;
    let controllerNats: Check | undefined;
    const env: DevEnvironment = {
      natsServer: nats,
      async natsCheck(): Promise<CheckResult> {
        const server = nats?.state();
        if (server && !server.ok) return fail(server.reason);
        if (!controllerNats) return server ? pass(server.detail) : pass('external nats-server');
        const conn = await controllerNats();
        if (conn !== true && (conn === false || !conn.ok)) return conn === false ? fail('controller not connected to NATS') : conn;
        return pass(server ? `${server.detail}; controller connected` : 'controller connected');
      },
      cluster,
      kube,
      natsUrl,
      agents,
      get controller() {
        return controller;
      },
      get runbooks() {
        return runbooks;
      },
      async startController() {
        if (controller) return controller;
        controllerNc = await connectBus({ servers: natsUrl!, name: 'ferry-controller', log });
        controllerNats = natsConnectionCheck(controllerNc);
        controller = new MigrationController({ kube, nc: controllerNc, log: log.child({ component: 'controller' }), config, ...(opts.metrics ? { metrics: opts.metrics.controller } : {}) });
        opts.metrics?.controller.setLeader(true);
        await controller.start();
        runbooks = new RunbookController({ kube, log: log.child({ component: 'runbooks' }), config, timeScale: opts.timeScale ?? 1 });
        await runbooks.start();
        return controller;
      },
      async stopController() {
        await runbooks?.stop();
        runbooks = undefined;
        await controller?.stop();
        if (controllerNc) await closeBus(controllerNc);
        controller = undefined;
        controllerNc = undefined;
        controllerNats = undefined;
      },
      async stop() {
        await env.stopController();
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
        cleanups.length = 0;
      },
    };
    if (opts.controller !== false) await env.startController();
    return env;
  } catch (err) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw err;
  }
}
