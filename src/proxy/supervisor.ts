/**
 * `cfgserver proxy --workers N`: this process forks N node:cluster workers, each a whole Proxy
 * (its own route watch, its own registration `<id>-w<k>` under its own lease, its own backend
 * connections), all accepting on the one client port. The supervisor restarts a worker that dies,
 * stops them all on SIGTERM/SIGINT, and serves /metrics (every worker's, aggregated) and /healthz.
 *
 * Scheduling: SCHED_NONE. The primary opens the listening socket once and hands the same socket
 * to every worker; each worker accepts for itself and the kernel decides who gets a connection.
 * With SCHED_RR (Node's default on Linux) the primary accepts every connection and passes its
 * handle to a worker over IPC: exact round-robin, but every connection costs the primary an
 * accept plus a sendmsg, and the worker a recvmsg, and all accepts queue behind one event loop —
 * CPU taken from the workers on a small host, and a stall in the supervisor (a metrics scrape
 * aggregating every worker's registry) would delay new clients. Redis clients mostly keep pooled
 * connections, so what SCHED_NONE gives up (an even spread: whichever worker wakes first takes the
 * connection) shows in /healthz as connections per worker; NODE_CLUSTER_SCHED_POLICY=rr in the
 * environment picks round-robin instead, for hosts where the spread matters more.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { hostname } from 'node:os';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { errorMessage } from '../model/errors.js';
import { listenOn } from '../util/listen.js';
import type { ProxyOptions } from './proxy.js';

/** Environment of a forked worker: its number, and the id its registration id is built from. */
export const WORKER_ENV = 'CFGSERVER_PROXY_WORKER';
export const WORKER_ID_ENV = 'CFGSERVER_PROXY_BASE_ID';

/** What a worker tells the supervisor, whenever it changes. */
export interface WorkerStatus {
  type: 'cfgserver:proxy-worker-status';
  id: string;
  ready: boolean;
  epoch: number | null;
  connections: number;
}

interface Slot {
  k: number;
  worker: Worker | null;
  status: WorkerStatus | null;
  startedAt: number;
  /** Deaths in a row without a worker that lived long enough; sets the back-off. */
  failures: number;
  restarts: number;
  timer: NodeJS.Timeout | null;
}

export interface ProxySupervisor {
  readonly id: string;
  workers(): { k: number; pid: number | null; status: WorkerStatus | null; restarts: number }[];
  stop(): Promise<void>;
}

const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** A worker that lived this long is taken as healthy: its death restarts at the first back-off. */
const STABLE_MS = 30_000;
/** After SIGTERM, how long workers get to revoke their leases and exit before SIGKILL. */
const STOP_GRACE_MS = 10_000;

export async function runSupervisor(o: ProxyOptions, count: number): Promise<ProxySupervisor> {
  const log = o.log;
  const id = o.id ?? `${hostname()}-${process.pid}`;
  if (!process.env['NODE_CLUSTER_SCHED_POLICY']) cluster.schedulingPolicy = cluster.SCHED_NONE;
  const policy = cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none';
  const slots: Slot[] = Array.from({ length: count }, (_, k) => ({ k, worker: null, status: null, startedAt: 0, failures: 0, restarts: 0, timer: null }));
  let stopping = false;
  let everReady = false;
  let stopped: Promise<void> | null = null;

  const own = new Registry();
  new Gauge({ name: 'cfgserver_proxy_workers', help: 'Workers wanted', registers: [own], collect() { this.set(count); } });
  new Gauge({ name: 'cfgserver_proxy_workers_ready', help: 'Workers serving clients', registers: [own], collect() { this.set(slots.filter((s) => s.status?.ready).length); } });
  new Counter({ name: 'cfgserver_proxy_worker_restarts_total', help: 'Workers restarted after they died', registers: [own], collect() { this.reset(); this.inc(slots.reduce((n, s) => n + s.restarts, 0)); } });
  const aggregator = new AggregatorRegistry();

  const fork = (slot: Slot) => {
    slot.timer = null;
    slot.status = null;
    slot.startedAt = Date.now();
    const worker = cluster.fork({ [WORKER_ENV]: String(slot.k), [WORKER_ID_ENV]: id });
    slot.worker = worker;
    log.info('proxy worker started', { worker: slot.k, pid: worker.process.pid });
    worker.on('message', (m: WorkerStatus) => {
      if (m?.type !== 'cfgserver:proxy-worker-status') return;
      const becameReady = m.ready && !slot.status?.ready;
      slot.status = m;
      if (!becameReady) return;
      everReady = true;
      log.info('proxy worker ready', { worker: slot.k, pid: worker.process.pid, id: m.id, epoch: m.epoch });
      if (slots.every((s) => s.status?.ready)) log.info('proxy workers ready', { id, workers: count, schedulingPolicy: policy, metrics: metricsAddress });
    });
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker) return;
      slot.worker = null;
      slot.status = null;
      if (stopping) return;
      if (!everReady && code !== 0) {
        // Every worker fails the same way at start (port taken, bad option): say so and stop,
        // rather than restart forever.
        log.error('proxy worker failed before any worker was ready; stopping', { worker: slot.k, code, signal });
        void stop('worker failed at start').then(() => process.exit(1));
        return;
      }
      if (Date.now() - slot.startedAt > STABLE_MS) slot.failures = 0;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** slot.failures);
      slot.failures++;
      slot.restarts++;
      log.warn('proxy worker exited; restarting it', { worker: slot.k, pid: worker.process.pid, code, signal, restartInMs: delay });
      slot.timer = setTimeout(() => fork(slot), delay);
    });
  };

  const stop = (reason: string): Promise<void> => {
    if (stopped) return stopped;
    stopping = true;
    log.info('proxy supervisor stopping workers', { reason });
    stopped = (async () => {
      const exits: Promise<void>[] = [];
      for (const slot of slots) {
        if (slot.timer) clearTimeout(slot.timer);
        const w = slot.worker;
        if (!w || w.isDead()) continue;
        exits.push(new Promise((resolve) => w.once('exit', () => resolve())));
        // SIGTERM rather than worker.kill(): the worker's own handler then revokes its lease.
        w.process.kill('SIGTERM');
      }
      const grace = setTimeout(() => {
        for (const slot of slots) if (slot.worker && !slot.worker.isDead()) slot.worker.process.kill('SIGKILL');
      }, STOP_GRACE_MS);
      await Promise.all(exits);
      clearTimeout(grace);
      httpServer?.close();
    })();
    return stopped;
  };

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => void stop(signal).then(() => process.exit(0)));
  }

  const workersView = () =>
    slots.map((s) => ({ k: s.k, pid: s.worker?.process.pid ?? null, status: s.status, restarts: s.restarts }));

  let httpServer: HttpServer | null = null;
  let metricsAddress: string | null = null;
  if (o.metricsListen) {
    httpServer = createHttpServer((req, res) => {
      if (req.url === '/metrics') {
        aggregator
          .clusterMetrics()
          .then(async (workersText) => {
            res.writeHead(200, { 'content-type': aggregator.contentType });
            res.end(workersText + (await own.metrics()));
          })
          .catch((err) => {
            res.writeHead(503, { 'content-type': 'text/plain' });
            res.end(`metrics of the workers unavailable: ${errorMessage(err)}\n`);
          });
      } else if (req.url === '/healthz') {
        const ready = slots.filter((s) => s.status?.ready);
        res.writeHead(ready.length > 0 ? 200 : 503, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            ok: ready.length > 0,
            id,
            workers: count,
            ready: ready.length,
            epochs: ready.map((s) => s.status!.epoch),
            list: slots.map((s) => ({ worker: s.k, id: s.status?.id ?? `${id}-w${s.k}`, pid: s.worker?.process.pid ?? null, ready: s.status?.ready ?? false, epoch: s.status?.epoch ?? null, connections: s.status?.connections ?? 0, restarts: s.restarts })),
          }),
        );
      } else {
        res.writeHead(404).end();
      }
    });
    metricsAddress = await listenOn(httpServer, o.metricsListen, (err) => log.warn('metrics server error', { error: errorMessage(err) }));
  }

  log.info('proxy supervisor starting workers', { id, workers: count, schedulingPolicy: policy, listen: o.listen, metrics: metricsAddress });
  for (const slot of slots) fork(slot);
  return { id, workers: workersView, stop: () => stop('stop()') };
}
