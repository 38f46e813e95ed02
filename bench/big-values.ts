/**
 * bench/big-values — SET and GET of big values (1, 16 and 64 MiB by default) directly to Redis
 * and through one cfgserver proxy process, and the longest PING round trip another client saw
 * meanwhile (the proxy must not stall its other clients while a big value goes through).
 *
 *   node --import tsx bench/big-values.ts [--sizes 1,16,64] [--rounds R] [--entry path/to/cfgserver.ts]
 *
 * Needs etcd and redis-server. The proxy runs from the TypeScript sources through tsx (no build
 * needed); --entry runs another cfgserver entry point, e.g. an older checkout's, to compare.
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ManagedProcess, freePort, packageRoot, waitFor } from '../src/playground/processes.js';
import { argNumber, argText, median, withCluster } from './common.js';

const SIZES_MIB = argText('sizes', '1,16,64').split(',').map(Number);
const ROUNDS = argNumber('rounds', 3);
const ENTRY = argText('entry', join(packageRoot(), 'src', 'cli', 'cfgserver.ts'));
/** The pinger's bounds: it stops at whichever comes first. */
const PING_MAX_COUNT = 1_000_000;
const PING_MAX_MS = 120_000;

/**
 * The other client: PING, wait for +PONG, again, on its own thread (so that the bench's own work
 * on the big value cannot delay it), until told to stop or a bound is reached.
 */
const PINGER = `
const { parentPort, workerData } = require('node:worker_threads');
const { connect } = require('node:net');
const { performance } = require('node:perf_hooks');
const s = connect({ host: '127.0.0.1', port: workerData.port }, () => { s.setNoDelay(true); parentPort.postMessage('ready'); });
let max = 0, count = 0, sentAt = 0, stopped = false, pending = '', started = 0;
const ping = () => { sentAt = performance.now(); s.write('*1\\r\\n$4\\r\\nPING\\r\\n'); };
s.on('data', (d) => {
  pending += d.toString('latin1');
  if (pending.length < 7) return;
  pending = pending.slice(7);
  const rtt = performance.now() - sentAt;
  if (rtt > max) max = rtt;
  count++;
  if (stopped || count >= workerData.maxCount || performance.now() - started > workerData.maxMs) finish();
  else ping();
});
let finished = false;
const finish = () => { if (finished) return; finished = true; parentPort.postMessage({ max, count }); };
parentPort.on('message', (m) => {
  if (m === 'start') { max = 0; count = 0; stopped = false; finished = false; started = performance.now(); ping(); }
  if (m === 'stop') { stopped = true; }
});
`;

class Pinger {
  private readonly worker: Worker;
  private constructor(port: number) {
    this.worker = new Worker(PINGER, { eval: true, workerData: { port, maxCount: PING_MAX_COUNT, maxMs: PING_MAX_MS } });
  }
  static async open(port: number): Promise<Pinger> {
    const p = new Pinger(port);
    await new Promise((resolve) => p.worker.once('message', resolve));
    return p;
  }
  /** Runs `work` while pinging; the longest round trip seen (ms) and how many pings. */
  async during<T>(work: () => Promise<T>): Promise<{ result: T; maxPingMs: number; pings: number }> {
    const done = new Promise<{ max: number; count: number }>((resolve) => this.worker.once('message', resolve));
    this.worker.postMessage('start');
    await new Promise((r) => setTimeout(r, 20)); // a few pings before, so a stall at the start counts
    const result = await work();
    this.worker.postMessage('stop');
    const { max, count } = await done;
    return { result, maxPingMs: max, pings: count };
  }
  close(): Promise<number> {
    return this.worker.terminate();
  }
}

interface Sample {
  seconds: number;
  maxPingMs: number;
}

async function main(): Promise<void> {
  await withCluster('big', 1, async ({ dir, etcd, shards: [shard], stops }) => {

    const proxyPort = await freePort();
    const proxy = new ManagedProcess('cfgserver proxy', process.execPath, ['--import', 'tsx', ENTRY, 'proxy', '--cluster', 'big', '--listen', `127.0.0.1:${proxyPort}`, '--etcd', etcd.endpoint, '--log-level', 'warn'], join(dir, 'proxy.log'));
    stops.push(() => proxy.stop());
    const targets = [
      { name: 'direct', port: shard.port },
      { name: 'proxy', port: proxyPort },
    ];
    const clients = new Map<string, Redis>();
    const pingers = new Map<string, Pinger>();
    for (const t of targets) {
      const c = new Redis({ host: '127.0.0.1', port: t.port, maxRetriesPerRequest: 0, enableReadyCheck: false });
      c.on('error', () => undefined); // refused until the proxy listens: waitFor retries
      stops.push(async () => c.disconnect());
      await waitFor(`${t.name} on ${t.port}`, async () => (await c.ping()) === 'PONG', 20_000);
      clients.set(t.name, c);
      const p = await Pinger.open(t.port);
      stops.push(() => p.close());
      pingers.set(t.name, p);
    }

    const results = new Map<string, Sample[]>();
    const record = (key: string, s: Sample) => results.set(key, [...(results.get(key) ?? []), s]);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mib of SIZES_MIB) {
        const value = randomBytes(mib * 1024 * 1024);
        for (const t of targets) {
          const c = clients.get(t.name)!;
          const pinger = pingers.get(t.name)!;
          const key = `big:${mib}`;
          await c.del(key);
          const set = await pinger.during(async () => {
            const t0 = performance.now();
            const r = await c.set(key, value);
            if (r !== 'OK') throw new Error(`SET answered ${r}`);
            return (performance.now() - t0) / 1000;
          });
          const get = await pinger.during(async () => {
            const t0 = performance.now();
            const r = await c.getBuffer(key);
            const seconds = (performance.now() - t0) / 1000;
            if (!r || !r.equals(value)) throw new Error(`GET of ${mib} MiB did not give the value back`);
            return seconds;
          });
          record(`SET|${mib}|${t.name}`, { seconds: set.result, maxPingMs: set.maxPingMs });
          record(`GET|${mib}|${t.name}`, { seconds: get.result, maxPingMs: get.maxPingMs });
          process.stderr.write(
            `round ${round} ${String(mib).padStart(2)} MiB ${t.name.padEnd(6)}: SET ${set.result.toFixed(3)} s (max PING ${set.maxPingMs.toFixed(1)} ms, ${set.pings} pings), GET ${get.result.toFixed(3)} s (max PING ${get.maxPingMs.toFixed(1)} ms)\n`,
          );
        }
      }
    }

    console.log(`\nbench/big-values: median of ${ROUNDS} rounds; proxy entry ${ENTRY.replace(packageRoot() + '/', '')}`);
    console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}; one Redis on loopback\n`);
    console.log('op   size    direct s   proxy s   proxy/direct   max PING ms direct / proxy');
    for (const op of ['SET', 'GET']) {
      for (const mib of SIZES_MIB) {
        const d = results.get(`${op}|${mib}|direct`)!;
        const p = results.get(`${op}|${mib}|proxy`)!;
        const ds = median(d.map((s) => s.seconds));
        const ps = median(p.map((s) => s.seconds));
        const dp = Math.max(...d.map((s) => s.maxPingMs));
        const pp = Math.max(...p.map((s) => s.maxPingMs));
        console.log(
          `${op}  ${String(mib).padStart(3)} MiB  ${ds.toFixed(3).padStart(8)}  ${ps.toFixed(3).padStart(8)}  ${(ps / ds).toFixed(2).padStart(12)}x   ${dp.toFixed(1).padStart(8)} / ${pp.toFixed(1)}`,
        );
      }
    }
    console.log('\n(max PING: the longest round trip of a PING loop on another connection to the same target during the op, over all rounds)');
  });
}

await main();
