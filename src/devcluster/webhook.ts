import type { KubeClient } from '../kube/client.js';
import { isConflict } from '../kube/client.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { startSelfManagedServing, type ServingCertificates } from '../webhook/certificates.js';
import { WebhookMetrics } from '../webhook/metrics.js';
import { registerWebhook, WEBHOOK_NAMESPACE, WEBHOOK_SERVICE, WEBHOOK_SERVICE_PORT } from '../webhook/registration.js';
import { startWebhookServer, type WebhookServer } from '../webhook/server.js';
import type { DevCluster } from './cluster.js';

/**
 * Ferry's admission webhook inside `ferry dev`, set up as deploy/ sets it up
 * on a real cluster: self-managed certificates in Secrets of ferry-system, the
 * Service ferry-webhook and the ValidatingWebhookConfiguration ferry-admission
 * with the CA bundle injected. The only dev-specific step is routing the
 * Service to the process's port (there is no pod network).
 */

export interface DevWebhookOptions {
  clock?: Clock;
  caValidityMs?: number;
  certValidityMs?: number;
  checkEveryMs?: number;
}

export interface DevWebhook {
  metrics: WebhookMetrics;
  certificates: ServingCertificates;
  /** The server, while running. */
  server(): WebhookServer | undefined;
  /** Stops serving (the configuration stays: evictions then fail as on a cluster whose webhook pods are down). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDevWebhook(cluster: DevCluster, kube: KubeClient, log: Logger, o: DevWebhookOptions = {}): Promise<DevWebhook> {
  try {
    await kube.core.createNamespace({ body: { metadata: { name: WEBHOOK_NAMESPACE } } });
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  const certificates = await startSelfManagedServing({
    kube,
    clock: o.clock ?? systemClock,
    log,
    namespace: WEBHOOK_NAMESPACE,
    ...(o.caValidityMs ? { caValidityMs: o.caValidityMs } : {}),
    ...(o.certValidityMs ? { certValidityMs: o.certValidityMs } : {}),
    ...(o.checkEveryMs ? { checkEveryMs: o.checkEveryMs } : {}),
  });
  const metrics = new WebhookMetrics();
  let server: WebhookServer | undefined;
  let unroute: (() => void) | undefined;
  const resume = async () => {
    if (server) return;
    server = await startWebhookServer({ kube, material: certificates.material, log, port: 0, host: '127.0.0.1', metrics });
    unroute = cluster.routeService(WEBHOOK_NAMESPACE, WEBHOOK_SERVICE, WEBHOOK_SERVICE_PORT, { host: '127.0.0.1', port: server.port });
  };
  const pause = async () => {
    unroute?.();
    unroute = undefined;
    await server?.close();
    server = undefined;
  };
  try {
    await resume();
    await registerWebhook(kube, certificates.current().caBundle);
  } catch (err) {
    certificates.stop();
    await pause();
    throw err;
  }
  return {
    metrics,
    certificates,
    server: () => server,
    pause,
    resume,
    async stop() {
      certificates.stop();
      await pause();
    },
  };
}
