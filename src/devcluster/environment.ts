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
import { startDevWebhook, type DevWebhook, type DevWebhookOptions } from './webhook.js';
import { bootGuests, connectLibvirtNode, idleGuestXml, libvirtNodeNames, libvirtStateDir, type LibvirtNodes } from './libvirtNodes.js';
import { join } from 'node:path';
import { parseObject } from '../api/meta.js';
import { Annotations, VirtualMachineInstance } from '../api/vmi.js';
import { guestSpecFor } from '../controller/guest.js';
import type { GuestSpec } from '../hypervisor/driver.js';
import { LauncherDriver } from '../launcher/launcherDriver.js';
import { devMigrationPki, tlsTransport, type MigrationPki } from '../proxy/migrationTls.js';
import { systemClock } from '../util/clock.js';
import { LauncherPods, podsDirOf } from './launcherPods.js';
import { launcherScript } from './libvirtLaunchers.js';
import type { KubeObject } from './object.js';

/**
 * Real launcher pods: the kubelet stand-in starts a libvirtd per virt-launcher
 * pod (KubeVirt's layout under `<root>/<node>/pods/<podUID>`), each handler
 * finds a VM's launcher by pod UID, and migrations go through the handlers'
 * proxy over mutual TLS.
 */
export interface LauncherNodes {
  kind: 'launchers';
  /** Pods dirs (`<root>/<node>/pods`), launcher state and handler records. */
  root: string;
  nodes: number;
  domainTemplate?: (guest: GuestSpec) => string;
  guestMemory?: string;
  pollIntervalMs?: number;
  /** The migration CA and identities; default: a fresh dev CA. */
  pki?: MigrationPki;
}
import { seedScenario } from './scenarioSeed.js';
import type { Scenario } from './scenarioFile.js';

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
  /** How often the controller writes progress to VMIM status (the controller's default, 3 s, otherwise). */
  progressWriteIntervalMs?: number;
  metrics?: { controller: ControllerMetrics; handlers: HandlerMetrics };
  /**
   * What runs the guests: the simulator (default), or one libvirtd per node
   * (then `nodes` is the number of sockets, VMIs get the guests' memory and
   * their guests are booted in their nodes' daemons).
   */
  driver?: 'sim' | LibvirtNodes | LauncherNodes;
  /** Wraps each node's driver (tests inject faults at an exact moment this way). */
  wrapDriver?: (node: string, driver: HypervisorDriver) => HypervisorDriver;
  /** Ferry's admission webhook: on (default), off, or with these certificate settings. */
  webhook?: boolean | DevWebhookOptions;
  /**
   * Build the cluster from a bench scenario instead of the demo: its nodes (NIC
   * capacity as annotation, memory), its VMs on the sim driver with their
   * memory, dirty rate and working set, its config in the KubeVirt CR. `nodes`
   * and `vms` are then ignored; pass `config` from scenarioFerryConfig.
   */
  scenario?: Scenario;
}

export interface NodeAgent {
  /** Launcher mode: the kubelet's pods dir of this node. */
  podsDir?: string;
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
  /** Ferry's admission webhook (absent with `webhook: false`). */
  webhook: DevWebhook | undefined;
  controller: MigrationController | undefined;
  /** The maintenance-window runbooks, run beside the controller as `ferry controller` does. */
  runbooks: RunbookController | undefined;
  /** Launcher mode: the launcher daemons behind the pods, and the migration PKI. */
  launchers?: { pods: LauncherPods; pki: MigrationPki };
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
  const libvirt = opts.driver && opts.driver !== 'sim' && opts.driver.kind === 'libvirt' ? opts.driver : undefined;
  const launcherMode = opts.driver && opts.driver !== 'sim' && opts.driver.kind === 'launchers' ? opts.driver : undefined;
  const nodes = libvirt ? libvirtNodeNames(libvirt).length : launcherMode ? launcherMode.nodes : opts.nodes ?? 3;
  let storeRef: DevCluster['store'] | undefined;
  const pods = launcherMode
    ? new LauncherPods({
      root: launcherMode.root,
      launcherScript: launcherScript(),
      domainTemplate: launcherMode.domainTemplate ?? idleGuestXml,
      log,
      guestOf: (pod: KubeObject) => {
        const name = pod.metadata.annotations?.[Annotations.domain];
        const raw = name ? storeRef?.tryGet('virtualmachineinstances', name, pod.metadata.namespace) : undefined;
        const r = raw ? parseObject(VirtualMachineInstance, raw) : undefined;
        return r?.ok ? guestSpecFor(r.value) : undefined;
      },
    })
    : undefined;
  const pki = launcherMode ? launcherMode.pki ?? await devMigrationPki(systemClock) : undefined;
  const scenario = libvirt || launcherMode ? undefined : opts.scenario;
  const nodeCount = scenario ? scenario.nodes.length : nodes;
  const nodeNames = scenario ? scenario.nodes.map((n) => n.name) : Array.from({ length: nodeCount }, (_, i) => `node-${i + 1}`);
  const nicOf = new Map(scenario?.nodes.map((n) => [n.name, n.nic]));
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
    const cluster = await startDevCluster({ ...(opts.cluster ?? {}), ...(pods ? { podRuntime: pods } : {}) });
    cleanups.push(() => cluster.close());
    storeRef = cluster.store;
    const real = libvirt ?? launcherMode;
    if (scenario) seedScenario(cluster, scenario, { nicAnnotation: config.limits.nicCapacityAnnotation });
    else await seedDemo(cluster, { nodes, vms: opts.vms ?? 6, ...(real ? { memory: real.guestMemory ?? '64Mi', simAnnotations: false } : {}) });
    if (pods) {
      cleanups.push(() => pods.stopAll());
      // Seeded launcher pods are Running already: start what they stand for.
      for (const pod of cluster.store.list('pods').items) if (pods.handles(pod)) await pods.start(pod);
    }
    if (opts.kubeconfigPath) await cluster.writeKubeconfig(opts.kubeconfigPath);
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeConfigYaml());
    const kube = new KubeClient(kc);

    // Ferry's admission webhook, served over HTTPS and registered as deploy/ registers it:
    // launcher pod evictions reach it through the API server, as on a real cluster.
    let webhook: DevWebhook | undefined;
    if (opts.webhook !== false) {
      webhook = await startDevWebhook(cluster, kube, log.child({ component: 'webhook' }), opts.webhook === true || opts.webhook === undefined ? {} : opts.webhook);
      const w = webhook;
      cleanups.push(() => w.stop());
    }

    const agents = new Map<string, NodeAgent>();
    for (const node of nodeNames) {
      const records = libvirt ? await JobRecordStore.open(libvirtStateDir(libvirt, node))
        : launcherMode ? await JobRecordStore.open(join(launcherMode.root, node, 'handler')) : undefined;
      const nc = await connectBus({ servers: natsUrl, name: `ferry-handler-${node}`, log });
      const podsDir = launcherMode ? podsDirOf(launcherMode.root, node) : undefined;
      const baseDriver = libvirt
        ? await connectLibvirtNode(libvirt, node, log).catch(async (err: unknown) => { await closeBus(nc); throw err; })
        : launcherMode && podsDir && pki
          ? new LauncherDriver({
            node, podsDir, migrationAddress: '127.0.0.1', tls: tlsTransport(await pki.serverFor(node), pki.client), log: log.child({ node }),
            ...(launcherMode.pollIntervalMs ? { pollIntervalMs: launcherMode.pollIntervalMs } : {}),
          })
          : new SimDriver({ node, timeScale: opts.timeScale ?? 1, nicBandwidth: nicOf.get(node) ?? config.limits.defaultNicCapacity });
      const driver = opts.wrapDriver ? opts.wrapDriver(node, baseDriver) : baseDriver;
      const handler = startHandler({
        nc,
        node,
        driver,
        ...(records ? { records } : {}),
        log: log.child({ node }),
        progressIntervalMs: opts.progressIntervalMs ?? 250,
        ...(opts.metrics ? { metrics: opts.metrics.handlers } : {}),
      });
      agents.set(node, { node, driver, nc, handler, ...(podsDir ? { podsDir } : {}) });
      cleanups.push(async () => {
        await handler.stop();
        await driver.close();
        await closeBus(nc);
      });
    }

    // What the launchers do: every running VMI's guest runs in its node's hypervisor, so
    // what a handler reports (list-jobs domains) is the truth the controller's arbiter reads.
    // In launcher mode each launcher pod booted its own guest when it started.
    if (!launcherMode) await bootGuests(kube, new Map([...agents].map(([n, a]) => [n, a.driver])), log);

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
      webhook,
      ...(pods && pki ? { launchers: { pods, pki } } : {}),
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
        controller = new MigrationController({ kube, nc: controllerNc, log: log.child({ component: 'controller' }), config, ...(opts.metrics ? { metrics: opts.metrics.controller } : {}), ...(opts.progressWriteIntervalMs !== undefined ? { progressWriteIntervalMs: opts.progressWriteIntervalMs } : {}) });
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
