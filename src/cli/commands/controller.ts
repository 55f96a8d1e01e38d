import { randomUUID } from 'node:crypto';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { closeBus, connectBus } from '../../bus/connection.js';
import { inboxPrefix } from '../../bus/subjects.js';
import { ensureResultsReplicas } from '../../bus/resultsReplicas.js';
import { loadFerryConfig } from '../../config/ferryConfig.js';
import { MigrationController } from '../../controller/controller.js';
import { RunbookController } from '../../runbook/controller.js';
import { defaultIdentity, LeaderElector } from '../../kube/leaderElection.js';
import { ControllerMetrics, controllerReadiness, liveness, natsConnectionCheck, startHealthServer } from '../../metrics/index.js';
import { startTracing } from '../../tracing/setup.js';
import { createLogger } from '../../util/log.js';
import { systemClock } from '../../util/clock.js';
import { limitHeapGrowth } from '../../util/heapGrowth.js';
import { HANDLER_SERVER_SECRET, MIGRATION_CA_SECRET, MIGRATION_CLIENT_SECRET, runMigrationCerts } from '../../proxy/migrationCertSecrets.js';
import { kubeClientFor } from '../kubeconfig.js';
import { untilSignal } from '../shutdown.js';

export async function runController(o: {
  kubeconfig?: string;
  nats: string;
  config?: string;
  metricsPort: number;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  leaderElectLeaseDuration?: number;
  leaderElectRenewDeadline?: number;
  leaderElectRetryPeriod?: number;
  natsNkey?: string;
  natsCa?: string;
  resultsReplicas?: number;
  ownerLabel?: string;
  otlpEndpoint?: string;
  migrationCerts?: 'self-managed' | 'external';
}): Promise<void> {
  // The caches are most of what the controller holds: keep the heap near them (see heapGrowth.ts).
  limitHeapGrowth();
  const owner = o.ownerLabel === undefined ? undefined : parseOwnerLabel(o.ownerLabel);
  const log = createLogger({ name: 'ferry-controller' });
  const tracing = startTracing({ service: 'ferry-controller', otlpEndpoint: o.otlpEndpoint });
  if (tracing) log.info({ traces: tracing.describe }, 'exporting a trace per migration');
  const config = loadFerryConfig(o.config);
  const kube = kubeClientFor(o.kubeconfig);
  // Several servers of one cluster may be given, comma-separated; the client fails over between them.
  const nc = await connectBus({ servers: o.nats.split(',').map((s) => s.trim()).filter((s) => s !== ''), name: 'ferry-controller', log, inboxPrefix: inboxPrefix.controller(), ...(o.natsCa ? { caFile: o.natsCa } : {}), ...(o.natsNkey ? { nkeyFile: o.natsNkey } : {}) });
  // Before the controller's own ensure, which would create a stream of one replica.
  if (o.resultsReplicas !== undefined) {
    const replicas = await ensureResultsReplicas(await nc.jetstreamManager(), o.resultsReplicas);
    log.info({ replicas }, 'results stream replicated');
  }
  const metrics = new ControllerMetrics();
  // Filled in below when leader election is on; the controller reads it on every command and write.
  let elector: LeaderElector | undefined;
  const leadership = { isLeader: () => (elector ? elector.holdsLease() : true), epoch: () => elector?.epoch() ?? 0 };
  const controller = new MigrationController({ kube, nc, log, config, metrics, leadership, ...(owner ? { ownerLabel: owner } : {}) });
  const runbooks = new RunbookController({ kube, log: log.child({ component: 'runbooks' }), config });
  let migrationCerts: { stop(): void } | undefined;
  const startAll = async () => {
    await controller.start();
    await runbooks.start();
    // The leader keeps the handlers' migration certificates (CA, server, client) issued and rotated in Secrets.
    if ((o.migrationCerts ?? 'self-managed') === 'self-managed') {
      migrationCerts = runMigrationCerts({ kube, clock: systemClock, log: log.child({ component: 'migration-certs' }), namespace: o.leaseNamespace });
      log.info({ namespace: o.leaseNamespace, secrets: [MIGRATION_CA_SECRET, HANDLER_SERVER_SECRET, MIGRATION_CLIENT_SECRET] }, 'managing the migration proxy certificates');
    }
  };
  let leading = false;
  let stopping = false;
  const health = await startHealthServer({
    port: o.metricsPort,
    registries: [metrics.registry],
    checks: {
      healthz: liveness(),
      readyz: controllerReadiness({ nats: natsConnectionCheck(nc), cachesSynced: () => controller.ready(), isLeader: () => leading }),
    },
    log,
  });
  log.info({ url: `http://127.0.0.1:${health.port}/metrics` }, 'serving metrics and health');

  if (o.leaderElect) {
    elector = new LeaderElector({
      api: kube.kc.makeApiClient(CoordinationV1Api),
      namespace: o.leaseNamespace,
      name: o.leaseName,
      // The pod's name (downward API) tells operators, and ferry dev --processes, which replica leads.
      identity: process.env['POD_NAME'] ? `${process.env['POD_NAME']}_${randomUUID().slice(0, 8)}` : defaultIdentity(),
      ...(o.leaderElectLeaseDuration ? { leaseDurationMs: o.leaderElectLeaseDuration * 1000 } : {}),
      ...(o.leaderElectRenewDeadline ? { renewDeadlineMs: o.leaderElectRenewDeadline * 1000 } : {}),
      ...(o.leaderElectRetryPeriod ? { retryPeriodMs: o.leaderElectRetryPeriod * 1000 } : {}),
      log,
      onStartedLeading: () => {
        leading = true;
        metrics.setLeader(true);
        startAll().catch((err: unknown) => {
          log.error({ err: String(err) }, 'controller failed to start');
          process.exit(1);
        });
      },
      onStoppedLeading: ({ released }) => {
        leading = false;
        metrics.setLeader(false);
        // A replica that lost its lease restarts as a clean standby rather than act on stale state.
        if (!released && !stopping) {
          log.error('lost leadership; exiting so the replica restarts as a standby');
          process.exit(1);
        }
      },
    });
    elector.start();
    log.info({ lease: `${o.leaseNamespace}/${o.leaseName}` }, 'waiting for leadership');
  } else {
    leading = true;
    metrics.setLeader(true);
    await startAll();
  }
  log.info({ nats: o.nats }, 'controller running');
  await untilSignal(async (signal) => {
    stopping = true;
    log.info({ signal }, 'stopping controller');
    migrationCerts?.stop();
    await runbooks.stop();
    await controller.stop();
    await elector?.release();
    await health.close();
    await closeBus(nc);
    await tracing?.shutdown();
  });
}

function parseOwnerLabel(v: string): { key: string; value: string } {
  const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)$/.exec(v);
  if (!m) throw new Error(`--owner-label must be key=value (a Kubernetes label), got "${v}"`);
  return { key: m[1]!, value: m[2]! };
}
