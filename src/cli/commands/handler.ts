import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { closeBus, connectBus } from '../../bus/connection.js';
import { inboxPrefix } from '../../bus/subjects.js';
import { startHandler } from '../../handler/handler.js';
import { JobRecordStore } from '../../handler/jobRecords.js';
import type { HypervisorDriver } from '../../hypervisor/driver.js';
import { LibvirtDriver } from '../../hypervisor/libvirt/driver.js';
import { LauncherDriver } from '../../launcher/launcherDriver.js';
import { watchedTlsMaterial } from '../../proxy/certFiles.js';
import { tlsTransport } from '../../proxy/migrationTls.js';
import type { Transport } from '../../proxy/transport.js';
import { SimDriver } from '../../hypervisor/sim.js';
import { incomingIn, SimJournal } from '../../hypervisor/simJournal.js';
import { HandlerMetrics, handlerReadiness, liveness, natsConnectionCheck, startHealthServer } from '../../metrics/index.js';
import { startTracing } from '../../tracing/setup.js';
import { createLogger, type Logger } from '../../util/log.js';
import { untilSignal } from '../shutdown.js';

export interface HandlerCommandOptions {
  node: string;
  nats: string;
  driver: 'sim' | 'libvirt';
  timeScale: number;
  metricsPort: number;
  natsNkey?: string;
  libvirtUri?: string;
  libvirtSocket?: string;
  stateDir?: string;
  podsDir?: string;
  migrationAddress?: string;
  migrationServerCerts?: string;
  migrationClientCerts?: string;
  simJournal?: string;
  otlpEndpoint?: string;
  /** libvirt: outgoing migrations at once on this node (default max_client_requests − 2). */
  libvirtMaxOutbound?: number;
  natsCa?: string;
}

/** libvirtd's system socket, where a handler on a KubeVirt-style node finds it unless told otherwise. */
export const DEFAULT_LIBVIRT_SOCKET = '/run/libvirt/libvirt-sock';
export const DEFAULT_STATE_ROOT = '/var/lib/ferry';

/** The libvirt driver, once its daemon has answered: a wrong socket is reported here, not at the first migration. */
async function libvirtDriver(o: HandlerCommandOptions, log: Logger): Promise<LibvirtDriver> {
  if (o.libvirtUri && o.libvirtSocket) throw new Error('give --libvirt-uri or --libvirt-socket, not both');
  const where = o.libvirtUri ? { uri: o.libvirtUri } : { socketPath: o.libvirtSocket ?? DEFAULT_LIBVIRT_SOCKET };
  const driver = new LibvirtDriver({ ...where, node: o.node, log, ...(o.libvirtMaxOutbound !== undefined ? { maxOutboundMigrations: o.libvirtMaxOutbound } : {}) });
  try {
    await driver.listDomains();
  } catch (err) {
    await driver.close();
    throw new Error(`${(err as Error).message} (is libvirtd running there? point the handler at it with --libvirt-socket PATH or --libvirt-uri URI)`, { cause: err });
  }
  return driver;
}

/**
 * KubeVirt's layout: a libvirt per VM in its launcher pod, found by pod UID
 * under --pods-dir, migrations carried by this handler's proxy.
 */
async function launcherDriver(o: HandlerCommandOptions & { podsDir: string }, log: Logger, stops: Array<() => void>): Promise<LauncherDriver> {
  if (o.libvirtUri || o.libvirtSocket) throw new Error('--pods-dir finds each VM\'s own libvirt; it cannot be combined with --libvirt-socket or --libvirt-uri');
  const address = o.migrationAddress ?? process.env['POD_IP'];
  if (!address) throw new Error('--pods-dir needs --migration-address (or POD_IP): the address other handlers reach this one\'s migration proxy on');
  let tls: Transport | undefined;
  if (o.migrationServerCerts || o.migrationClientCerts) {
    if (!o.migrationServerCerts || !o.migrationClientCerts) throw new Error('give both --migration-server-certs and --migration-client-certs');
    const server = await watchedTlsMaterial(o.migrationServerCerts, log);
    const client = await watchedTlsMaterial(o.migrationClientCerts, log);
    stops.push(server.stop, client.stop);
    tls = tlsTransport(server.material, client.material);
  } else {
    log.warn({}, 'no migration certificates: only migrations with migrations.disableTLS can run');
  }
  return new LauncherDriver({ node: o.node, podsDir: o.podsDir, migrationAddress: address, tls, log });
}

export async function runHandler(o: HandlerCommandOptions): Promise<void> {
  const log = createLogger({ name: 'ferry-handler' }).child({ node: o.node });
  const tracing = startTracing({ service: 'ferry-handler', otlpEndpoint: o.otlpEndpoint, attributes: { 'k8s.node.name': o.node } });
  if (tracing) log.info({ traces: tracing.describe }, 'exporting spans of handler commands and hypervisor jobs');
  if (o.driver !== 'libvirt' && (o.libvirtUri || o.libvirtSocket || o.stateDir || o.podsDir || o.libvirtMaxOutbound !== undefined)) {
    throw new Error('--libvirt-uri, --libvirt-socket, --pods-dir, --state-dir and --libvirt-max-outbound only apply with --driver libvirt');
  }
  if (!o.podsDir && (o.migrationAddress || o.migrationServerCerts || o.migrationClientCerts)) {
    throw new Error('--migration-address and --migration-*-certs only apply with --pods-dir (the handlers\' migration proxy)');
  }
  const stops: Array<() => void> = [];
  if (o.driver === 'libvirt' && o.simJournal) throw new Error('--sim-journal only applies with --driver sim');
  const driver: HypervisorDriver = o.driver !== 'libvirt' ? new SimDriver({ node: o.node, timeScale: o.timeScale, ...(o.simJournal ? simJournalOptions(o.simJournal) : {}) })
    : o.podsDir ? await launcherDriver({ ...o, podsDir: o.podsDir }, log, stops) : await libvirtDriver(o, log);
  // Only libvirt's migrations outlive this process; they are recorded so a restart can take them over.
  const records = o.driver === 'libvirt' ? await JobRecordStore.open(o.stateDir ?? join(DEFAULT_STATE_ROOT, `handler-${o.node}`)).catch(async (err: unknown) => {
    await driver.close();
    throw err;
  }) : undefined;
  // Several servers of one cluster may be given, comma-separated; the client fails over between them.
  const nc = await connectBus({ servers: o.nats.split(',').map((s) => s.trim()).filter((s) => s !== ''), name: `ferry-handler-${o.node}`, log, inboxPrefix: inboxPrefix.handler(o.node), ...(o.natsCa ? { caFile: o.natsCa } : {}), ...(o.natsNkey ? { nkeyFile: o.natsNkey } : {}) }).catch(async (err: unknown) => {
    await driver.close();
    throw err;
  });
  const metrics = new HandlerMetrics();
  const handler = startHandler({ nc, node: o.node, driver, log, metrics, ...(records ? { records } : {}) });
  const health = await startHealthServer({
    port: o.metricsPort,
    registries: [metrics.registry],
    checks: { healthz: liveness(), readyz: handlerReadiness({ nats: natsConnectionCheck(nc) }) },
    log,
  });
  log.info({
    driver: o.driver,
    nats: o.nats,
    metrics: `http://127.0.0.1:${health.port}/metrics`,
    ...(driver instanceof LibvirtDriver ? { libvirt: driver.uri, stateDir: records?.dir } : {}),
    ...(driver instanceof LauncherDriver ? { podsDir: o.podsDir, migrationAddress: o.migrationAddress ?? process.env['POD_IP'], stateDir: records?.dir } : {}),
  }, 'handler serving');
  await untilSignal(async (signal) => {
    log.info({ signal }, 'stopping handler');
    await handler.stop();
    for (const stop of stops) stop();
    await driver.close();
    await health.close();
    await closeBus(nc);
    await tracing?.shutdown();
  });
}

/**
 * A journaled sim node: its guests outlive the process, and (the journals of a
 * dev cluster's nodes lying side by side as <node>.jsonl) a source reads its
 * target's journal to know whether anything listens there (chaos seed 1000: a
 * sim source "completed" into a cancelled target, which no real one can).
 */
function simJournalOptions(file: string): { journal: SimJournal; targetListening: (node: string, domain: string, migrationId: string) => boolean } {
  return {
    journal: new SimJournal(file),
    targetListening: (node, domain, migrationId) => {
      const peer = join(dirname(file), `${node}.jsonl`);
      // No journal of that node beside ours: nothing to go by, so assume it listens (as without journals).
      return !existsSync(peer) || incomingIn(peer, domain, migrationId);
    },
  };
}
