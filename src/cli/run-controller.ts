/**
 * `cfgserver controller`: a replica with its HTTP API, until SIGTERM/SIGINT, when the leader
 * resigns so that another replica takes over at once.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { loadApiSecurity } from '../api/api-security.js';
import { createApp } from '../api/server.js';
import { createLogger } from '../log.js';
import { errorMessage } from '../model/errors.js';
import type { ControllerConfig } from '../controller/config.js';
import { Controller } from '../controller/controller.js';
import { AdminService } from '../service/admin-service.js';
import { listenOn } from '../util/listen.js';

function isLoopback(address: string): boolean {
  return /^(127\.|localhost:|\[?::1\]?:)/.test(address);
}

export async function runController(config: ControllerConfig): Promise<void> {
  const log = createLogger(config.logLevel);
  // Read before anything starts: a bad token or certificate file ends the process at once.
  const apiSecurity = loadApiSecurity({ tokenFile: config.apiTokenFile, authReads: config.apiAuthReads, readTokenFile: config.apiReadTokenFile, tlsCert: config.apiTlsCert, tlsKey: config.apiTlsKey });
  const controller = new Controller(config, log);
  let server: Server | undefined;
  if (config.listen) {
    // The API's cluster status reads offsets live through the controller's own connections.
    const admin = new AdminService(controller.etcd, controller.keys, controller.pool);
    const app = createApp({ admin, registry: controller.metrics.registry, controllerId: controller.id, isLeader: () => controller.isLeader(), security: apiSecurity });
    server = apiSecurity.tls ? createHttpsServer({ cert: apiSecurity.tls.cert, key: apiSecurity.tls.key }, app) : createServer(app);
    const address = await listenOn(server, config.listen, (err) => log.warn('HTTP API server error', { error: errorMessage(err) }));
    controller.setApiAddress(address, apiSecurity.tls !== undefined);
    controller.setApiClient({ token: apiSecurity.token, ca: apiSecurity.tls?.cert });
    // Said once, never the token itself.
    log.info('HTTP API listening', { address, tls: apiSecurity.tls !== undefined, token: apiSecurity.token !== null ? (apiSecurity.authReads ? 'every request' : 'changes') : 'none', readOnlyToken: apiSecurity.readToken !== null });
    if (apiSecurity.token === null && !isLoopback(address)) log.warn('the HTTP API has no token: anyone who reaches it can change clusters (docs/security.md)', { address });
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
