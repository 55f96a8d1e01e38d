import { closeBus, connectBus } from '../../bus/connection.js';
import { startHandler } from '../../handler/handler.js';
import { SimDriver } from '../../hypervisor/sim.js';
import { HandlerMetrics, handlerReadiness, liveness, natsConnectionCheck, startHealthServer } from '../../metrics/index.js';
import { createLogger } from '../../util/log.js';
import { untilSignal } from '../shutdown.js';

export async function runHandler(o: { node: string; nats: string; driver: 'sim'; timeScale: number; metricsPort: number; natsNkey?: string }): Promise<void> {
  const log = createLogger({ name: 'ferry-handler' }).child({ node: o.node });
  const nc = await connectBus({ servers: o.nats, name: `ferry-handler-${o.node}`, log, ...(o.natsNkey ? { nkeyFile: o.natsNkey } : {}) });
  const driver = new SimDriver({ node: o.node, timeScale: o.timeScale });
  const metrics = new HandlerMetrics();
  const handler = startHandler({ nc, node: o.node, driver, log, metrics });
  const health = await startHealthServer({
    port: o.metricsPort,
    registries: [metrics.registry],
    checks: { healthz: liveness(), readyz: handlerReadiness({ nats: natsConnectionCheck(nc) }) },
    log,
  });
  log.info({ driver: o.driver, nats: o.nats, metrics: `http://127.0.0.1:${health.port}/metrics` }, 'handler serving');
  await untilSignal(async (signal) => {
    log.info({ signal }, 'stopping handler');
    await handler.stop();
    await driver.close();
    await health.close();
    await closeBus(nc);
  });
}
