/**
 * What the benches share: their flags, medians, CPU time from /proc, redis-benchmark runs, and a
 * cluster of real Redis servers behind etcd that is always stopped.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { Redis } from 'ioredis';
import { splitAddress } from '../src/model/address.js';
import { ManagedProcess, cfgserverEntry, freePort, packageRoot, spawnController, spawnProxy, startEtcd, startRedis, waitFor, type EtcdServer, type RedisServer } from '../src/playground/processes.js';
import { DEFAULT_SLOTS } from '../src/model/schemas.js';

export const run = promisify(execFile);

/** `--name value` from the command line, or the fallback. */
export function argText(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

export function argNumber(name: string, fallback: number): number {
  return Number(argText(name, String(fallback)));
}

/** The nearest-rank percentile `p` (0-100) of `values`; 0 for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** CPU time of a process so far, [user, kernel], in microseconds, from /proc; [0, 0] once it is gone. */
export function cpuMicros(pid: number): [number, number] {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime, stime in clock ticks; USER_HZ is 100 on Linux
    return [(Number(fields[11]) * 1e6) / 100, (Number(fields[12]) * 1e6) / 100];
  } catch {
    return [0, 0];
  }
}

/**
 * CPU time the whole host has spent busy so far, in microseconds summed over its cores: every
 * process, the kernel, and the softirq work that carries loopback TCP (`/proc/stat`, all but idle
 * and iowait).
 */
export function hostBusyMicros(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return ((total - fields[3]! - fields[4]!) * 1e6) / 100;
}

/**
 * Read and write system calls a process made so far, [reads, writes] (syscr, syscw of
 * /proc/<pid>/io: read/readv/recv..., write/writev/send...); [0, 0] once it is gone.
 */
export function ioCalls(pid: number): [number, number] {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? 0);
    return [field('syscr'), field('syscw')];
  } catch {
    return [0, 0];
  }
}

/** One redis-benchmark run: ops/s, p99 and the worst latency in ms. */
export async function redisBenchmark(port: number, test: 'set' | 'get', pipeline: number, clients: number, requests: number): Promise<{ rps: number; p99: number; max: number }> {
  const { stdout } = await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-c', String(clients), '-n', String(requests), '-r', '100000', '-t', test, '-P', String(pipeline), '--csv'], { maxBuffer: 1 << 20 });
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const row = stdout.trim().split('\n').find((l) => l.startsWith(`"${test.toUpperCase()}"`));
  if (!row) throw new Error(`unexpected redis-benchmark output: ${stdout}`);
  const cols = row.split(',').map((c) => Number(c.replace(/"/g, '')));
  return { rps: cols[1]!, p99: cols[6]!, max: cols[7]! };
}

export interface BenchCluster {
  dir: string;
  etcd: EtcdServer;
  shards: RedisServer[];
  /** Stopped, last first, when the bench ends. */
  stops: (() => Promise<unknown>)[];
}

/**
 * Runs `body` with etcd and `shardCount` Redis masters in a cluster `name` (slots spread evenly),
 * and stops everything afterwards, whatever happened.
 */
export async function withCluster(name: string, shardCount: number, body: (c: BenchCluster) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `cfgserver-bench-${name}-`));
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const etcd = await startEtcd(dir);
    stops.push(etcd.stop);
    const shards: RedisServer[] = [];
    for (let i = 0; i < shardCount; i++) {
      const r = await startRedis(dir);
      stops.push(r.stop);
      shards.push(r);
    }
    const client = createEtcd({ endpoints: etcd.endpoint });
    await new AdminService(client, new Keys()).createCluster({ name, file: { shards: shards.map((s) => ({ master: s.address })) } });
    client.close();
    await body({ dir, etcd, shards, stops });
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * twemproxy (nutcracker) over the cluster's shards, at `-v 3`: its fastest log level (FIELD-NOTES:
 * the default costs a getpeername every dozen requests). Returns its client port and pid.
 */
export async function startTwemproxy(c: BenchCluster): Promise<{ port: number; pid: number }> {
  const port = await freePort();
  const conf = join(c.dir, 'nutcracker.yml');
  const servers = c.shards.map((s) => `   - ${s.address}:1`).join('\n');
  writeFileSync(conf, `bench:\n  listen: 127.0.0.1:${port}\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  preconnect: true\n  auto_eject_hosts: false\n  servers:\n${servers}\n`);
  const twem = new ManagedProcess('nutcracker', 'nutcracker', ['-c', conf, '-v', '3', '-a', '127.0.0.1', '-s', String(await freePort()), '-o', join(c.dir, 'nutcracker.log')], join(c.dir, 'nutcracker.out'));
  c.stops.push(() => twem.stop());
  return { port, pid: twem.pid };
}

/** A proxy a bench measures: its name in the report, its client port, its process. */
export interface ProxyTarget {
  name: string;
  port: number;
  pid: number;
}

/**
 * The three proxies the proxy benches compare, over the cluster's shards, serving once this
 * resolves: twemproxy (`-v 3`), the platform control (bench/minimal-proxy.ts: the least a Node
 * process does to shard RESP) and a cfgserver proxy of the cluster `name`.
 */
export async function startComparedProxies(c: BenchCluster, name: string): Promise<ProxyTarget[]> {
  const cfgPort = await freePort();
  const cfg = new ManagedProcess('cfgserver proxy', process.execPath, [cfgserverEntry(), 'proxy', '--cluster', name, '--listen', `127.0.0.1:${cfgPort}`, '--etcd', c.etcd.endpoint, '--log-level', 'warn'], join(c.dir, 'proxy.log'));
  c.stops.push(() => cfg.stop());
  const twem = await startTwemproxy(c);
  // Same shards, same slot count (the cluster's default), no cfgserver code.
  const minimalPort = await freePort();
  const minimal = new ManagedProcess('minimal proxy', process.execPath, ['--import', 'tsx', join(packageRoot(), 'bench', 'minimal-proxy.ts'), '--listen', String(minimalPort), '--shards', c.shards.map((s) => s.address).join(','), '--slots', String(DEFAULT_SLOTS)], join(c.dir, 'minimal.log'));
  c.stops.push(() => minimal.stop());
  for (const port of [cfgPort, twem.port, minimalPort]) await whenServing('proxy', port, 15_000);
  return [
    { name: 'twemproxy -v 3', port: twem.port, pid: twem.pid },
    { name: 'minimal node proxy', port: minimalPort, pid: minimal.pid },
    { name: 'cfgserver proxy', port: cfgPort, pid: cfg.pid },
  ];
}

/** Waits until a RESP server on `port` answers SET. */
export async function whenServing(name: string, port: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(`${name} on ${port}`, async () => (await run('redis-cli', ['-p', String(port), 'set', 'warm', 'up'])).stdout.trim() === 'OK', timeoutMs);
}

/**
 * One controller (log level info) and one proxy for `cluster` on the bench's etcd, and a client
 * per Redis address on demand: all stopped with the bench (`c.stops`). Waits for a leader and for
 * the proxy to answer.
 */
export async function controllerAndProxy(c: BenchCluster, cluster: string, admin: AdminService): Promise<{ proxyPort: number; at(address: string): Redis }> {
  const controller = spawnController({ id: 'bench-c1', etcd: c.etcd.endpoint, logFile: join(c.dir, 'controller.log'), extraArgs: ['--log-level', 'info'] });
  c.stops.push(() => controller.stop());
  await waitFor('a leader', async () => (await admin.controllers.leader()) !== null, 20_000);
  const proxyPort = await freePort();
  const proxy = spawnProxy({ id: 'bench-p1', cluster, listen: `127.0.0.1:${proxyPort}`, etcd: c.etcd.endpoint, logFile: join(c.dir, 'proxy.log'), extraArgs: ['--log-level', 'warn'] });
  c.stops.push(() => proxy.stop());
  await whenServing('proxy', proxyPort);
  const clients = new Map<string, Redis>();
  c.stops.push(async () => clients.forEach((client) => client.disconnect()));
  const at = (address: string) => {
    let client = clients.get(address);
    if (!client) {
      const { host, port } = splitAddress(address);
      client = new Redis({ host, port, maxRetriesPerRequest: 1, commandTimeout: 60_000 });
      client.on('error', () => undefined);
      clients.set(address, client);
    }
    return client;
  };
  return { proxyPort, at };
}
