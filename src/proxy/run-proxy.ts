/**
 * The proxy process: start, then stop cleanly on SIGTERM/SIGINT (the lease is revoked, so the
 * proxy leaves the registry at once).
 */
import { errorMessage } from '../model/errors.js';
import { Proxy, type ProxyOptions } from './proxy.js';

export async function runProxy(options: ProxyOptions): Promise<Proxy> {
  const proxy = new Proxy(options);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    options.log.info('proxy shutting down', { signal });
    await proxy.stop().catch((err) => options.log.error('error while stopping', { error: errorMessage(err) }));
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  await proxy.start();
  return proxy;
}
