import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { connect } from 'nats';
import { parseObject } from '../api/meta.js';
import { VirtualMachineInstance } from '../api/vmi.js';
import { ensureResultsReplicas } from '../bus/resultsReplicas.js';
import { startNatsCluster, type NatsCluster } from '../bus/natsCluster.js';
import { domainName, guestMemoryBytes } from '../controller/guest.js';
import { SimJournal } from '../hypervisor/simJournal.js';
import { KubeClient, VMI_RESOURCE } from '../kube/client.js';
import { startDevWebhook } from './webhook.js';
import { seedDemo, startDevCluster, type DevCluster, type DevClusterOptions } from './index.js';
import { silentLogger } from '../util/log.js';
import { SupervisedProcess, type SupervisorEvent } from './supervisor.js';
import { SUPERVISOR_PID_ENV } from './parentWatch.js';

/**
 * `ferry dev --processes`: the dev environment with real process boundaries.
 * The API server and kubelet stand-in stay in this process; the controller
 * runs as two `ferry controller` processes electing a leader on a Lease, every
 * node's handler is its own `ferry handler` process (sim driver, guests kept in
 * a per-node journal so they outlive it), and NATS is a three-server JetStream
 * cluster with the results stream at three replicas. Every child is restarted
 * with back-off when it dies.
 */
export interface ProcessEnvironmentOptions {
  nodes?: number;
  vms?: number;
  controllers?: number;
  natsServers?: number;
  /** Where state, journals and logs go; a temporary directory (removed on stop) by default. */
  dir?: string;
  timeScale?: number;
  cluster?: DevClusterOptions;
  /** Leader election timings handed to the controllers, in seconds. */
  lease?: { durationS: number; renewDeadlineS: number; retryPeriodS: number };
  /** Ferry configuration file for the controllers. */
  configFile?: string;
  /**
   * Sits between every child and NATS: given the cluster's URLs, returns the
   * URLs the children use instead (the chaos campaign's fault proxy).
   */
  natsFront?: (cluster: NatsCluster) => Promise<string[]>;
  onProcessEvent?: (e: SupervisorEvent) => void;
  /** Extra environment for every child (FERRY_LOG_LEVEL, …). */
  env?: NodeJS.ProcessEnv;
}

export interface ProcessEnvironment {
  dir: string;
  cluster: DevCluster;
  kube: KubeClient;
  kubeconfigPath: string;
  nats: NatsCluster;
  /** What the children connect to (the cluster's URLs, or the front's). */
  natsUrls: string[];
  controllers: SupervisedProcess[];
  handlers: Map<string, SupervisedProcess>;
  /** Per node: the sim journal its handler keeps (the guests' ground truth). */
  journals: Map<string, string>;
  /** The controller process whose identity holds the Lease now, if any. */
  leader(): Promise<SupervisedProcess | undefined>;
  stop(): Promise<void>;
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FERRY_BIN = path.join(REPO_ROOT, 'bin', 'ferry.js');
export const LEASE_NAMESPACE = 'default';
export const LEASE_NAME = 'ferry-controller';

/** Creates the results stream with three replicas before any controller creates it with one. */
async function createReplicatedResultsStream(urls: readonly string[], replicas: number): Promise<void> {
  const nc = await connect({ servers: [...urls] });
  try {
    await ensureResultsReplicas(await nc.jetstreamManager(), replicas);
  } finally {
    await nc.close();
  }
}

/** One 'running' journal entry per VMI on its node: the guests the sim nodes start with. */
async function seedJournals(kube: KubeClient, journals: Map<string, string>): Promise<void> {
  const list = await kube.listCustom(VMI_RESOURCE);
  const now = Date.now();
  for (const raw of list.items) {
    const r = parseObject(VirtualMachineInstance, raw);
    if (!r.ok) continue;
    const node = r.value.status?.nodeName;
    const file = node ? journals.get(node) : undefined;
    if (!node || !file) continue;
    new SimJournal(file).append({ at: now, node, domain: domainName(r.value), state: 'running', memoryBytes: guestMemoryBytes(r.value) });
  }
}

export async function startProcessEnvironment(opts: ProcessEnvironmentOptions = {}): Promise<ProcessEnvironment> {
  const nodes = opts.nodes ?? 3;
  const ownDir = opts.dir === undefined;
  const dir = path.resolve(opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'ferry-processes-')));
  mkdirSync(dir, { recursive: true });
  const cleanups: Array<() => Promise<void>> = [];
  const undo = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    const nats = await startNatsCluster({ size: opts.natsServers ?? 3, dir: path.join(dir, 'nats') });
    cleanups.push(() => nats.stop());
    await nats.waitForJetStream();
    await createReplicatedResultsStream(nats.urlList, Math.min(3, nats.members.length));
    const natsUrls = opts.natsFront ? await opts.natsFront(nats) : [...nats.urlList];

    const cluster = await startDevCluster(opts.cluster ?? {});
    cleanups.push(() => cluster.close());
    await seedDemo(cluster, { nodes, vms: opts.vms ?? 6 });
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    await cluster.writeKubeconfig(kubeconfigPath);
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeConfigYaml());
    const kube = new KubeClient(kc);
    // Evictions reach Ferry's HTTPS admission webhook through the API server, registered as deploy/ does.
    const webhook = await startDevWebhook(cluster, kube, silentLogger);
    cleanups.push(() => webhook.stop());

    const journals = new Map<string, string>();
    for (let i = 1; i <= nodes; i++) journals.set(`node-${i}`, path.join(dir, 'sim', `node-${i}.jsonl`));
    for (const f of journals.values()) rmSync(f, { force: true });
    await seedJournals(kube, journals);

    const env = { ...process.env, FERRY_LOG_LEVEL: 'info', ...opts.env, [SUPERVISOR_PID_ENV]: String(process.pid) };
    const child = (name: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
      const p = new SupervisedProcess(
        { name, command: process.execPath, args: [FERRY_BIN, ...args], env: { ...env, ...extraEnv }, logFile: path.join(dir, 'logs', `${name}.log`) },
        opts.onProcessEvent,
      );
      cleanups.push(() => p.stop());
      return p;
    };
    const natsArg = natsUrls.join(',');
    const handlers = new Map<string, SupervisedProcess>();
    for (const [node, journal] of journals) {
      const p = child(`handler-${node}`, ['handler', '--node', node, '--nats', natsArg, '--driver', 'sim', '--time-scale', String(opts.timeScale ?? 1), '--sim-journal', journal, '--metrics-port', '0']);
      handlers.set(node, p);
    }
    const lease = opts.lease ?? { durationS: 15, renewDeadlineS: 10, retryPeriodS: 2 };
    const controllers: SupervisedProcess[] = [];
    for (let i = 1; i <= (opts.controllers ?? 2); i++) {
      const name = `controller-${i}`;
      controllers.push(child(name, [
        'controller', '--kubeconfig', kubeconfigPath, '--nats', natsArg, '--metrics-port', '0',
        '--lease-namespace', LEASE_NAMESPACE, '--lease-name', LEASE_NAME,
        '--leader-elect-lease-duration', String(lease.durationS),
        '--leader-elect-renew-deadline', String(lease.renewDeadlineS),
        '--leader-elect-retry-period', String(lease.retryPeriodS),
        ...(opts.configFile ? ['--config', opts.configFile] : []),
      ], { POD_NAME: name }));
    }
    for (const p of [...handlers.values(), ...controllers]) p.start();

    return {
      dir,
      cluster,
      kube,
      kubeconfigPath,
      nats,
      natsUrls,
      controllers,
      handlers,
      journals,
      async leader() {
        const holder = await leaseHolder(kube);
        return controllers.find((c) => holder?.startsWith(`${c.name}_`));
      },
      async stop() {
        await undo();
        if (ownDir) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await undo();
    if (ownDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export async function leaseHolder(kube: KubeClient): Promise<string | undefined> {
  try {
    const lease = await kube.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_NAME, namespace: LEASE_NAMESPACE });
    return lease.spec?.holderIdentity ?? undefined;
  } catch {
    return undefined;
  }
}

/** Writes a small README into the state directory so an operator knows what the files are. */
export function describeDir(env: ProcessEnvironment): void {
  writeFileSync(path.join(env.dir, 'README.txt'), [
    'ferry dev --processes state:',
    '  kubeconfig        the embedded API server',
    '  logs/<name>.log   each child process (controllers, handlers)',
    '  sim/<node>.jsonl  each sim node\'s guests, one line per change (the ground truth)',
    '  nats/nats-N/      each NATS server\'s JetStream store',
    '',
  ].join('\n'));
}
