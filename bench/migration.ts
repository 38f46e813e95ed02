/**
 * bench/migration — how fast slot migration moves keys, what clients lose meanwhile, and how long
 * one big key blocks Redis (issue 9, "Tests and measurements"; docs/migration.md).
 *
 *   node --import tsx bench/migration.ts [--keys N] [--large N] [--value-bytes B] [--big N] [--requests N] [--rate KEYS_PER_S] [--only idle,load,control,big]
 *
 * Each scenario gets its own cluster — etcd, two masters owning every slot, an empty third shard
 * s2, one controller process and one proxy process, all on 127.0.0.1 — stopped at its end whatever
 * happened (withCluster). Keys are written straight into the master that owns their slot.
 *   1. idle: `rebalance` (a third of the slots to s2) with --keys small keys, then with --large keys
 *      of --value-bytes each: wall time from the request to `done`, keys moved, keys/s;
 *   2. under load: the same move of --keys small keys while redis-benchmark (SET and GET, -c 50
 *      -P 16, --requests per round) runs through the proxy, against rounds of the same load with no
 *      migration: the throughput ratio, p99 and worst latency;
 *   3. big keys: one key of --big elements per type (hash, list, set, zset) on a source master, its
 *      slot migrated to s2 alone, while a PING every ms on its own connection to the source and to
 *      the target records the longest wait.
 * Progress goes to stderr, results to stdout. Run `npm run build` first: the controller and the
 * proxy run the compiled code in dist/.
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { migrationFinished } from '../src/model/migration.js';
import { slotOwners } from '../src/model/route.js';
import { keySlot } from '../src/model/slot.js';
import { splitAddress } from '../src/model/address.js';
import { startRedis, waitFor } from '../src/playground/processes.js';
import { AdminService } from '../src/service/admin-service.js';
import type { MigrationView } from '../src/service/migration-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { argNumber, argText, controllerAndProxy, redisBenchmark, run, withCluster, type BenchCluster } from './common.js';

const SMALL_KEYS = argNumber('keys', 1_000_000);
const LARGE_KEYS = argNumber('large', 100_000);
const LARGE_VALUE_BYTES = argNumber('value-bytes', 10 * 1024);
const BIG_ELEMENTS = argNumber('big', 1_000_000);
const LOAD_REQUESTS = argNumber('requests', 200_000);
/** --rate for the rebalance under load (0: none): the operator's lever, keys/s for the leader's mover. */
const LOAD_RATE = argNumber('rate', 0);
const LOAD_CLIENTS = 50;
const LOAD_PIPELINE = 16;
/** Baseline rounds of SET + GET without a migration. */
const BASELINE_ROUNDS = 3;
/** At most this many load rounds during one migration (each is bounded by --requests too). */
const MAX_LOAD_ROUNDS = 60;
/** No migration of this bench should take longer; past it the bench fails. */
const MIGRATION_TIMEOUT_MS = 8 * 60_000;
const SMALL_VALUE = 'v'.repeat(16);
/** The scenarios to run (a quick look at one of them). */
const ONLY = new Set(argText('only', 'idle,load,control,big').split(','));
/** The control mover's SCAN page. */
const BARE_SCAN_COUNT = 1000;

const GOAL_KEYS_PER_SECOND = 50_000;
const GOAL_MAX_THROUGHPUT_DROP = 0.2;

const CLUSTER = 'mig';
const say = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A cluster as each scenario starts it: two masters with every slot, an empty s2, a controller, a proxy. */
interface Scene {
  cluster: BenchCluster;
  admin: AdminService;
  target: string;
  proxyPort: number;
  /** A connection to a master, closed with the scene. */
  at(address: string): Redis;
}

async function withScene(body: (s: Scene) => Promise<void>): Promise<void> {
  await withCluster(CLUSTER, 2, async (cluster) => {
    const { dir, etcd, stops } = cluster;
    const client = createEtcd({ endpoints: etcd.endpoint });
    stops.push(async () => client.close());
    const admin = new AdminService(client, new Keys());
    const extra = await startRedis(dir);
    stops.push(extra.stop);
    const target = (await admin.addShard(CLUSTER, { master: extra.address })).id;
    const { proxyPort, at } = await controllerAndProxy(cluster, CLUSTER, admin);
    await body({ cluster, admin, target, proxyPort, at });
  });
}

/** Writes `count` string keys `prefix:i` into the masters owning their slots, MSET by MSET. */
async function fill(s: Scene, prefix: string, count: number, value: string): Promise<void> {
  const started = performance.now();
  const route = await s.admin.route(CLUSTER);
  const owners = slotOwners(route);
  const pairsPerCommand = Math.max(1, Math.min(1000, Math.floor((1 << 20) / value.length)));
  const pending = new Map<string, string[]>();
  let inFlight: Promise<unknown>[] = [];
  const flush = async (master: string) => {
    const args = pending.get(master)!;
    pending.set(master, []);
    inFlight.push(s.at(master).mset(...args));
    // Bounded memory: at most 32 commands awaiting replies.
    if (inFlight.length >= 32) {
      await Promise.all(inFlight);
      inFlight = [];
    }
  };
  for (let i = 0; i < count; i++) {
    const key = `${prefix}:${i}`;
    const master = route.shards[owners[keySlot(key, route.slotCount)]!]!.master;
    const args = pending.get(master) ?? [];
    pending.set(master, args);
    args.push(key, value);
    if (args.length >= pairsPerCommand * 2) await flush(master);
  }
  for (const [master, args] of pending) if (args.length > 0) await flush(master);
  await Promise.all(inFlight);
  say(`  filled ${count} keys of ${value.length} bytes in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

interface Timed {
  view: MigrationView;
  wallSeconds: number;
}

/** Asks for a migration and follows it to its end; the wall time counts from the request. */
async function migrate(s: Scene, ask: () => Promise<{ id: string }>): Promise<Timed> {
  const started = performance.now();
  const { id } = await ask();
  const view = await waitFor(`migration ${id} to end`, async () => {
    const v = await s.admin.migrations.get(CLUSTER, id);
    return migrationFinished(v) ? v : null;
  }, MIGRATION_TIMEOUT_MS, 100);
  const wallSeconds = (performance.now() - started) / 1000;
  if (view.state !== 'done') throw new Error(`migration ${id} ended ${view.state}: ${view.error ?? ''}`);
  return { view, wallSeconds };
}

const rebalance = (s: Scene, rate = 0) => migrate(s, () => s.admin.migrations.rebalance(CLUSTER, { requestedBy: 'bench/migration', rate }));

/** Where the time of a migration went: each step's duration, in seconds. */
function stepsText(view: MigrationView): string {
  return view.steps.map((st) => `${st.step} ${((st.durationMs ?? 0) / 1000).toFixed(1)}`).join(', ');
}

/** Keys on each master: nothing lost, nothing doubled. */
async function placement(s: Scene): Promise<string> {
  const route = await s.admin.route(CLUSTER);
  const sizes = await Promise.all(route.shards.map(async (sh) => `${sh.id} ${await s.at(sh.master).dbsize()}`));
  return sizes.join(', ');
}

/** `stored`: what the sources held, for the line. */
function idleLines(what: string, t: Timed, stored: string): string[] {
  const rate = t.view.keysMoved / t.wallSeconds;
  return [
    `${what}: ${t.view.keysMoved} keys (of ${stored}) moved in ${t.wallSeconds.toFixed(1)} s from the request to done: ${Math.round(rate)} keys/s (the record's keysPerSecond, from the moving epoch: ${t.view.keysPerSecond ?? '-'}), ${t.view.passes} passes`,
    `  steps (s): ${stepsText(t.view)}`,
  ];
}

async function idleScenario(label: string, prefix: string, keys: number, value: string): Promise<{ lines: string[]; keysPerSecond: number }> {
  let lines: string[] = [];
  let keysPerSecond = 0;
  await withScene(async (s) => {
    say(`${label}: filling`);
    await fill(s, prefix, keys, value);
    say(`${label}: rebalance`);
    const t = await rebalance(s);
    keysPerSecond = t.view.keysMoved / t.wallSeconds;
    lines = [...idleLines(label, t, `${keys}`), `  keys per shard after: ${await placement(s)}`];
  });
  return { lines, keysPerSecond };
}

interface LoadRound {
  test: 'set' | 'get';
  /** Wall-clock start and end (ms since the epoch), to place the round among the migration's steps. */
  startedAt: number;
  endedAt: number;
  rps: number;
  p99: number;
  max: number;
}

async function loadRound(s: Scene, test: 'set' | 'get'): Promise<LoadRound> {
  const startedAt = Date.now();
  const result = await redisBenchmark(s.proxyPort, test, LOAD_PIPELINE, LOAD_CLIENTS, LOAD_REQUESTS);
  return { test, startedAt, endedAt: Date.now(), ...result };
}

/**
 * Each round during the migration with the steps it overlapped: where the throughput went. A
 * step's record carries when it ended and how long it took.
 */
function timelineLines(rounds: LoadRound[], view: MigrationView, requestedAt: number): string[] {
  const steps = view.steps.map((st) => ({ step: st.step, end: Date.parse(st.at), start: Date.parse(st.at) - (st.durationMs ?? 0) }));
  const at = (ms: number) => ((ms - requestedAt) / 1000).toFixed(1).padStart(5);
  return [
    '  rounds during the migration (s from the request), with the steps they overlapped:',
    ...rounds.map((r) => {
      const overlapped = steps.filter((st) => st.start < r.endedAt && st.end > r.startedAt && st.end > st.start).map((st) => st.step);
      return `    ${at(r.startedAt)} - ${at(r.endedAt)}  ${r.test.toUpperCase().padEnd(3)} ${String(Math.round(r.rps)).padStart(7)} ops/s  ${overlapped.join(', ') || '(after done)'}`;
    }),
  ];
}

/** Throughput over rounds of equal size (requests / total time), the worst p99 and the worst latency. */
function summary(rounds: LoadRound[], test: 'set' | 'get'): { rps: number; p99: number; max: number; rounds: number } {
  const mine = rounds.filter((r) => r.test === test);
  const seconds = mine.reduce((t, r) => t + LOAD_REQUESTS / r.rps, 0);
  return { rps: (mine.length * LOAD_REQUESTS) / seconds, p99: Math.max(...mine.map((r) => r.p99)), max: Math.max(...mine.map((r) => r.max)), rounds: mine.length };
}

/** What runs while the load rounds measure: a migration, and how many keys it moved and how fast. */
interface Mover {
  label: string;
  run(s: Scene): Promise<{ keys: number; seconds: number; lines: string[] }>;
  /** The rounds during the move, placed among its steps (when it has steps). */
  timeline?(rounds: LoadRound[]): string[];
}

/** cfgserver's own rebalance: survey, hold, moves by the mover and by the proxies on access, commit. */
function cfgserverMover(): Mover {
  let requestedAt = 0;
  let view: MigrationView | null = null;
  return {
    label: LOAD_RATE > 0 ? `cfgserver rebalance --rate ${LOAD_RATE}` : 'cfgserver rebalance',
    async run(s) {
      requestedAt = Date.now();
      const t = await rebalance(s, LOAD_RATE);
      view = t.view;
      return { keys: t.view.keysMoved, seconds: t.wallSeconds, lines: [...idleLines(LOAD_RATE > 0 ? `under load, --rate ${LOAD_RATE}` : 'under load', t, `${SMALL_KEYS} and those redis-benchmark wrote`), `  keys per shard after: ${await placement(s)}`] };
    },
    timeline: (rounds) => (view ? timelineLines(rounds, view, requestedAt) : []),
  };
}

/**
 * The control: the least work any mover can do to move the same keys — per source master, `SCAN`
 * and one `MIGRATE … KEYS` (a move, not a copy) per page of keys of the moving slots, with no
 * survey, no hold, no route change and no proxy involved (clients keep reading and writing the
 * source; keys they write after their page was scanned stay behind). What the clients lose to it
 * is what moving that many keys costs on this machine, whoever moves them.
 */
function bareMover(): Mover {
  return {
    label: 'bare MIGRATE (control)',
    async run(s) {
      const plan = await s.admin.migrations.rebalance(CLUSTER, { requestedBy: 'bench/migration', dryRun: true });
      const route = await s.admin.route(CLUSTER);
      const masterOf = (id: string) => route.shards.find((sh) => sh.id === id)!.master;
      const started = performance.now();
      const moved = await Promise.all(plan.moves.map(async (move) => {
        const moving = new Set<number>();
        for (const r of move.slots) for (let slot = r[0]; slot <= (r[1] ?? r[0]); slot++) moving.add(slot);
        const { host, port } = splitAddress(masterOf(move.to));
        const source = s.at(masterOf(move.from));
        let cursor = '0';
        let keys = 0;
        do {
          const [next, page] = (await source.scan(cursor, 'COUNT', BARE_SCAN_COUNT)) as [string, string[]];
          cursor = next;
          const mine = page.filter((k) => moving.has(keySlot(k, route.slotCount)));
          if (mine.length > 0 && (await source.call('MIGRATE', host, String(port), '', '0', '10000', 'KEYS', ...mine)) === 'OK') keys += mine.length;
        } while (cursor !== '0');
        return keys;
      }));
      const seconds = (performance.now() - started) / 1000;
      const keys = moved.reduce((a, b) => a + b, 0);
      return { keys, seconds, lines: [`control, bare MIGRATE: ${keys} keys moved in ${seconds.toFixed(1)} s: ${Math.round(keys / seconds)} keys/s (SCAN COUNT ${BARE_SCAN_COUNT}, one MIGRATE per page, the sources at once)`] };
    },
  };
}

/** Baseline rounds, then rounds while `mover` runs, in a scene of its own; the table of both. */
async function loadScenario(mover: Mover): Promise<{ lines: string[]; worstDrop: number; ratios: Record<'set' | 'get', number> }> {
  const lines: string[] = [];
  let worstDrop = 0;
  const ratios = { set: 0, get: 0 };
  await withScene(async (s) => {
    say(`under load (${mover.label}): filling`);
    await fill(s, 'small', SMALL_KEYS, SMALL_VALUE);
    say(`under load (${mover.label}): baseline rounds`);
    const baseline: LoadRound[] = [];
    for (let i = 0; i < BASELINE_ROUNDS; i++) for (const test of ['set', 'get'] as const) baseline.push(await loadRound(s, test));
    say(`under load (${mover.label}): the move with the same rounds running`);
    const during: LoadRound[] = [];
    let finished = false;
    const moving = mover.run(s).finally(() => {
      finished = true;
    });
    moving.catch(() => undefined);
    for (let i = 0; !finished && i < MAX_LOAD_ROUNDS; i++) {
      // Only rounds that start before the move ends count (the last one may outlast it).
      for (const test of ['set', 'get'] as const) if (!finished) during.push(await loadRound(s, test));
    }
    const result = await moving;
    lines.push(...result.lines);
    lines.push(...(mover.timeline?.(during) ?? []));
    lines.push(`  redis-benchmark through the proxy: -c ${LOAD_CLIENTS} -P ${LOAD_PIPELINE} -n ${LOAD_REQUESTS} -r 100000 per round`);
    lines.push('  test  rounds  baseline ops/s  during ops/s  ratio  p99 ms base/during  worst ms base/during');
    for (const test of ['set', 'get'] as const) {
      const b = summary(baseline, test);
      const d = summary(during, test);
      const ratio = d.rps / b.rps;
      ratios[test] = ratio;
      worstDrop = Math.max(worstDrop, 1 - ratio);
      lines.push(`  ${test.toUpperCase().padEnd(4)}  ${String(b.rounds).padStart(2)}/${String(d.rounds).padEnd(2)}  ${String(Math.round(b.rps)).padStart(14)}  ${String(Math.round(d.rps)).padStart(12)}  ${ratio.toFixed(2)}x  ${b.p99.toFixed(1).padStart(8)} / ${d.p99.toFixed(1).padEnd(8)}  ${b.max.toFixed(1).padStart(8)} / ${d.max.toFixed(1)}`);
    }
  });
  return { lines, worstDrop, ratios };
}

/** PING every ms on its own connection; the longest wait for a PONG. Bounded in count and time. */
function pinger(address: string): { stop(): Promise<number> } {
  const { host, port } = splitAddress(address);
  const client = new Redis({ host, port, maxRetriesPerRequest: 1, commandTimeout: 60_000 });
  client.on('error', () => undefined);
  let stop = false;
  let longest = 0;
  const deadline = Date.now() + MIGRATION_TIMEOUT_MS;
  const loop = (async () => {
    for (let i = 0; !stop && Date.now() < deadline && i < 1_000_000; i++) {
      const sent = performance.now();
      await client.ping();
      longest = Math.max(longest, performance.now() - sent);
      await sleep(1);
    }
  })();
  return {
    async stop() {
      stop = true;
      await loop.finally(() => client.disconnect());
      return longest;
    },
  };
}

/** The longest command Redis itself saw since LATENCY RESET (latency-monitor-threshold 1 ms), in ms. */
async function longestCommand(client: Redis): Promise<number> {
  const rows = (await client.call('LATENCY', 'LATEST')) as [string, number, number, number][];
  return Math.max(0, ...rows.filter((r) => r[0] === 'command').map((r) => Number(r[3])));
}

const BIG_TYPES = {
  hash: { lua: "redis.call('HSET', KEYS[1], 'f' .. i, i)", size: 'HLEN' },
  list: { lua: "redis.call('RPUSH', KEYS[1], i)", size: 'LLEN' },
  set: { lua: "redis.call('SADD', KEYS[1], 'm' .. i)", size: 'SCARD' },
  zset: { lua: "redis.call('ZADD', KEYS[1], i, 'm' .. i)", size: 'ZCARD' },
  // 64 bytes per element: a string of 64 MB for a million.
  string: { lua: "redis.call('APPEND', KEYS[1], '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef')", size: 'STRLEN', per: 64 },
} as const;

async function bigKeyScenario(): Promise<{ lines: string[] }> {
  const lines: string[] = [];
  await withScene(async (s) => {
    const route = await s.admin.route(CLUSTER);
    const owners = slotOwners(route);
    const source = route.shards[0]!;
    const targetMaster = route.shards.find((sh) => sh.id === s.target)!.master;
    // A key name per type whose slot the first shard owns.
    const keyOf = (type: string) => {
      for (let n = 0; n < 10_000; n++) {
        const key = `big:${type}:${n}`;
        if (owners[keySlot(key, route.slotCount)] === 0) return key;
      }
      throw new Error(`no key name for ${type} on ${source.id}`);
    };
    for (const address of [source.master, targetMaster]) await s.at(address).config('SET', 'latency-monitor-threshold', '1');
    lines.push(`big keys: ${BIG_ELEMENTS} elements each (the string: ${BIG_ELEMENTS * 64} bytes), its slot alone migrated ${source.id} -> ${s.target}; longest wait of a PING every ms on its own connection, and Redis's own longest command (LATENCY LATEST)`);
    lines.push('  type  wall s  PING source ms  PING target ms  longest command source/target ms');
    for (const [type, spec] of Object.entries(BIG_TYPES)) {
      const key = keyOf(type);
      const started = performance.now();
      const chunk = 100_000;
      for (let from = 1; from <= BIG_ELEMENTS; from += chunk) {
        await s.at(source.master).eval(`for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do ${spec.lua} end`, 1, key, from, Math.min(BIG_ELEMENTS, from + chunk - 1));
      }
      say(`big keys: ${type} ${key} filled in ${((performance.now() - started) / 1000).toFixed(1)} s; migrating its slot`);
      for (const address of [source.master, targetMaster]) await s.at(address).call('LATENCY', 'RESET');
      const pings = [pinger(source.master), pinger(targetMaster)];
      const slot = keySlot(key, route.slotCount);
      const t = await migrate(s, () => s.admin.migrations.migrate(CLUSTER, { slots: String(slot), to: s.target, requestedBy: 'bench/migration' }));
      const [pingSource, pingTarget] = await Promise.all(pings.map((p) => p.stop()));
      const [cmdSource, cmdTarget] = await Promise.all([source.master, targetMaster].map((a) => longestCommand(s.at(a))));
      const arrived = Number(await s.at(targetMaster).call(spec.size, key));
      if (arrived !== BIG_ELEMENTS * ('per' in spec ? spec.per : 1) || (await s.at(source.master).exists(key)) !== 0) throw new Error(`${key}: ${arrived} elements on the target, and still on the source?`);
      lines.push(`  ${type.padEnd(4)}  ${t.wallSeconds.toFixed(1).padStart(6)}  ${pingSource.toFixed(0).padStart(14)}  ${pingTarget.toFixed(0).padStart(14)}  ${String(cmdSource).padStart(10)} / ${cmdTarget}`);
      // The key is gone from the source; drop it from the target too, so that each type is alone.
      await s.at(targetMaster).unlink(key);
    }
  });
  return { lines };
}

async function machineLine(): Promise<string> {
  const { stdout: redisVersion } = await run('redis-server', ['--version']);
  const { stdout: commit } = await run('git', ['rev-parse', '--short', 'HEAD']).catch(() => ({ stdout: '?' }));
  return `machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), node ${process.version}, ${redisVersion.trim().split(' ').slice(0, 3).join(' ')}; commit ${commit.trim()}; load average at start ${loadavg()[0]!.toFixed(2)}`;
}

async function main(): Promise<void> {
  const machine = await machineLine();
  const started = performance.now();
  const small = ONLY.has('idle') ? await idleScenario('idle, small keys', 'small', SMALL_KEYS, SMALL_VALUE) : null;
  const large = ONLY.has('idle') ? await idleScenario(`idle, ${LARGE_VALUE_BYTES}-byte values`, 'large', LARGE_KEYS, 'x'.repeat(LARGE_VALUE_BYTES)) : null;
  const load = ONLY.has('load') ? await loadScenario(cfgserverMover()) : null;
  const control = ONLY.has('control') ? await loadScenario(bareMover()) : null;
  const big = ONLY.has('big') ? await bigKeyScenario() : null;

  console.log(`\nbench/migration: rebalance of 2 shards onto an empty third (a third of the slots move), one controller, one proxy; ${SMALL_KEYS} small keys (16-byte values), ${LARGE_KEYS} keys of ${LARGE_VALUE_BYTES} bytes`);
  console.log(machine);
  console.log(`took ${((performance.now() - started) / 1000).toFixed(0)} s; load average at the end ${loadavg()[0]!.toFixed(2)}\n`);
  for (const part of [small, large, load, control, big]) if (part) for (const line of [...part.lines, '']) console.log(line);
  const meets = (ok: boolean) => (ok ? 'met' : 'MISSED');
  if (small) console.log(`goal: >= ${GOAL_KEYS_PER_SECOND} small keys/s idle: ${Math.round(small.keysPerSecond)} — ${meets(small.keysPerSecond >= GOAL_KEYS_PER_SECOND)}`);
  if (load && control) {
    console.log(`cfgserver's rebalance against the bare MIGRATE control, client throughput while each ran: SET ${(load.ratios.set / control.ratios.set).toFixed(2)}x, GET ${(load.ratios.get / control.ratios.get).toFixed(2)}x`);
  }
  if (load) console.log(`goal: client throughput drop <= ${GOAL_MAX_THROUGHPUT_DROP * 100}%: worst drop ${(load.worstDrop * 100).toFixed(0)}% — ${meets(load.worstDrop <= GOAL_MAX_THROUGHPUT_DROP)}`);
}

await main();
