import { join } from 'node:path';
import { closeBus, connectBus } from '../../bus/connection.js';
import { inboxPrefix } from '../../bus/subjects.js';
import { startHandler } from '../../handler/handler.js';
import { JobRecordStore } from '../../handler/jobRecords.js';
import type { HypervisorDriver } from '../../hypervisor/driver.js';
import { LibvirtDriver } from '../../hypervisor/libvirt/driver.js';
import { SimDriver } from '../../hypervisor/sim.js';
import { SimJournal } from '../../hypervisor/simJournal.js';
import { HandlerMetrics, handlerReadiness, liveness, natsConnectionCheck, startHealthServer } from '../../metrics/index.js';
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
  simJournal?: string;
  natsCa?: string;
}

/** libvirtd's system socket, where a handler on a KubeVirt-style node finds it unless told otherwise. */
export const DEFAULT_LIBVIRT_SOCKET = '/run/libvirt/libvirt-sock';
export const DEFAULT_STATE_ROOT = '/var/lib/ferry';

/** The libvirt driver, once its daemon has answered: a wrong socket is reported here, not at the first migration. */
async function libvirtDriver(o: HandlerCommandOptions, log: Logger): Promise<LibvirtDriver> {
  if (o.libvirtUri && o.libvirtSocket) throw new Error('give --libvirt-uri or --libvirt-socket, not both');
  const where = o.libvirtUri ? { uri: o.libvirtUri } : { socketPath: o.libvirtSocket ?? DEFAULT_LIBVIRT_SOCKET };
  const driver = new LibvirtDriver({ ...where, node: o.node, log });
  try {
    await driver.listDomains();
  } catch (err) {
    await driver.close();
    throw new Error(`${(err as Error).message} (is libvirtd running there? point the handler at it with --libvirt-socket PATH or --libvirt-uri URI)`, { cause: err });
  }
  return driver;
}

export async function runHandler(o: HandlerCommandOptions): Promise<void> {
  const log = createLogger({ name: 'ferry-handler' }).child({ node: o.node });
  if (o.driver !== 'libvirt' && (o.libvirtUri || o.libvirtSocket || o.stateDir)) {
    throw new Error('--libvirt-uri, --libvirt-socket and --state-dir only apply with --driver libvirt');
  }
  if (o.driver === 'libvirt' && o.simJournal) throw new Error('--sim-journal only applies with --driver sim');
  const driver: HypervisorDriver = o.driver === 'libvirt' ? await libvirtDriver(o, log) : new SimDriver({ node: o.node, timeScale: o.timeScale, ...(o.simJournal ? { journal: new SimJournal(o.simJournal) } : {}) });
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
  }, 'handler serving');
  await untilSignal(async (signal) => {
    log.info({ signal }, 'stopping handler');
    await handler.stop();
    await driver.close();
    await health.close();
    await closeBus(nc);
  });
}
