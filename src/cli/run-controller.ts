/**
 * `cfgserver controller`: a replica with its HTTP API, until SIGTERM/SIGINT, when the leader
 * resigns so that another replica takes over at once. SIGHUP reads the API's token and
 * certificate files again (rotated without a restart).
 */
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { loadApiSecurity, reloadApiSecurity, type ApiSecurity, type ApiSecuritySettings } from '../api/api-security.js';
import { createApp } from '../api/server.js';
import { createLogger } from '../log.js';
import { errorMessage } from '../model/errors.js';
import type { ControllerConfig } from '../controller/config.js';
import { Controller } from '../controller/controller.js';
import { AdminService } from '../service/admin-service.js';
import { listenOn } from '../util/listen.js';

/** What the API asks for, for the logs: never a token itself. */
function securitySummary(security: ApiSecurity): Record<string, unknown> {
  return { tls: security.tls !== undefined, token: security.token !== null ? (security.authReads ? 'every request' : 'changes') : 'none', readOnlyToken: security.readToken !== null };
}

function isLoopback(address: string): boolean {
  return /^(127\.|localhost:|\[?::1\]?:)/.test(address);
}

export async function runController(config: ControllerConfig): Promise<void> {
  const log = createLogger(config.logLevel);
  // Read before anything starts: a bad token or certificate file ends the process at once.
  const apiSettings: ApiSecuritySettings = { tokenFile: config.apiTokenFile, authReads: config.apiAuthReads, readTokenFile: config.apiReadTokenFile, tlsCert: config.apiTlsCert, tlsKey: config.apiTlsKey };
  const apiSecurity = loadApiSecurity(apiSettings);
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
    log.info('HTTP API listening', { address, ...securitySummary(apiSecurity) });
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
  process.on('SIGHUP', () => {
    try {
      reloadApiSecurity(apiSecurity, apiSettings);
      // New TLS handshakes get the new certificate; connections already open keep theirs.
      if (apiSecurity.tls && server instanceof HttpsServer) server.setSecureContext({ cert: apiSecurity.tls.cert, key: apiSecurity.tls.key });
      controller.setApiClient({ token: apiSecurity.token, ca: apiSecurity.tls?.cert });
      log.info('SIGHUP: the API token and certificate files read again', securitySummary(apiSecurity));
    } catch (err) {
      log.error('SIGHUP: the API token and certificate files could not be read again: those in use are kept', { error: errorMessage(err) });
    }
  });
  await controller.start();
}
