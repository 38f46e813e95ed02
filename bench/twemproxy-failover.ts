/**
 * The write outage after kill -9 of a master, seen by a client of nutcracker (twemproxy, kept on
 * the route by `cfgserver twemproxy-agent`) and by a client of cfgserver's own proxy, in the same
 * run, on the same failover (docs/twemproxy.md, docs/benchmarks.md).
 *
 *   npm run build && node --import tsx bench/twemproxy-failover.ts [--runs N] [--down-after MS] [--no-sentinel] [--keep]
 *
 * (A) One cluster of two shards (s0: a master and two slaves, s1: a master), proxy kind twemproxy,
 * two controller replicas, one `cfgserver proxy` and one agent with nutcracker as its child (-v 3).
 * Each run: the writers succeed for a second, kill -9 the master of s0, then measure for each
 * client the time from the kill to its first successful write of an s0 key after its first failure
 * (the write outage), and the agent's nutcracker restart (from its history entry); then restart the
 * killed instance on its port, wait until it replicates from the new master, and go on.
 * (B) The baseline shops run today, alone on the machine after (A): the same servers and writer,
 * three sentinels with the same down window, and an agent that rewrites nutcracker.yml on
 * +switch-master and restarts nutcracker the same way.
 * Progress on stderr, the tables on stdout; every process stopped and the folder removed at the
 * end (--keep keeps it, with the logs).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { parseReplicationInfo } from '../src/redis/info.js';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { ManagedProcess, cfgserverEntry, freePort, spawnController, spawnProxy, startEtcd, startRedis, waitFor, type RedisServer } from '../src/playground/processes.js';
import { silentLogger } from '../src/log.js';
import { newRoute } from '../src/model/route.js';
import { ChildNutcracker, NUTCRACKER_IOREDIS_OPTIONS, nutcrackerArgv } from '../src/twemproxy/nutcracker.js';
import { parseTemplate, renderNutcracker, type NutcrackerTemplate, type PoolMember } from '../src/twemproxy/render.js';
import { median } from './common.js';
import { onSwitchMaster, sentinelsAgree, startSentinels } from './sentinel.js';

const CLUSTER = 'twbench';
/** A client with a tight latency budget: a dead master costs it little. */
const COMMAND_TIMEOUT_MS = 200;
const WRITE_PAUSE_MS = 1;
const RETRY_PAUSE_MS = 2;
const CLEAN_WRITES_MS = 1000;

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes s0 keys continuously through one front; remembers when each write succeeded or failed. */
class Writer {
  private stopped = false;
  /** Counts as a failure at start: "clean for a second" means a second of writes. */
  private lastFailure = Date.now();
  private successes: number[] = [];
  private failures: number[] = [];
  private readonly done: Promise<void>;

  constructor(
    readonly name: string,
    private readonly client: Redis,
    private readonly keys: string[],
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      try {
        await this.client.set(this.keys[i % this.keys.length]!, String(i));
        this.successes.push(Date.now());
        if (this.successes.length > 100_000) this.successes = this.successes.slice(-10_000);
        await sleep(WRITE_PAUSE_MS);
      } catch {
        this.lastFailure = Date.now();
        this.failures.push(this.lastFailure);
        if (this.failures.length > 100_000) this.failures = this.failures.slice(-10_000);
        await sleep(RETRY_PAUSE_MS);
      }
    }
  }

  /** Whether every write of the last `ms` succeeded (and some did). */
  clean(ms: number): boolean {
    const now = Date.now();
    return now - this.lastFailure > ms && this.successes.some((t) => t > now - 50);
  }

  /**
   * The end of the outage that began at `at`: the first success after the first failure after
   * `at` (a write the dying master acknowledged just before it went is not the end of anything);
   * `at` itself if no write failed, and null while writes still fail.
   */
  outageEnd(at: number): number | null {
    const failed = this.failures.find((t) => t >= at);
    if (failed === undefined) return this.successes.some((t) => t > at + 100) ? at : null;
    return this.successes.find((t) => t > failed) ?? null;
  }

  /** The longest time without a successful write between `from` and `to` (ms). */
  longestGap(from: number, to: number): number {
    let last = from;
    let gap = 0;
    for (const t of this.successes) {
      if (t <= from) continue;
      if (t > to) break;
      gap = Math.max(gap, t - last);
      last = t;
    }
    return Math.max(gap, to - last);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

function clientAt(address: string, extra: Record<string, unknown> = {}): Redis {
  const i = address.lastIndexOf(':');
  const c = new Redis({ host: address.slice(0, i), port: Number(address.slice(i + 1)), enableOfflineQueue: false, commandTimeout: COMMAND_TIMEOUT_MS, connectTimeout: COMMAND_TIMEOUT_MS, maxRetriesPerRequest: 0, retryStrategy: () => 2, ...extra });
  c.on('error', () => undefined);
  return c;
}

/** Keys that the front puts on `master`: write candidates through it, keep those found there. */
async function keysOn(front: Redis, master: Redis, prefix: string): Promise<string[]> {
  const candidates = Array.from({ length: 400 }, (_, i) => `${prefix}:${i}`);
  await waitFor(`${prefix} front answers`, async () => (await front.ping().catch(() => null)) === 'PONG', 30_000);
  for (const k of candidates) await front.set(k, '0');
  const found = new Set(await master.keys(`${prefix}:*`));
  return candidates.filter((k) => found.has(k));
}

interface RunResult {
  routeMs: number;
  proxyMs: number;
  nutcrackerMs: number;
  restartMs: number | null;
  /** The longest pause of writes to the shard that did not fail (s1), through each front. */
  proxyOtherMs: number;
  nutcrackerOtherMs: number;
}

/** What both phases share: the run count, the down window, and what to stop at the end. */
interface Env {
  dir: string;
  runs: number;
  downAfterMs: number;
  stops: (() => Promise<unknown>)[];
  clients: Redis[];
}

/** redis-servers of one phase, by address, each killed at the end. */
function serverPool(env: Env, dir: string) {
  const servers = new Map<string, RedisServer>();
  const start = async (port?: number) => {
    const r = await startRedis(dir, port);
    servers.set(r.address, r);
    env.stops.push(() => r.process.kill9());
    return r;
  };
  return { servers, start };
}

/** The operator's nutcracker file (the same in both phases): murmur, a short timeout and retry. */
function writeTemplate(configFile: string, listen: string): void {
  writeFileSync(configFile, `${CLUSTER}:\n  listen: ${listen}\n  hash: murmur\n  timeout: ${COMMAND_TIMEOUT_MS}\n  server_retry_timeout: 100\n  server_failure_limit: 1\n  servers:\n   - 127.0.0.1:1:1 placeholder\n`);
}

/**
 * Waits until `address` replicates from `master` with its link up. A new connection for each look:
 * Sentinel ends every normal client's connection (CLIENT KILL TYPE normal) each time it
 * reconfigures an instance.
 */
async function replicatingFrom(address: string, master: string): Promise<void> {
  const look = async () => {
    const i = address.lastIndexOf(':');
    const c = new Redis({ host: address.slice(0, i), port: Number(address.slice(i + 1)), lazyConnect: true, connectTimeout: 500, commandTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return parseReplicationInfo(String(await c.call('INFO', 'replication')));
    } catch {
      return null;
    } finally {
      c.disconnect();
    }
  };
  await waitFor(`${address} to replicate from ${master}`, async () => {
    const info = await look();
    return info !== null && info.masterAddress === master && info.linkUp;
  }, 120_000, 100);
}

/** (A) cfgserver: controllers, its proxy and the twemproxy agent on one failover. */
async function benchCfgserver(env: Env): Promise<RunResult[]> {
  const { dir, runs, downAfterMs, stops, clients } = env;
  const etcd = await startEtcd(dir);
  stops.push(etcd.stop);
  const { servers, start: startServer } = serverPool(env, dir);
  const s0 = [await startServer(), await startServer(), await startServer()];
  const s1 = await startServer();
  const etcdClient = createEtcd({ endpoints: etcd.endpoint });
  stops.push(async () => etcdClient.close());
  const admin = new AdminService(etcdClient, new Keys());
  await admin.createCluster({
    name: CLUSTER,
    // maxPerWindow: the default budget (3 an hour) would stop the fourth kill's failover.
    file: { proxy: 'twemproxy', probe: { intervalMs: 200, timeoutMs: 200, downAfterMs }, failover: { maxPerWindow: 1000 }, shards: [{ master: s0[0]!.address, slaves: [s0[1]!.address, s0[2]!.address] }, { master: s1.address }] },
  });
  for (const id of ['c1', 'c2']) {
    const p = spawnController({ id, etcd: etcd.endpoint, leaseTtlSeconds: 2, logFile: join(dir, `controller-${id}.log`) });
    stops.push(() => p.stop());
  }
  const proxyAddress = `127.0.0.1:${await freePort()}`;
  const proxy = spawnProxy({ id: 'px', cluster: CLUSTER, listen: proxyAddress, etcd: etcd.endpoint, logFile: join(dir, 'proxy.log') });
  stops.push(() => proxy.stop());
  const nutcrackerAddress = `127.0.0.1:${await freePort()}`;
  const configFile = join(dir, 'nutcracker.yml');
  writeTemplate(configFile, nutcrackerAddress);
  const nutcrackerCmd = `nutcracker -a 127.0.0.1 -s ${await freePort()} -v 3 -o ${join(dir, 'nutcracker.log')}`;
  const agent = new ManagedProcess('agent', process.execPath, [cfgserverEntry(), 'twemproxy-agent', '--cluster', CLUSTER, '--etcd', etcd.endpoint, '--id', 'agent', '--nutcracker-config', configFile, '--nutcracker-cmd', nutcrackerCmd], join(dir, 'agent.log'));
  stops.push(() => agent.stop());
  await waitFor('the proxy and the agent registered', async () => (await admin.listProxies(CLUSTER)).proxies.length === 2, 30_000);

  const viaProxy = clientAt(proxyAddress);
  const viaNutcracker = clientAt(nutcrackerAddress, NUTCRACKER_IOREDIS_OPTIONS);
  // Separate connections for the s1 writers: each writer waits on its own replies.
  const viaProxyOther = clientAt(proxyAddress);
  const viaNutcrackerOther = clientAt(nutcrackerAddress, NUTCRACKER_IOREDIS_OPTIONS);
  clients.push(viaProxy, viaNutcracker, viaProxyOther, viaNutcrackerOther);
  const results: RunResult[] = [];
  for (let run = 1; run <= runs; run++) {
    const route = await admin.route(CLUSTER);
    const master = route.shards[0]!.master;
    const direct = clientAt(master);
    const other = clientAt(route.shards[1]!.master);
    clients.push(direct, other);
    const writers = [new Writer('proxy', viaProxy, await keysOn(viaProxy, direct, `p${run}`)), new Writer('nutcracker', viaNutcracker, await keysOn(viaNutcracker, direct, `n${run}`))];
    // s1 keys too: its master does not fail, but a nutcracker restart drops every client connection.
    const others = [new Writer('proxy s1', viaProxyOther, await keysOn(viaProxy, other, `po${run}`)), new Writer('nutcracker s1', viaNutcrackerOther, await keysOn(viaNutcracker, other, `no${run}`))];
    writers.push(...others);
    await waitFor('both writers clean for a second', async () => writers.every((w) => w.clean(CLEAN_WRITES_MS)), 60_000, 20);
    await waitFor('every front on the route', async () => (await admin.listProxies(CLUSTER)).proxies.every((p) => p.epoch === route.epoch), 30_000);
    const killed = servers.get(master)!;
    await killed.process.kill9();
    // From the moment the process is gone: writes acknowledged before are not part of the outage.
    const killedAt = Date.now();
    const after = await waitFor('the new route', async () => {
      const r = await admin.route(CLUSTER);
      return r.shards[0]!.master !== master ? r : null;
    }, 30_000, 5);
    const routeMs = Date.parse(after.updatedAt) - killedAt;
    const outages = await waitFor('writes through both fronts', async () => {
      const [p, n] = writers.map((w) => w.outageEnd(killedAt));
      return p !== null && p !== undefined && n !== null && n !== undefined ? { proxyMs: p - killedAt, nutcrackerMs: n - killedAt } : null;
    }, 30_000, 10);
    // A little past the agent's restart, so that the s1 writers' pauses are whole.
    await sleep(500);
    const endAt = Date.now();
    await Promise.all(writers.map((w) => w.stop()));
    const [proxyOtherMs, nutcrackerOtherMs] = others.map((w) => w.longestGap(killedAt, endAt));
    // The agent records its restart after it registers the epoch: it may land a moment later.
    const restart = await waitFor('the agent\'s restart in history', async () => (await admin.listHistory(CLUSTER, 50)).entries.find((e) => e.action === 'twemproxy:restart' && e.reason.startsWith(`route epoch ${after.epoch}:`)), 10_000, 50).catch(() => null);
    const result = { routeMs, ...outages, restartMs: restart?.durationMs ?? null, proxyOtherMs: proxyOtherMs!, nutcrackerOtherMs: nutcrackerOtherMs! };
    results.push(result);
    log(`cfgserver run ${run}: route ${routeMs} ms, s0 outage via proxy ${result.proxyMs} ms, via nutcracker ${result.nutcrackerMs} ms (restart ${result.restartMs} ms); s1 longest pause via proxy ${proxyOtherMs} ms, via nutcracker ${nutcrackerOtherMs} ms`);
    direct.disconnect();
    other.disconnect();
    // The killed instance comes back empty on its port; the leader makes it a slave of the new master.
    await startServer(killed.port);
    await replicatingFrom(killed.address, after.shards[0]!.master);
  }
  return results;
}

/**
 * What shops run today: Sentinel, and an agent that rewrites nutcracker.yml on +switch-master and
 * restarts nutcracker. Here it renders and restarts exactly as cfgserver's agent does (render.ts,
 * ChildNutcracker), so that only the failover differs between the two phases.
 */
class RewritingAgent {
  readonly restarts: { at: number; ms: number }[] = [];
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly template: NutcrackerTemplate,
    private readonly configFile: string,
    private readonly nutcracker: ChildNutcracker,
    private members: PoolMember[],
  ) {}

  async start(): Promise<void> {
    await this.write();
    await this.nutcracker.ensureRunning();
  }

  /** The master of `name` is now `address`: rewrite the file and restart nutcracker. */
  switched(name: string, address: string): void {
    this.chain = this.chain
      .then(async () => {
        const started = performance.now();
        this.members = this.members.map((m) => (m.name === name ? { name, address } : m));
        await this.write();
        await this.nutcracker.restart();
        this.restarts.push({ at: Date.now(), ms: Math.round(performance.now() - started) });
      })
      .catch((err: unknown) => void log(`rewriting agent: ${String(err)}`));
  }

  private async write(): Promise<void> {
    const route = newRoute(CLUSTER, this.members.length, this.members.map((m, i) => ({ id: m.name, master: m.address, slaves: [], slots: [[i, i]] })), 1);
    const tmp = `${this.configFile}.tmp`;
    writeFileSync(tmp, renderNutcracker(this.template, route, { pool: null, listen: null }));
    renameSync(tmp, this.configFile);
  }
}

interface SentinelRunResult {
  announceMs: number;
  nutcrackerMs: number;
  restartMs: number;
}

/** (B) Sentinel (3, quorum 2, the same down window) and the rewriting agent, same topology and writer. */
async function benchSentinel(env: Env): Promise<SentinelRunResult[]> {
  const dir = join(env.dir, 'sentinel');
  mkdirSync(dir, { recursive: true });
  const { servers, start: startServer } = serverPool(env, dir);
  const s0 = [await startServer(), await startServer(), await startServer()];
  const s1 = await startServer();
  let master = s0[0]!.address;
  for (const replica of s0.slice(1)) {
    const c = clientAt(replica.address);
    await waitFor(`${replica.address} REPLICAOF ${master}`, async () => (await c.call('REPLICAOF', '127.0.0.1', String(s0[0]!.port)).catch(() => null)) === 'OK');
    c.disconnect();
    await replicatingFrom(replica.address, master);
  }
  const sentinels = await startSentinels(dir, { s0: master }, env.downAfterMs);
  env.stops.push(() => sentinels.stop());
  await waitFor('the sentinels agree', () => sentinelsAgree(sentinels, 's0', master, 2), 60_000, 200);
  const nutcrackerAddress = `127.0.0.1:${await freePort()}`;
  const configFile = join(dir, 'nutcracker.yml');
  writeTemplate(configFile, nutcrackerAddress);
  const { argv, pidFile } = nutcrackerArgv(`nutcracker -a 127.0.0.1 -s ${await freePort()} -v 3 -o ${join(dir, 'nutcracker.log')}`, configFile);
  const nutcracker = new ChildNutcracker(argv, pidFile, nutcrackerAddress, silentLogger());
  env.stops.push(() => nutcracker.stop());
  const agent = new RewritingAgent(parseTemplate(readFileSync(configFile, 'utf8'), configFile), configFile, nutcracker, [{ name: 's0', address: master }, { name: 's1', address: s1.address }]);
  await agent.start();
  let announced = { at: 0, master };
  const feed = await onSwitchMaster(sentinels.addresses[0]!, (name, to) => {
    if (name !== 's0') return;
    announced = { at: Date.now(), master: to };
    agent.switched(name, to);
  });
  const viaNutcracker = clientAt(nutcrackerAddress, NUTCRACKER_IOREDIS_OPTIONS);
  env.clients.push(feed, viaNutcracker);
  const results: SentinelRunResult[] = [];
  for (let run = 1; run <= env.runs; run++) {
    const direct = clientAt(master);
    env.clients.push(direct);
    const writer = new Writer('sentinel nutcracker', viaNutcracker, await keysOn(viaNutcracker, direct, `s${run}`));
    await waitFor('the writer clean for a second', async () => writer.clean(CLEAN_WRITES_MS), 60_000, 20);
    await waitFor('the sentinels agree', () => sentinelsAgree(sentinels, 's0', master, 2), 60_000, 200);
    const restartsBefore = agent.restarts.length;
    const killed = servers.get(master)!;
    await killed.process.kill9();
    const killedAt = Date.now();
    await waitFor('+switch-master and the restart', async () => agent.restarts.length > restartsBefore, 60_000, 5);
    const end = await waitFor('writes through nutcracker', async () => writer.outageEnd(killedAt), 30_000, 10);
    await writer.stop();
    direct.disconnect();
    const result = { announceMs: announced.at - killedAt, nutcrackerMs: end - killedAt, restartMs: agent.restarts.at(-1)!.ms };
    results.push(result);
    log(`sentinel run ${run}: +switch-master ${result.announceMs} ms, s0 outage via nutcracker ${result.nutcrackerMs} ms (restart ${result.restartMs} ms)`);
    master = announced.master;
    // The killed instance comes back empty on its port; Sentinel makes it a replica of the new master.
    await startServer(killed.port);
    await replicatingFrom(killed.address, master);
  }
  return results;
}

function column<T>(results: T[], pick: (r: T) => number | null): string {
  const v = results.map(pick).filter((x): x is number => x !== null);
  return v.length ? `${median(v)} (${Math.min(...v)}–${Math.max(...v)})` : '-';
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, 'down-after': { type: 'string', default: '1000' }, keep: { type: 'boolean', default: false }, 'no-sentinel': { type: 'boolean', default: false } } });
  const dir = mkdtempSync(join(tmpdir(), 'cfgserver-bench-twemproxy-'));
  const env: Env = { dir, runs: Number(values.runs), downAfterMs: Number(values['down-after']), stops: [], clients: [] };
  /** Stops what the phase so far started: each phase runs alone on the machine. */
  const stopPhase = async () => {
    env.clients.splice(0).forEach((c) => c.disconnect());
    for (const stop of env.stops.splice(0).reverse()) await stop().catch((err) => log(`cleanup: ${String(err)}`));
  };
  const stopAll = async () => {
    await stopPhase();
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir}`);
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    log(`(A) cfgserver: ${env.runs} kills`);
    const cfg = await benchCfgserver(env);
    await stopPhase();
    const sen = values['no-sentinel'] ? [] : (log(`(B) Sentinel + a rewriting agent: ${env.runs} kills`), await benchSentinel(env));
    process.stdout.write(
      [
        `twemproxy-failover: ${env.runs} kills of s0's master, down window ${env.downAfterMs} ms; median (min–max), ms`,
        '',
        '(A) cfgserver: its proxy and nutcracker kept by cfgserver twemproxy-agent, on the same failovers',
        `| kill -> route published | s0 write outage, cfgserver proxy | s0 write outage, nutcracker | nutcracker restart by the agent | s1 longest write pause, cfgserver proxy | s1 longest write pause, nutcracker |`,
        `| --- | --- | --- | --- | --- | --- |`,
        `| ${column(cfg, (r) => r.routeMs)} | ${column(cfg, (r) => r.proxyMs)} | ${column(cfg, (r) => r.nutcrackerMs)} | ${column(cfg, (r) => r.restartMs)} | ${column(cfg, (r) => r.proxyOtherMs)} | ${column(cfg, (r) => r.nutcrackerOtherMs)} |`,
        '',
        ...(sen.length
          ? [
              '(B) Redis Sentinel (3, quorum 2) and an agent that rewrites nutcracker.yml on +switch-master and restarts nutcracker (the same renderer and restart)',
              '| kill -> +switch-master | s0 write outage, nutcracker | nutcracker restart by the agent |',
              '| --- | --- | --- |',
              `| ${column(sen, (r) => r.announceMs)} | ${column(sen, (r) => r.nutcrackerMs)} | ${column(sen, (r) => r.restartMs)} |`,
              '',
            ]
          : []),
      ].join('\n'),
    );
  } finally {
    await stopAll();
  }
}

main().catch((err) => {
  log(`twemproxy-failover: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
