import { closeBus, connectBus } from '../../bus/connection.js';
import { loadFerryConfig } from '../../config/ferryConfig.js';
import { MigrationController } from '../../controller/controller.js';
import { createLogger } from '../../util/log.js';
import { kubeClientFor } from '../kubeconfig.js';
import { untilSignal } from '../shutdown.js';

export async function runController(o: { kubeconfig?: string; nats: string; config?: string }): Promise<void> {
  const log = createLogger({ name: 'ferry-controller' });
  const config = loadFerryConfig(o.config);
  const kube = kubeClientFor(o.kubeconfig);
  const nc = await connectBus({ servers: o.nats, name: 'ferry-controller', log });
  const controller = new MigrationController({ kube, nc, log, config });
  await controller.start();
  log.info({ nats: o.nats }, 'controller running');
  await untilSignal(async (signal) => {
    log.info({ signal }, 'stopping controller');
    await controller.stop();
    await closeBus(nc);
  });
}
