/**
 * bench/split — a shard halved by a split (replication, docs/split.md) against the same halving by
 * slot migration (docs/migration.md), on the same data, in one run (issue 14, "Tests and measurements").
 *
 *   node --import tsx bench/split.ts [--keys N] [--large N] [--value-bytes B] [--load idle|benchmark|both]
 *
 * Each scenario gets its own cluster — etcd, one master owning every slot, an empty instance, one
 * controller process and one proxy process, all on 127.0.0.1 — stopped at its end whatever happened
 * (withCluster). Both Redis instances run with Redis 7.0's own defaults for what the split changes
 * for its full sync (split-sync-settings.ts: a 5 s diskless-sync delay, RDB compression, loading
 * through the disk), as a production instance would. The master is filled straight (MSET; large
 * values are random bytes, incompressible), then the upper half of the slots goes to a new shard
 * on the empty instance.
 *
 * Clients, through the proxy: a probe of two clients that SET one key at a time each — one on keys
 * of the moving slots, one on keys of the others — for the whole move; under `benchmark` load also
 * `redis-benchmark -c 10 -t set -r 10000` (unthrottled, keys of every slot). From the probe: the
 * write pause at the cut-over (the longest acknowledged write in flight between the split's hold
 * and commit, moving slots apart from the others), and the trim's cost (probe latency while the
 * trim runs against the second before the request). Reported per scenario: the wall time from the
 * request until the new shard owns the slots and until done (the trim included, for the split),
 * keys/s and MB/s over the keys the new shard ends with, the split's steps. Progress goes to
 * stderr, results to stdout. Run `npm run build` first: the controller and the proxy run dist/.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { migrationFinished } from '../src/model/migration.js';
import { keySlot } from '../src/model/slot.js';
import { splitFinished, type SplitRecord } from '../src/model/split.js';
import { startRedis, waitFor } from '../src/playground/processes.js';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { RedisPool } from '../src/redis/pool.js';
import { argNumber, argText, controllerAndProxy, percentile, withCluster } from './common.js';
import { timeFullSync } from './full-sync.js';
import { SYNC_SETTINGS } from '../src/controller/splits/split-sync-settings.js';

const SMALL_KEYS = argNumber('keys', 1_000_000);
const LARGE_KEYS = argNumber('large', 100_000);
const LARGE_VALUE_BYTES = argNumber('value-bytes', 10 * 1024);
const LOADS = (argText('load', 'both') === 'both' ? ['idle', 'benchmark'] : [argText('load', 'both')]) as Load[];
const TIMEOUT_MS = 10 * 60_000;
const CLUSTER = 'split';
const say = (line: string) => process.stderr.write(`${line}\n`);
type Load = 'idle' | 'benchmark';

/** Redis 7.0's defaults for the settings startRedis (tests, playground) changes and a split changes for its sync. */
const REDIS_DEFAULTS: [string, string][] = [['repl-diskless-sync', 'yes'], ['repl-diskless-sync-delay', '5'], ['repl-diskless-load', 'disabled'], ['rdbcompression', 'yes']];

interface Scene {
  admin: AdminService;
  source: string;
  empty: string;
  proxyPort: number;
  slotCount: number;
  pool: RedisPool;
  at(address: string): Redis;
}

async function withScene(body: (s: Scene) => Promise<void>): Promise<void> {
  await withCluster(CLUSTER, 1, async (bench) => {
    const { dir, etcd, shards, stops } = bench;
    const client = createEtcd({ endpoints: etcd.endpoint });
    stops.push(async () => client.close());
    // A pool for the split's checks of the instances.
    const pool = new RedisPool({ timeoutMs: 5000 });
    stops.push(async () => pool.close());
    const admin = new AdminService(client, new Keys(), pool);
    const empty = await startRedis(dir);
    stops.push(empty.stop);
    const { proxyPort, at } = await controllerAndProxy(bench, CLUSTER, admin);
    const source = shards[0]!.address;
    for (const address of [source, empty.address]) await at(address).config('SET', ...REDIS_DEFAULTS.flat());
    const { slotCount } = await admin.route(CLUSTER);
    await body({ admin, source, empty: empty.address, proxyPort, slotCount, pool, at });
  });
}

/** Values of `bytes`: 16 bytes of 'v' for small keys; for large ones slices of random bytes (incompressible, LZF finds nothing). */
function values(bytes: number): () => string | Buffer {
  if (bytes <= 64) return () => 'v'.repeat(bytes);
  const pool = randomBytes(4 << 20);
  let at = 0;
  return () => {
    at = (at + 7919) % (pool.length - bytes);
    return pool.subarray(at, at + bytes);
  };
}

async function fill(s: Scene, count: number, valueBytes: number): Promise<void> {
  const started = performance.now();
  const value = values(valueBytes);
  const pairs = Math.max(1, Math.min(1000, Math.floor((1 << 20) / valueBytes)));
  let args: (string | Buffer)[] = [];
  let inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    args.push(`k:${i}`, value());
    if (args.length >= pairs * 2 || i === count - 1) {
      inFlight.push(s.at(s.source).mset(...args));
      args = [];
      if (inFlight.length >= 32) {
        await Promise.all(inFlight);
        inFlight = [];
      }
    }
  }
  await Promise.all(inFlight);
  say(`  filled ${count} keys of ${valueBytes} bytes in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** The slots that move: the upper half, as a split and the bench's migration take them. */
function moving(slot: number, slotCount: number): boolean {
  return slot >= slotCount / 2;
}

interface Write {
  start: number;
  end: number;
  moving: boolean;
}

/** Wall-clock milliseconds with sub-millisecond steps, comparable with the controller's step times. */
const now = () => performance.timeOrigin + performance.now();

/** Two clients SET one key at a time each through the proxy, one on moving slots, one on the others; every acknowledged write kept. */
function probe(s: Scene) {
  const keysOf = (wantMoving: boolean) => {
    const keys: string[] = [];
    for (let i = 0; keys.length < 1000; i++) if (moving(keySlot(`p:${i}`, s.slotCount), s.slotCount) === wantMoving) keys.push(`p:${i}`);
    return keys;
  };
  let stop = false;
  let errors = 0;
  const writes: Write[] = [];
  const clients = [true, false].map(() => new Redis({ port: s.proxyPort, host: '127.0.0.1', maxRetriesPerRequest: 0 }));
  clients.forEach((c) => c.on('error', () => undefined));
  const deadline = Date.now() + TIMEOUT_MS;
  const loops = [true, false].map(async (isMoving, k) => {
    const keys = keysOf(isMoving);
    for (let i = 0; !stop && Date.now() < deadline; i++) {
      const start = now();
      try {
        await clients[k]!.set(keys[i % keys.length]!, 'x');
        writes.push({ start, end: now(), moving: isMoving });
      } catch {
        errors++;
      }
    }
  });
  return {
    async stop() {
      stop = true;
      await Promise.all(loops);
      clients.forEach((c) => c.disconnect());
      return { writes, errors };
    },
  };
}

/** redis-benchmark through the proxy until stopped: 10 clients, SET of 10,000 keys over every slot, unthrottled. */
function benchmarkLoad(port: number) {
  const child = spawn('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-c', '10', '-n', '2000000000', '-r', '10000', '-t', 'set', '-q'], { stdio: 'ignore' });
  return { stop: () => child.kill('SIGKILL') };
}

const ms = (w: Write) => w.end - w.start;
const longest = (ws: Write[]) => Math.round(Math.max(0, ...ws.map(ms)));
const latency = (ws: Write[]) => `p50 ${percentile(ws.map(ms), 50).toFixed(2)} / p99 ${percentile(ws.map(ms), 99).toFixed(1)} / max ${longest(ws)} ms (${ws.length} writes)`;
const during = (ws: Write[], from: number, to: number) => ws.filter((w) => w.start <= to && w.end >= from);

interface Outcome {
  /** Wall-clock ms of the request. */
  requested: number;
  owned: number;
  /** Seconds from the request until the leader started the first step (its pick-up: issue 11 removes it). */
  pickedUp: number;
  done: number;
  keys: number;
  lines: string[];
  split?: SplitRecord;
  /** Seconds of the same full sync alone (bySplit only): no split can own its slots sooner. */
  floor?: number;
}

/**
 * The floor under any split's time here: the same full sync alone (REPLICAOF of the empty instance,
 * the split's sync settings, its acknowledgement asked as the split does), timed until the stream
 * flows; then the instance detached and emptied and the settings put back, for the split to come.
 */
async function fullSyncAlone(s: Scene): Promise<number> {
  const source = s.at(s.source);
  const replica = s.at(s.empty);
  const restore = async () => {
    for (const address of [s.source, s.empty]) await s.at(address).config('SET', ...REDIS_DEFAULTS.flat());
  };
  await source.config('SET', ...Object.entries(SYNC_SETTINGS.source).flat());
  await replica.config('SET', ...Object.entries(SYNC_SETTINGS.shard).flat());
  try {
    const t = await timeFullSync({ source, replica, sourcePort: Number(s.source.split(':')[1]), replicaAddress: s.empty, pool: s.pool, kick: true });
    return t.streamed / 1000;
  } finally {
    await replica.replicaof('NO', 'ONE');
    await replica.flushall('SYNC');
    await restore();
  }
}

async function bySplit(s: Scene): Promise<Outcome> {
  say('  the full sync alone first (the floor)');
  const floor = await fullSyncAlone(s);
  const started = performance.now();
  const requested = Date.now();
  const { id } = await s.admin.splits.split(CLUSTER, { shard: 's0', newShard: 's1', master: s.empty, requestedBy: 'bench/split' });
  let owned = 0;
  const end = await waitFor(`split ${id} to end`, async () => {
    const split = (await s.admin.splits.list(CLUSTER)).splits.find((x) => x.id === id)!;
    if (!owned && split.steps.some((st) => st.step === 'commit')) owned = (performance.now() - started) / 1000;
    return splitFinished(split) ? split : null;
  }, TIMEOUT_MS, 50);
  if (end.state !== 'done') throw new Error(`split ${id} ended ${end.state}: ${end.error ?? ''}`);
  // When each step was recorded, from the request: the waits between steps show too.
  const steps = end.steps.map((st) => `${st.step} ${((Date.parse(st.at) - requested) / 1000).toFixed(2)}`).join(', ');
  return { requested, owned, pickedUp: pickUp(end.steps, requested), done: (performance.now() - started) / 1000, keys: await s.at(s.empty).dbsize(), split: end, floor, lines: [`  the same full sync alone, just before (no controller: REPLICAOF until the stream flows): ${floor.toFixed(2)} s`, `  hold ${end.holdMs} ms; each step recorded at (s from the request): ${steps}; trimmed ${end.trim.source.removed} + ${end.trim.shard.removed} keys`] };
}

async function byMigration(s: Scene): Promise<Outcome> {
  const shard = await s.admin.addShard(CLUSTER, { master: s.empty, id: 's1' });
  const slots = `${s.slotCount / 2}-${s.slotCount - 1}`;
  const started = performance.now();
  const requested = Date.now();
  const { id } = await s.admin.migrations.migrate(CLUSTER, { slots, to: shard.id, requestedBy: 'bench/split' });
  const end = await waitFor(`migration ${id} to end`, async () => {
    const m = await s.admin.migrations.get(CLUSTER, id);
    return migrationFinished(m) ? m : null;
  }, TIMEOUT_MS, 50);
  if (end.state !== 'done') throw new Error(`migration ${id} ended ${end.state}: ${end.error ?? ''}`);
  const seconds = (performance.now() - started) / 1000;
  const steps = end.steps.map((st) => `${st.step} ${((st.durationMs ?? 0) / 1000).toFixed(2)}`).join(', ');
  return { requested, owned: seconds, pickedUp: pickUp(end.steps, requested), done: seconds, keys: await s.at(s.empty).dbsize(), lines: [`  steps (s): ${steps}`] };
}

/** When the first step started (its record time less its duration), in seconds from the request. */
function pickUp(steps: { at: string; durationMs?: number | null }[], requested: number): number {
  const first = steps[0];
  return first ? Math.max(0, (Date.parse(first.at) - (first.durationMs ?? 0) - requested) / 1000) : 0;
}

interface Result {
  lines: string[];
  rate: number;
  /** Keys/s from the leader's pick-up of the request to the new owner. */
  rateFromPickUp: number;
  cutOverMoving: number | null;
  owned: number;
  floor: number | null;
}

/** What the probe saw: at the split's cut-over (moving slots apart), over the whole move, and during the trim. */
function probeLines(o: Outcome, writes: Write[]): { lines: string[]; cutOverMoving: number | null } {
  const before = during(writes, o.requested - 1000, o.requested);
  const lines = [`  probe before the request: ${latency(before)}`];
  const movingAll = writes.filter((w) => w.moving && w.start >= o.requested);
  const otherAll = writes.filter((w) => !w.moving && w.start >= o.requested);
  lines.push(`  probe over the whole move, longest write: moving slots ${longest(movingAll)} ms, other slots ${longest(otherAll)} ms`);
  const at = (step: string) => o.split?.steps.find((x) => x.step === step)?.at;
  const hold = at('hold');
  const commit = at('commit');
  const trim = at('trim');
  if (!hold || !commit) return { lines, cutOverMoving: null };
  const window = during(writes, Date.parse(hold), Date.parse(commit));
  const cutOverMoving = longest(window.filter((w) => w.moving));
  lines.push(`  write pause at the cut-over (writes in flight between hold and commit): moving slots ${cutOverMoving} ms, other slots ${longest(window.filter((w) => !w.moving))} ms`);
  // Writes started after the commit: the held ones released by it are the cut-over's, not the trim's.
  const trimming = writes.filter((w) => w.start > Date.parse(commit) && trim !== undefined && w.start <= Date.parse(trim));
  if (trim) lines.push(`  probe during the trim (${((Date.parse(trim) - Date.parse(commit)) / 1000).toFixed(1)} s): ${latency(trimming)}`);
  return { lines, cutOverMoving };
}

async function scenario(label: string, how: (s: Scene) => Promise<Outcome>, keys: number, valueBytes: number, load: Load): Promise<Result> {
  let out: Result = { lines: [], rate: 0, rateFromPickUp: 0, cutOverMoving: null, owned: 0, floor: null };
  await withScene(async (s) => {
    say(`${label}: filling`);
    await fill(s, keys, valueBytes);
    const used = Number(/used_memory:(\d+)/.exec(await s.at(s.source).info('memory'))?.[1] ?? 0);
    say(`${label}: moving half the slots`);
    const writes = probe(s);
    const background = load === 'benchmark' ? benchmarkLoad(s.proxyPort) : null;
    await new Promise((r) => setTimeout(r, 1500));
    const o = await how(s).finally(() => background?.stop());
    const w = await writes.stop();
    const rate = o.keys / o.owned;
    const seen = probeLines(o, w.writes);
    out = {
      rate,
      rateFromPickUp: o.keys / (o.owned - o.pickedUp),
      cutOverMoving: seen.cutOverMoving,
      owned: o.owned,
      floor: o.floor ?? null,
      lines: [
        `${label}: ${o.keys} keys on the new shard (source ${(used / 1e6).toFixed(0)} MB used); it owned its slots ${o.owned.toFixed(2)} s after the request (${Math.round(rate)} keys/s, ${((rate * valueBytes) / 1e6).toFixed(1)} MB/s of values), done after ${o.done.toFixed(2)} s; the leader picked it up after ${o.pickedUp.toFixed(2)} s; probe errors ${w.errors}`,
        ...o.lines,
        ...seen.lines,
      ],
    };
  });
  return out;
}

async function main(): Promise<void> {
  const lines: string[] = [`bench/split: ${SMALL_KEYS} small keys, ${LARGE_KEYS} keys of ${LARGE_VALUE_BYTES} bytes; load: ${LOADS.join(', ')}`];
  for (const load of LOADS) {
    for (const [what, keys, bytes] of [['small', SMALL_KEYS, 16], ['large', LARGE_KEYS, LARGE_VALUE_BYTES]] as const) {
      if (keys === 0) continue;
      const split = await scenario(`split, ${what} keys, ${load}`, bySplit, keys, bytes, load);
      const migration = await scenario(`migration, ${what} keys, ${load}`, byMigration, keys, bytes, load);
      lines.push(...split.lines, ...migration.lines, `  => ${what} keys, ${load}: the split owned its slots ${(split.rate / migration.rate).toFixed(1)}x as fast (goal: 10x), ${(split.rateFromPickUp / migration.rateFromPickUp).toFixed(1)}x counted from the leader's pick-up; write pause of the moving slots at the cut-over ${split.cutOverMoving ?? '?'} ms (goal: <= 100 ms)`);
      if (split.floor !== null) lines.push(`     the full sync alone took ${split.floor.toFixed(2)} s: no split could own its slots more than ${(migration.owned / split.floor).toFixed(1)}x as fast as this migration here; this split took ${(split.owned - split.floor).toFixed(2)} s more than it (pick-up, cut-over)`);
      process.stdout.write(`${lines.splice(0).join('\n')}\n`);
    }
  }
}

await main();
