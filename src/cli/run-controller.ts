/**
 * `cfgserver controller`: a replica with its HTTP API, until SIGTERM/SIGINT, when the leader
 * resigns so that another replica takes over at once.
 */
import { createServer, type Server } from 'node:http';
import { createApp } from '../api/server.js';
import { createLogger } from '../log.js';
import { errorMessage } from '../model/errors.js';
import type { ControllerConfig } from '../controller/config.js';
import { Controller } from '../controller/controller.js';
import { AdminService } from '../service/admin-service.js';
import { listenOn } from '../util/listen.js';

export async function runController(config: ControllerConfig): Promise<void> {
  const log = createLogger(config.logLevel);
  const controller = new Controller(config, log);
  let server: Server | undefined;
  if (config.listen) {
    // The API's cluster status reads offsets live through the controller's own connections.
    const admin = new AdminService(controller.etcd, controller.keys, controller.pool);
    const app = createApp({ admin, registry: controller.metrics.registry, controllerId: controller.id, isLeader: () => controller.isLeader() });
    server = createServer(app);
    const address = await listenOn(server, config.listen, (err) => log.warn('HTTP API server error', { error: errorMessage(err) }));
    controller.setApiAddress(address);
    log.info('HTTP API listening', { address });
  }
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    server?.close();
    server?.closeAllConnections();
    await controller.stop().catch((err) => log.error('error while stopping', { error: errorMessage(err) }));
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  await controller.start();
}
