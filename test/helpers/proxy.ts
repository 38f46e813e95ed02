/**
 * An in-process proxy for tests (stopped after the file), and a client to talk to it.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { Proxy, type ProxyOptions } from '../../src/proxy/proxy.js';

export function useProxies() {
  const proxies: Proxy[] = [];
  const clients: Redis[] = [];
  afterAll(async () => {
    clients.forEach((c) => c.disconnect());
    for (const p of proxies) await p.stop();
  });
  const start = async (etcd: string, prefix: string, cluster: string, options: Partial<ProxyOptions> = {}) => {
    const proxy = new Proxy({
      // Distinct ids: two proxies of one test process would otherwise share one registration.
      id: `test-proxy-${process.pid}-${proxies.length}`,
      cluster,
      listen: '127.0.0.1:0',
      etcd,
      prefix,
      password: null,
      poolSize: 2,
      maxInFlight: 1000,
      backendTimeoutMs: 5000,
      leaseTtlSeconds: 2,
      log: silentLogger(),
      ...options,
    });
    proxies.push(proxy);
    await proxy.start();
    return proxy;
  };
  const client = (proxy: Proxy, options: RedisOptions = {}) => {
    const [host, port] = proxy.listenAddress.split(':');
    const c = new Redis({ host, port: Number(port), maxRetriesPerRequest: 0, ...options });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  /** The proxies started so far (e.g. to read each one's /metrics). */
  const started = () => [...proxies];
  return { start, client, started };
}
