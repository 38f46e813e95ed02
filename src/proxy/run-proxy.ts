/**
 * The proxy process: start, then stop cleanly on SIGTERM/SIGINT (the lease is revoked, so the
 * proxy leaves the registry at once). With `--workers N` (N > 1) this process is a supervisor
 * and each of its N node:cluster workers runs a whole Proxy (see supervisor.ts).
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import { ValidationError, errorMessage } from '../model/errors.js';
import { Proxy, type ProxyOptions } from './proxy.js';
import { WORKER_ENV, WORKER_ID_ENV, runSupervisor, type ProxySupervisor, type WorkerStatus } from './supervisor.js';

export async function runProxy(options: ProxyOptions, created?: (proxy: Proxy) => void): Promise<Proxy> {
  const proxy = new Proxy(options);
  created?.(proxy);
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

/** `--workers`: a count, or `0`/`auto` for one per core the process may use. */
export function parseWorkers(value: string | number | undefined): number {
  if (value === undefined) return 1;
  if (value === 'auto' || value === 0 || value === '0') return availableParallelism();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new ValidationError(`--workers must be a whole number from 0 to 256 or "auto", not ${JSON.stringify(value)}`);
  return n;
}

/**
 * The `proxy` command. One worker: the plain single process, exactly as without the flag. More:
 * the supervisor here, and (when this file runs again in a forked worker) one Proxy per worker.
 */
export async function runProxyCommand(options: ProxyOptions, workers: number): Promise<Proxy | ProxySupervisor> {
  if (cluster.isWorker && process.env[WORKER_ENV] !== undefined) return runWorker(options, Number(process.env[WORKER_ENV]));
  if (workers <= 1) return runProxy(options);
  return runSupervisor(options, workers);
}

async function runWorker(options: ProxyOptions, k: number): Promise<Proxy> {
  // prom-client answers the supervisor's metrics requests from a worker only once an
  // AggregatorRegistry exists in it; made before the proxy starts, so that a scrape during a
  // worker's start gets an (empty) answer instead of waiting for the supervisor's 5 s timeout.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([]);
  const log = options.log.child({ worker: k });
  const id = `${process.env[WORKER_ID_ENV]}-w${k}`;
  let proxy: Proxy | null = null;
  let last = '';
  const report = (ready: boolean) => {
    const c = proxy?.metrics.counters;
    const status: WorkerStatus = { type: 'cfgserver:proxy-worker-status', id, ready, epoch: ready && c ? c.epoch : null, connections: c?.connections ?? 0 };
    const text = JSON.stringify(status);
    if (text === last || !process.connected) return;
    last = text;
    process.send!(status);
  };
  report(false);
  // The metrics port is the supervisor's; a worker serves clients only.
  const started = await runProxy({ ...options, id, metricsListen: undefined, log }, (p) => {
    proxy = p;
    AggregatorRegistry.setRegistries([p.metrics.registry]);
  });
  report(true);
  // Polled rather than hooked into Proxy: the epoch and connection count are plain numbers, and
  // a message goes out only when one of them changed.
  setInterval(() => report(true), 500).unref();
  return started;
}
