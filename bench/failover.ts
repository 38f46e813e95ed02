/**
 * Failover benchmark: cfgserver against Redis Sentinel, on the same machine, with the same
 * topology (one shard: a master and two slaves) and the same down window.
 *
 *   node --import tsx bench/failover.ts [--runs N] [--down-after MS] [--keep]
 *
 * For each system, N times: wait for a steady state, kill -9 the master, and measure
 *   (a) kill -> the system announces a new master (cfgserver: the route in etcd, seen through a
 *       RouteWatcher; Sentinel: +switch-master on a subscribed sentinel), and
 *   (b) kill -> the first successful write on the new master, by a client that writes continuously
 *       and follows the master the way a client of that system would (cfgserver: the route;
 *       Sentinel: +switch-master, and SENTINEL get-master-addr-by-name after a failed write);
 * then restart the killed instance on its port and wait until it is a slave of the new master.
 * Failovers that no kill caused are counted as spurious. Progress goes to stderr, the result
 * table to stdout. Every process is stopped and the temporary folder removed at the end, on an
 * error and on Ctrl-C (--keep keeps the folder, with every log, for a look afterwards).
 *
 * Run `npm run build` first: controller replicas run the compiled code in dist/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import type { Task } from '../src/model/schemas.js';
import { ManagedProcess, cfgserverEntry, freePort, packageRoot, spawnController, startEtcd, startRedis, waitFor, type RedisServer } from '../src/playground/processes.js';
import { parseReplicationInfo } from '../src/redis/info.js';
import type { ReplicationInfo } from '../src/model/replication-info.js';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { RouteWatcher } from '../src/store/route-watcher.js';

const CLUSTER = 'bench';
/** cfgserver proxies registered for the cluster (off the writer's path): what the failover's barrier waits for. */
const PROXIES = 2;
/** The client's command timeout: short, so that a dead master costs the writer little. */
const COMMAND_TIMEOUT_MS = 200;
/** The writer's pause after a write: about 1000 writes/s, a 1 ms resolution for (b), and a core left for the systems under test. */
const WRITE_PAUSE_MS = 1;
/** The writer's pause after a failed write, so that it does not spin on a dead master. */
const RETRY_PAUSE_MS = 2;
/** Steady state includes this long of uninterrupted successful writes. */
const CLEAN_WRITES_MS = 1000;
const FAILOVER_TIMEOUT_MS = 30_000;
const REJOIN_TIMEOUT_MS = 60_000;
const STEADY_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Small tools

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Things to stop, most recent first; run once, whatever happened. */
class Cleanup {
  private readonly steps: (() => unknown)[] = [];
  private done: Promise<void> | null = null;

  push(step: () => unknown): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.done ??= (async () => {
      for (const step of this.steps.reverse()) {
        try {
          await step();
        } catch (err) {
          log(`cleanup: ${String(err)}`);
        }
      }
    })();
    return this.done;
  }
}

/**
 * One connection per address, failing fast like a client with a tight latency budget: no offline
 * queue (a command on a broken connection fails at once), no retries, short timeouts, and a quick
 * reconnect so that an instance that answers again is usable within a few milliseconds.
 */
class RedisClients {
  private readonly clients = new Map<string, Redis>();

  at(address: string): Redis {
    let client = this.clients.get(address);
    if (!client) {
      const i = address.lastIndexOf(':');
      client = new Redis({
        host: address.slice(0, i),
        port: Number(address.slice(i + 1)),
        enableOfflineQueue: false,
        commandTimeout: COMMAND_TIMEOUT_MS,
        connectTimeout: COMMAND_TIMEOUT_MS,
        maxRetriesPerRequest: 0,
        retryStrategy: () => 20,
      });
      client.on('error', () => undefined); // the commands that fail say so
      this.clients.set(address, client);
    }
    return client;
  }

  async replication(address: string): Promise<ReplicationInfo> {
    return parseReplicationInfo(await this.at(address).call('INFO', 'replication'));
  }

  /** Connects ahead of time, so that the first write on a new master does not pay for a connect. */
  async connect(addresses: string[]): Promise<void> {
    await Promise.all(addresses.map((a) => waitFor(`a connection to ${a}`, async () => this.at(a).status === 'ready', 10_000, 10)));
  }

  close(): void {
    for (const client of this.clients.values()) client.disconnect();
    this.clients.clear();
  }
}

function stats(values: number[]): { min: number; median: number; max: number } {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return { min: NaN, median: NaN, max: NaN };
  const mid = Math.floor(v.length / 2);
  return { min: v[0]!, median: v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2, max: v[v.length - 1]! };
}

// ---------------------------------------------------------------------------------------------
// What both systems share: the master as announced, the writer, the kill-and-measure loop

interface Announcement {
  /** performance.now() when it reached this process. */
  at: number;
  master: string;
}

/** The master as a system announces it, with the time each change of master reached us. */
class MasterFeed {
  readonly changes: Announcement[] = [];
  /** Called on every change of master. */
  onChange: (master: string) => void = () => undefined;
  private waiters: (() => void)[] = [];

  constructor(public current: string) {}

  announce(master: string, at = performance.now()): void {
    if (master === this.current) return;
    this.current = master;
    this.changes.push({ at, master });
    this.onChange(master);
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** The first change of master that arrived after `since`. */
  async next(since: number): Promise<Announcement> {
    for (;;) {
      const change = this.changes.find((c) => c.at > since);
      if (change) return change;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

/**
 * A client writing continuously (SET bench:<i> <i>) to whatever `target()` says is the master.
 * `onFailure` lets a client that can ask for the master (Sentinel's) do so after a failed write.
 */
class Writer {
  writes = 0;
  failures = 0;
  private seq = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private lastFailureAt = -Infinity;
  private lastOkAt = -Infinity;
  private startedAt = 0;
  private readonly listeners = new Set<(address: string, at: number) => void>();

  constructor(
    private readonly clients: RedisClients,
    private readonly target: () => string,
    private readonly onFailure: () => void = () => undefined,
  ) {}

  start(): void {
    this.startedAt = performance.now();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Whether every write of the last `ms` succeeded (and writes are going on). */
  cleanFor(ms: number): boolean {
    const now = performance.now();
    return now - Math.max(this.lastFailureAt, this.startedAt) >= ms && now - this.lastOkAt < 100;
  }

  /** Resolves with the first successful write, from now on, on an address other than `except`. */
  nextWriteElsewhere(except: string): Promise<{ address: string; at: number }> {
    return new Promise((resolve) => {
      const listener = (address: string, at: number) => {
        if (address === except) return;
        this.listeners.delete(listener);
        resolve({ address, at });
      };
      this.listeners.add(listener);
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const address = this.target();
      const i = this.seq++;
      try {
        await this.clients.at(address).set(`bench:${i}`, String(i));
        const at = performance.now();
        this.writes++;
        this.lastOkAt = at;
        for (const listener of [...this.listeners]) listener(address, at);
        await sleep(WRITE_PAUSE_MS);
      } catch {
        this.failures++;
        this.lastFailureAt = performance.now();
        this.onFailure();
        await sleep(RETRY_PAUSE_MS);
      }
    }
  }
}

/** One system under test, as the shared measuring loop sees it. */
interface System {
  name: string;
  dir: string;
  feed: MasterFeed;
  writer: Writer;
  /** The running redis-servers by address (a restarted one replaces the killed one). */
  servers: Map<string, RedisServer>;
  /** The system's own checks of a steady state (the writer's is added by the loop). */
  steady(master: string): Promise<boolean>;
  /** Whether `address` is back, as a slave of `master` with its link up. */
  rejoined(address: string, master: string): Promise<boolean>;
  /** A few lines on the state of things, for when a run fails. */
  diagnose(): Promise<string[]>;
}

/** When a kill happened: performance.now(), and Date.now() to compare with times the system recorded. */
interface Kill {
  at: number;
  wall: number;
}

interface Run {
  kill: Kill;
  killed: string;
  newMaster: string;
  /** kill -> the new master announced (ms). */
  announced: number;
  /** kill -> first successful write on the new master (ms). */
  firstWrite: number;
  /** Address of that first write (the new master, unless something is wrong). */
  firstWriteOn: string;
  /** kill -> the killed instance a slave again, after its restart (ms). */
  rejoined: number;
}

async function waitSteady(system: System, checks: RedisClients): Promise<string> {
  return waitFor(`${system.name} to be steady`, async () => {
    const master = system.feed.current;
    const slaves = [...system.servers.keys()].filter((a) => a !== master);
    if (!(await topologyIs(checks, master, slaves))) return null;
    if (!(await system.steady(master))) return null;
    return system.writer.cleanFor(CLEAN_WRITES_MS) ? master : null;
  }, STEADY_TIMEOUT_MS, 100);
}

/** kill -9 the master, time (a) and (b), restart it on its port, wait for it to rejoin. */
async function killOnce(system: System, checks: RedisClients, kills: Kill[]): Promise<Run> {
  const killed = await waitSteady(system, checks);
  const server = system.servers.get(killed)!;
  const writeElsewhere = system.writer.nextWriteElsewhere(killed); // listening before the kill
  const kill = { wall: Date.now(), at: performance.now() };
  kills.push(kill);
  const killedAt = kill.at;
  await server.process.kill9();

  const [change, write] = await withTimeout(
    Promise.all([system.feed.next(killedAt), writeElsewhere]),
    FAILOVER_TIMEOUT_MS,
    `${system.name} to fail over ${killed}`,
  );
  const restarted = await startRedis(system.dir, server.port);
  if (restarted.port !== server.port) {
    await restarted.stop();
    throw new Error(`port ${server.port} was taken: cannot restart ${killed} in place`);
  }
  system.servers.set(killed, restarted);
  // Of the master in place now: a spurious failover may have moved it on since.
  await waitFor(`${killed} to rejoin as a slave of the master`, () => system.rejoined(killed, system.feed.current), REJOIN_TIMEOUT_MS, 50);
  return {
    kill,
    killed,
    newMaster: change.master,
    announced: change.at - killedAt,
    firstWrite: write.at - killedAt,
    firstWriteOn: write.address,
    rejoined: performance.now() - killedAt,
  };
}

interface Measured {
  runs: Run[];
  /** Every kill, including that of a run that failed. */
  kills: Kill[];
  /** Changes of master that no kill caused. */
  spurious: number;
  /** Set when the measurement stopped early. */
  error?: string;
  /** System-specific lines for the report. */
  notes: string[];
  /** Median time from the kill to each step of the failover, as the system recorded them. */
  breakdown: [string, number][];
  writes: number;
  failedWrites: number;
}

async function measure(system: System, checks: RedisClients, runs: number): Promise<Pick<Measured, 'runs' | 'kills' | 'error' | 'writes' | 'failedWrites'>> {
  const done: Run[] = [];
  const kills: Kill[] = [];
  const counts = () => ({ kills, writes: system.writer.writes, failedWrites: system.writer.failures });
  try {
    for (let i = 1; i <= runs; i++) {
      const run = await killOnce(system, checks, kills);
      done.push(run);
      const odd = run.firstWriteOn !== run.newMaster ? ` (first write on ${run.firstWriteOn}!)` : '';
      log(`${system.name} run ${i}/${runs}: killed ${run.killed}; (a) ${run.announced.toFixed(0)} ms -> ${run.newMaster}; (b) ${run.firstWrite.toFixed(0)} ms${odd}; rejoined after ${(run.rejoined / 1000).toFixed(1)} s`);
    }
    return { runs: done, ...counts() };
  } catch (err) {
    log(`${system.name}: stopped after ${done.length} runs: ${err instanceof Error ? err.message : String(err)}`);
    for (const line of await system.diagnose().catch((e) => [`(no diagnosis: ${String(e)})`])) log(`  ${line}`);
    return { runs: done, error: err instanceof Error ? err.message : String(err), ...counts() };
  }
}

/** Changes of master that are not the first one after a kill (before the next kill). */
function spuriousChanges(changes: { at: number }[], kills: Kill[]): number {
  let caused = 0;
  kills.forEach((kill, k) => {
    const until = kills[k + 1]?.at ?? Infinity;
    if (changes.some((c) => c.at > kill.at && c.at <= until)) caused++;
  });
  return changes.length - caused;
}

/** INFO replication of every instance, in one line each. */
async function describeShard(checks: RedisClients, addresses: string[]): Promise<string[]> {
  return Promise.all(
    addresses.map(async (a) => {
      try {
        const i = await checks.replication(a);
        return `${a}: ${i.role}${i.role === 'slave' ? ` of ${i.masterAddress}, link ${i.linkUp ? 'up' : 'down'}` : `, ${i.connectedSlaves} slaves`}, offset ${i.offset}`;
      } catch (err) {
        return `${a}: ${err instanceof Error ? err.message : String(err)}`;
      }
    }),
  );
}

/** Whether `master` is a master and every slave replicates from it with its link up. */
async function topologyIs(checks: RedisClients, master: string, slaves: string[]): Promise<boolean> {
  const [m, ...s] = await Promise.all([master, ...slaves].map((a) => checks.replication(a)));
  return m!.role === 'master' && s.every((i) => i.role === 'slave' && i.masterAddress === master && i.linkUp === true);
}

async function slaveOf(checks: RedisClients, address: string, master: string): Promise<boolean> {
  const info = await checks.replication(address);
  return info.role === 'slave' && info.masterAddress === master && info.linkUp === true;
}

async function startShard(dir: string, cleanup: Cleanup): Promise<Map<string, RedisServer>> {
  const servers = new Map<string, RedisServer>();
  // Whatever the map holds at the end (restarted instances included) is stopped.
  cleanup.push(() => Promise.all([...servers.values()].map((s) => s.stop())));
  for (let i = 0; i < 3; i++) {
    const server = await startRedis(dir);
    servers.set(server.address, server);
  }
  return servers;
}

// ---------------------------------------------------------------------------------------------
// (A) cfgserver

async function benchCfgserver(dir: string, runs: number, downAfterMs: number, cleanup: Cleanup): Promise<Measured> {
  mkdirSync(dir, { recursive: true });
  const etcd = await startEtcd(dir);
  cleanup.push(() => etcd.stop());
  const servers = await startShard(dir, cleanup);
  const [master, ...slaves] = [...servers.keys()] as [string, ...string[]];
  const client = createEtcd({ endpoints: etcd.endpoint });
  cleanup.push(() => client.close());
  const prefix = '/bench';
  const admin = new AdminService(client, new Keys(prefix));
  await admin.createCluster({
    name: CLUSTER,
    file: {
      probe: { intervalMs: 100, timeoutMs: 100, downAfterMs },
      failover: { maxPerWindow: 1000, windowMs: 1000 }, // no budget: every kill must be failed over
      shards: [{ master, slaves }],
    },
  });
  for (const id of ['c1', 'c2', 'c3']) {
    const p = spawnController({ id, etcd: etcd.endpoint, prefix, leaseTtlSeconds: 3, logFile: join(dir, `controller-${id}.log`) });
    cleanup.push(() => p.stop());
  }
  const checks = new RedisClients();
  cleanup.push(() => checks.close());
  // The controllers set up replication themselves: the route is all they were given.
  await waitFor('both slaves to replicate from the master', () => topologyIs(checks, master, slaves), 30_000, 100);
  // Proxies that follow the route and register the epochs they drain; the client does not write
  // through them (its path stays the same as Sentinel's client's), so they only cost the barrier.
  // Started once the controllers run: on a loaded machine five node processes starting at once
  // take tens of seconds.
  for (let i = 1; i <= PROXIES; i++) {
    const args = [cfgserverEntry(), 'proxy', '--cluster', CLUSTER, '--listen', `127.0.0.1:${await freePort()}`, '--etcd', etcd.endpoint, '--prefix', prefix, '--id', `p${i}`];
    const p = new ManagedProcess(`proxy p${i}`, process.execPath, args, join(dir, `proxy-p${i}.log`));
    cleanup.push(() => p.stop());
  }
  await waitFor('the proxies to register', async () => (await admin.listProxies(CLUSTER)).proxies.length === PROXIES, 60_000, 100);

  // The client follows the route through a RouteWatcher, as a proxy or smart client would.
  const watcher = new RouteWatcher({ cluster: CLUSTER, etcd: client, prefix });
  cleanup.push(() => watcher.stop());
  const feed = new MasterFeed(master);
  watcher.on('change', (route) => feed.announce(route.shards[0]!.master));
  await watcher.start();
  const writerClients = new RedisClients();
  cleanup.push(() => writerClients.close());
  await writerClients.connect([...servers.keys()]);
  const writer = new Writer(writerClients, () => feed.current);
  writer.start();
  cleanup.push(() => writer.stop());

  const system: System = {
    name: 'cfgserver',
    dir,
    feed,
    writer,
    servers,
    steady: () => cfgserverSteady(admin, [...servers.keys()]),
    rejoined: (address, newMaster) => slaveOf(checks, address, newMaster),
    diagnose: async () => [
      `route names ${feed.current} master (${feed.changes.length} changes of master seen)`,
      ...(await describeShard(checks, [...servers.keys()])),
      ...(await admin.listTasks(CLUSTER)).tasks.slice(-3).map((t) => `task ${t.id}: ${t.state}, next ${t.next}${t.error ? `: ${t.error}` : ''}`),
    ],
  };
  const measured = await measure(system, checks, runs);
  const tasks = (await admin.listTasks(CLUSTER)).tasks.filter((t) => t.kind === 'failover');
  const report = taskReport(tasks, measured.kills, feed);
  return { ...measured, ...report, notes: [...report.notes, barrierNote(tasks)], breakdown: cfgserverBreakdown(tasks, measured.runs, measured.kills) };
}

/**
 * How long the failover's barrier took: its own time (the "in N ms" of the step's detail, from the
 * first read of the registrations to the last acknowledgement) and the whole step's recorded
 * durationMs (with the read of the cluster's policy and the step's fenced write).
 */
function barrierNote(tasks: Task[]): string {
  const steps = tasks.flatMap((t) => t.steps.filter((s) => s.step === 'barrier'));
  if (steps.length === 0) return 'cfgserver barrier: no barrier step recorded';
  const own = steps.flatMap((s) => {
    const m = /(?:in|done in|timed out after) (\d+) ms/.exec(s.detail);
    return m ? [Number(m[1])] : [];
  });
  const whole = steps.map((s) => s.durationMs ?? NaN).filter(Number.isFinite);
  const triple = (v: number[]) => {
    const s = stats(v);
    return `${s.min} / ${s.median} / ${s.max} ms`;
  };
  const slowest = steps.reduce((a, b) => ((b.durationMs ?? 0) > (a.durationMs ?? 0) ? b : a));
  return [
    `cfgserver barrier (${PROXIES} proxies connected to etcd), min / median / max over ${steps.length} failovers:`,
    `  waiting for the proxies ${triple(own)}; the whole step ${triple(whole)}; slowest step: "${slowest.detail}"`,
  ].join('\n');
}

/** Every controller replica sees every instance up, and no task is in flight. */
async function cfgserverSteady(admin: AdminService, addresses: string[]): Promise<boolean> {
  const [views, controllers, tasks] = await Promise.all([admin.health.read(CLUSTER), admin.listControllers(), admin.listTasks(CLUSTER)]);
  if (controllers.controllers.length !== 3 || views.size !== 3) return false;
  for (const view of views.values()) {
    if (!addresses.every((a) => view.get(a)?.reachable === true && view.get(a)?.down === false)) return false;
  }
  return tasks.tasks.every((t) => ['done', 'failed', 'refused'].includes(t.state));
}

/** The failover task kill k caused: the first created after it (and before the next kill). */
function taskOfKill(tasks: Task[], kills: Kill[], k: number): Task | undefined {
  const from = kills[k]!.wall;
  const until = kills[k + 1]?.wall ?? Infinity;
  return tasks.find((t) => Date.parse(t.createdAt) >= from && Date.parse(t.createdAt) < until);
}

function taskReport(tasks: Task[], kills: Kill[], feed: MasterFeed): Pick<Measured, 'spurious' | 'notes'> {
  const caused = new Set(kills.map((_, k) => taskOfKill(tasks, kills, k)).filter((t) => t !== undefined));
  const uncaused = tasks.filter((t) => !caused.has(t));
  const notDone = tasks.filter((t) => t.state !== 'done');
  const routeSpurious = spuriousChanges(feed.changes, kills);
  const notes = [
    `cfgserver: ${tasks.length} failover tasks for ${kills.length} kills; ${notDone.length} not done; ${uncaused.length} not caused by a kill; ${routeSpurious} route changes of master not caused by a kill`,
  ];
  for (const t of [...notDone, ...uncaused]) notes.push(`  task ${t.id}: ${t.state} — ${t.reason}${t.error ? ` — ${t.error}` : ''}`);
  // A spurious failover shows as a task (even one that was refused) or as a route change.
  return { spurious: Math.max(uncaused.length, routeSpurious), notes };
}

/** Median time from the kill to each step the leader recorded in the task. */
function cfgserverBreakdown(tasks: Task[], runs: Run[], kills: Kill[]): [string, number][] {
  const barrierDone = `every proxy (${PROXIES}) drained the new epoch: barrier done`;
  const rows: Record<string, number[]> = { 'failover task created (master judged down)': [], 'slave promoted (REPLICAOF NO ONE)': [], 'route written to etcd': [], [barrierDone]: [] };
  runs.forEach((run, k) => {
    const task = taskOfKill(tasks, kills, k);
    if (!task) return;
    const stepAt = (name: string) => task.steps.find((s) => s.step === name)?.at;
    rows['failover task created (master judged down)']!.push(Date.parse(task.createdAt) - run.kill.wall);
    const promoted = stepAt('promote');
    if (promoted) rows['slave promoted (REPLICAOF NO ONE)']!.push(Date.parse(promoted) - run.kill.wall);
    const published = stepAt('publish');
    if (published) rows['route written to etcd']!.push(Date.parse(published) - run.kill.wall);
    const drained = stepAt('barrier');
    if (drained) rows[barrierDone]!.push(Date.parse(drained) - run.kill.wall);
  });
  return Object.entries(rows).map(([what, values]) => [what, stats(values).median]);
}

// ---------------------------------------------------------------------------------------------
// (B) Redis Sentinel

const SENTINEL_EVENTS = ['+sdown', '+odown', '+promoted-slave', '+switch-master'] as const;

async function benchSentinel(dir: string, runs: number, downAfterMs: number, cleanup: Cleanup): Promise<Measured> {
  mkdirSync(dir, { recursive: true });
  const servers = await startShard(dir, cleanup);
  const [master, ...slaves] = [...servers.keys()] as [string, ...string[]];
  const checks = new RedisClients();
  cleanup.push(() => checks.close());
  const [host, port] = master.split(':') as [string, string];
  await checks.connect([...servers.keys()]);
  for (const s of slaves) await checks.at(s).call('REPLICAOF', host, port);
  await waitFor('both slaves to replicate from the master', () => topologyIs(checks, master, slaves), 30_000, 100);

  const sentinels: string[] = [];
  for (let i = 1; i <= 3; i++) sentinels.push(await startSentinel(dir, i, master, downAfterMs, cleanup));
  await waitFor('the sentinels to know each other and both slaves', () => sentinelsAgree(checks, sentinels, master), 30_000, 200);

  // (a): +switch-master on one sentinel, as a client subscribed to one would see it. The step
  // times for the breakdown come from all three (the leader alone says +promoted-slave).
  const feed = new MasterFeed(master);
  const events = new Map<string, number[]>(SENTINEL_EVENTS.map((e) => [e, []]));
  for (const [i, address] of sentinels.entries()) {
    const sub = await subscribe(address, [...SENTINEL_EVENTS], (channel, message) => {
      const at = performance.now();
      events.get(channel)!.push(at);
      if (channel === '+switch-master' && i === 0) feed.announce(switchedTo(message), at);
    });
    cleanup.push(() => sub.disconnect());
  }

  // The writer follows the +switch-master events, and after a failed write asks a sentinel for
  // the master (what Sentinel's client guidelines prescribe): whichever tells it first.
  let writerMaster = master;
  feed.onChange = (m) => (writerMaster = m);
  const ask = askMaster(checks.at(sentinels[0]!), (m) => (writerMaster = m));
  const writerClients = new RedisClients();
  cleanup.push(() => writerClients.close());
  await writerClients.connect([...servers.keys()]);
  const writer = new Writer(writerClients, () => writerMaster, ask);
  writer.start();
  cleanup.push(() => writer.stop());

  const system: System = {
    name: 'Sentinel',
    dir,
    feed,
    writer,
    servers,
    steady: (m) => sentinelsAgree(checks, sentinels, m),
    rejoined: (address, newMaster) => slaveOf(checks, address, newMaster),
    diagnose: async () => [
      `sentinel 1 last announced ${feed.current} (${feed.changes.length} +switch-master seen)`,
      ...(await describeShard(checks, [...servers.keys()])),
      ...(await Promise.all(sentinels.map(async (s) => {
        const m = fields(await checks.at(s).call('SENTINEL', 'MASTER', CLUSTER));
        return `sentinel ${s}: master ${m.get('ip')}:${m.get('port')} ${m.get('flags')}, failover state ${m.get('failover-state') ?? '-'}`;
      }))),
    ],
  };
  const measured = await measure(system, checks, runs);
  const spurious = spuriousChanges(feed.changes, measured.kills);
  return {
    ...measured,
    spurious,
    notes: [`Sentinel: ${feed.changes.length} +switch-master events (sentinel 1) for ${measured.kills.length} kills; ${spurious} not caused by a kill`],
    breakdown: sentinelBreakdown(events, measured.runs, measured.kills),
  };
}

/** Starts one sentinel from its own config file (Sentinel rewrites it as it learns). */
async function startSentinel(dir: string, n: number, master: string, downAfterMs: number, cleanup: Cleanup): Promise<string> {
  const port = await freePort();
  const conf = join(dir, `sentinel-${n}.conf`);
  const [host, masterPort] = master.split(':');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${CLUSTER} ${host} ${masterPort} 2`,
      `sentinel down-after-milliseconds ${CLUSTER} ${downAfterMs}`,
      `sentinel failover-timeout ${CLUSTER} 10000`,
      `sentinel parallel-syncs ${CLUSTER} 1`,
      '',
    ].join('\n'),
  );
  const proc = new ManagedProcess(`sentinel ${n}`, 'redis-server', [conf, '--sentinel'], join(dir, `sentinel-${n}.log`));
  cleanup.push(() => proc.stop());
  const address = `127.0.0.1:${port}`;
  const probe = new RedisClients();
  try {
    await waitFor(`sentinel ${n} on port ${port}`, async () => {
      if (!proc.running()) throw new Error(`sentinel exited; see ${proc.logFile}`);
      return (await probe.at(address).ping()) === 'PONG';
    }, 10_000, 50);
  } finally {
    probe.close();
  }
  return address;
}

function fields(reply: unknown): Map<string, string> {
  const flat = reply as string[];
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, flat[i + 1]!);
  return out;
}

/**
 * Every sentinel names `master`, sees it and both slaves up (no s_down, links ok), knows the two
 * other sentinels (needed for a quorum and a leader), and has no failover going on.
 */
async function sentinelsAgree(checks: RedisClients, sentinels: string[], master: string): Promise<boolean> {
  for (const s of sentinels) {
    const c = checks.at(s);
    const m = fields(await c.call('SENTINEL', 'MASTER', CLUSTER));
    if (`${m.get('ip')}:${m.get('port')}` !== master || m.get('flags') !== 'master') return false;
    if (m.get('num-other-sentinels') !== '2' || m.get('num-slaves') !== '2') return false;
    const replicas = ((await c.call('SENTINEL', 'REPLICAS', CLUSTER)) as unknown[]).map(fields);
    const ok = replicas.every((r) => r.get('flags') === 'slave' && r.get('master-link-status') === 'ok' && `${r.get('master-host')}:${r.get('master-port')}` === master);
    if (!ok) return false;
  }
  return true;
}

/** A subscriber connection (its own: a subscribed connection can send nothing else). */
async function subscribe(address: string, channels: string[], onMessage: (channel: string, message: string) => void): Promise<Redis> {
  const i = address.lastIndexOf(':');
  const sub = new Redis({ host: address.slice(0, i), port: Number(address.slice(i + 1)), retryStrategy: () => 20 });
  sub.on('error', () => undefined);
  sub.on('message', onMessage);
  await sub.subscribe(...channels);
  return sub;
}

/** "+switch-master <name> <old ip> <old port> <new ip> <new port>" -> "new ip:new port". */
function switchedTo(message: string): string {
  const [, , , ip, port] = message.split(' ');
  return `${ip}:${port}`;
}

/** SENTINEL get-master-addr-by-name, one request at a time, the answer given to `use`. */
function askMaster(sentinel: Redis, use: (master: string) => void): () => void {
  let asking = false;
  return () => {
    if (asking) return;
    asking = true;
    sentinel
      .call('SENTINEL', 'get-master-addr-by-name', CLUSTER)
      .then((reply) => {
        const [ip, port] = reply as [string, string];
        use(`${ip}:${port}`);
      })
      .catch(() => undefined)
      .finally(() => (asking = false));
  };
}

/** Median time from the kill to the first report of each Sentinel event (any sentinel). */
function sentinelBreakdown(events: Map<string, number[]>, runs: Run[], kills: Kill[]): [string, number][] {
  const labels: Record<string, string> = {
    '+sdown': '+sdown (a sentinel judges the master down)',
    '+odown': '+odown (quorum agrees)',
    '+promoted-slave': '+promoted-slave (REPLICAOF NO ONE done)',
    '+switch-master': '+switch-master (first sentinel to announce)',
  };
  return SENTINEL_EVENTS.map((event) => {
    const firsts: number[] = [];
    runs.forEach((run, k) => {
      const until = kills[k + 1]?.at ?? Infinity;
      const first = events.get(event)!.find((at) => at > run.kill.at && at < until);
      if (first !== undefined) firsts.push(first - run.kill.at);
    });
    return [labels[event]!, stats(firsts).median];
  });
}

// ---------------------------------------------------------------------------------------------
// The report

/** What was measured, on what: read at the start, since the checkout or the machine's load may change meanwhile. */
interface Setting {
  machine: string;
  code: string;
  loadAtStart: number;
}

function setting(): Setting {
  const redis = execFileSync('redis-server', ['--version']).toString().match(/v=(\S+)/)?.[1] ?? '?';
  const etcd = execFileSync('etcd', ['--version']).toString().match(/etcd Version: (\S+)/)?.[1] ?? '?';
  return {
    machine: `${availableParallelism()} CPUs (${cpus()[0]?.model.trim() ?? '?'}), node ${process.version}, redis ${redis}, etcd ${etcd}, ${process.platform}`,
    code: codeVersion(),
    loadAtStart: loadavg()[0]!,
  };
}

function settingLines(s: Setting): string[] {
  // Other work on the machine skews timings: the load average says whether there was any.
  return [`machine: ${s.machine}`, `cfgserver: ${s.code}`, `load average (1 min): ${s.loadAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end`];
}

/** Which cfgserver was measured: the commit, and whether src/ differed from it. (Controllers run dist/: build first.) */
function codeVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: packageRoot(), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = git('status', '--porcelain', '--', 'src') !== '';
    return `commit ${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes in src/' : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

function report(command: string, where: Setting, runs: number, downAfterMs: number, cfg: Measured, sen: Measured): string {
  const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');
  const triple = (values: number[]) => {
    const s = stats(values);
    return `${fmt(s.min)} / ${fmt(s.median)} / ${fmt(s.max)}`;
  };
  const cells = (...c: string[]) => `| ${c[0]!.padEnd(18)} | ${c[1]!.padEnd(5)} | ${c[2]!.padEnd(20)} | ${c[3]!.padEnd(20)} | ${c[4]!.padEnd(9)} |`;
  const row = (name: string, m: Measured) =>
    cells(name, `${m.runs.length}/${runs}`, triple(m.runs.map((r) => r.announced)), triple(m.runs.map((r) => r.firstWrite)), String(m.spurious));
  const ratio = (pick: (r: Run) => number) => stats(cfg.runs.map(pick)).median / stats(sen.runs.map(pick)).median;
  const verdict = (r: number) => (!Number.isFinite(r) ? '-' : `${r.toFixed(2)} (${r <= 0.8 ? 'meets' : 'misses'} ≤ 0.8)`);
  const perRun = (name: string, m: Measured) => `  ${name.padEnd(9)}  ${m.runs.map((r) => `${fmt(r.announced)}/${fmt(r.firstWrite)}`).join(' ')}`;
  const lines = [
    `Failover after kill -9 of the master: 1 master + 2 slaves, down-after ${downAfterMs} ms, ${runs} kills per system`,
    `command: ${command}`,
    ...settingLines(where),
    '',
    cells('system', 'runs', '(a) announced, ms', '(b) first write, ms', 'spurious'),
    cells('', '', 'min / median / max', 'min / median / max', 'failovers'),
    `|${'-'.repeat(20)}|${'-'.repeat(7)}|${'-'.repeat(22)}|${'-'.repeat(22)}|${'-'.repeat(11)}|`,
    row('cfgserver', cfg),
    row('Sentinel', sen),
    cells('cfgserver/Sentinel', '', verdict(ratio((r) => r.announced)), verdict(ratio((r) => r.firstWrite)), ''),
    '',
    '(a) kill -> the new master announced to the client (cfgserver: route change seen by a RouteWatcher;',
    '    Sentinel: +switch-master on the one sentinel the client subscribes to)',
    '(b) kill -> first successful SET on the new master by the continuous writer',
    '',
    'Each run, (a)/(b) in ms:',
    perRun('cfgserver', cfg),
    perRun('Sentinel', sen),
    '',
    'Where the time goes (median ms after the kill):',
    ...cfg.breakdown.map(([what, ms]) => `  cfgserver  ${fmt(ms).padStart(5)}  ${what}`),
    ...sen.breakdown.map(([what, ms]) => `  Sentinel   ${fmt(ms).padStart(5)}  ${what}`),
    '',
    ...cfg.notes,
    ...sen.notes,
    `old master back as a slave (median after the kill): cfgserver ${rejoinMedian(cfg)}, Sentinel ${rejoinMedian(sen)}`,
    `writes: cfgserver ${cfg.writes} ok / ${cfg.failedWrites} failed; Sentinel ${sen.writes} ok / ${sen.failedWrites} failed`,
  ];
  for (const [name, m] of [['cfgserver', cfg], ['Sentinel', sen]] as const) if (m.error) lines.push(`${name} STOPPED EARLY: ${m.error}`);
  return `\n${lines.join('\n')}\n`;
}

function rejoinMedian(m: Measured): string {
  const s = stats(m.runs.map((r) => r.rejoined / 1000));
  return Number.isFinite(s.median) ? `${s.median.toFixed(1)} s` : '-';
}

// ---------------------------------------------------------------------------------------------

/**
 * Runs one system's bench with its own cleanup, done as soon as it ends: the first system's
 * processes must not load the machine while the second is measured. `root` runs it on Ctrl-C.
 */
async function isolated<T>(root: Cleanup, bench: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup = new Cleanup();
  root.push(() => cleanup.run());
  try {
    return await bench(cleanup);
  } finally {
    await cleanup.run();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '20' },
      'down-after': { type: 'string', default: '1000' },
      keep: { type: 'boolean', default: false },
    },
  });
  const runs = Number(values.runs);
  const downAfterMs = Number(values['down-after']);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a positive integer');
  if (!Number.isInteger(downAfterMs) || downAfterMs < 500) throw new Error('--down-after takes milliseconds, at least 500 (cfgserver’s minimum)');
  const command = `node --import tsx bench/failover.ts ${process.argv.slice(2).join(' ')}`.trim();
  const where = setting();

  const dir = mkdtempSync(join(tmpdir(), 'cfgserver-bench-'));
  const cleanup = new Cleanup();
  cleanup.push(() => (values.keep ? log(`kept ${dir}`) : rmSync(dir, { recursive: true, force: true })));
  // Ctrl-C (or a kill) still stops every process started and removes the folder.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping everything`);
      void cleanup.run().finally(() => process.exit(130));
    });
  }
  try {
    log(`temporary folder ${dir}`);
    log(`(A) cfgserver: ${runs} kills`);
    const cfg = await isolated(cleanup, (c) => benchCfgserver(join(dir, 'cfgserver'), runs, downAfterMs, c));
    log(`(B) Sentinel: ${runs} kills`);
    const sen = await isolated(cleanup, (c) => benchSentinel(join(dir, 'sentinel'), runs, downAfterMs, c));
    process.stdout.write(report(command, where, runs, downAfterMs, cfg, sen));
    return cfg.error || sen.error ? 1 : 0;
  } finally {
    await cleanup.run();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
