import { pass, liveness, startHealthServer } from '../../metrics/index.js';
import { systemClock } from '../../util/clock.js';
import { createLogger } from '../../util/log.js';
import { startFileServing, startSelfManagedServing } from '../../webhook/certificates.js';
import { WebhookMetrics } from '../../webhook/metrics.js';
import { startWebhookServer } from '../../webhook/server.js';
import { kubeClientFor } from '../kubeconfig.js';
import { untilSignal } from '../shutdown.js';

export interface WebhookCommandOptions {
  kubeconfig?: string;
  port: number;
  metricsPort: number;
  namespace: string;
  /** Serve the certificate in this directory (tls.crt, tls.key) instead of managing one in Secrets. */
  certDir?: string;
}

export async function runWebhook(o: WebhookCommandOptions): Promise<void> {
  const log = createLogger({ name: 'ferry-webhook' });
  const kube = kubeClientFor(o.kubeconfig);
  const serving = o.certDir
    ? await startFileServing(o.certDir, log)
    : await startSelfManagedServing({ kube, clock: systemClock, log, namespace: o.namespace });
  const metrics = new WebhookMetrics();
  const server = await startWebhookServer({ kube, material: serving.material, log, port: o.port, metrics });
  const health = await startHealthServer({
    port: o.metricsPort,
    registries: [metrics.registry],
    checks: { healthz: liveness(), readyz: { serving: () => pass(`HTTPS on ${server.port}`) } },
    log,
  });
  log.info({ port: server.port, certificates: o.certDir ? `files in ${o.certDir}` : `self-managed in Secrets of ${o.namespace}`, metrics: `http://127.0.0.1:${health.port}/metrics` }, 'admission webhook serving');
  await untilSignal(async (signal) => {
    log.info({ signal }, 'stopping admission webhook');
    serving.stop();
    await server.close();
    await health.close();
  });
}
