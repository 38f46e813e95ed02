/**
 * bench/split — a shard halved by a split (replication, docs/split.md) against the same halving by
 * slot migration (docs/migration.md), on the same data, in one run (issue 14, "Tests and measurements").
 *
 *   node --import tsx bench/split.ts [--keys N] [--large N] [--value-bytes B] [--writers N]
 *
 * Each scenario gets its own cluster — etcd, one master owning every slot, an empty instance, one
 * controller process and one proxy process, all on 127.0.0.1 — stopped at its end whatever happened
 * (withCluster). The master is filled straight (MSET), then the upper half of the slots goes to a
 * new shard on the empty instance, while --writers clients SET keys of every slot through the proxy
 * (bounded by the move's own length): the longest acknowledged write is the pause clients saw.
 * Reported per scenario: the wall time from the request until the new shard owns the slots and
 * until done (the trim included, for the split), keys/s and MB/s over the keys the new shard ends
 * with, the split's hold and its steps. Progress goes to stderr, results to stdout. Run
 * `npm run build` first: the controller and the proxy run the compiled code in dist/.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { migrationFinished } from '../src/model/migration.js';
import { splitFinished } from '../src/model/split.js';
import { startRedis, waitFor } from '../src/playground/processes.js';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { RedisPool } from '../src/redis/pool.js';
import { argNumber, controllerAndProxy, withCluster } from './common.js';

const SMALL_KEYS = argNumber('keys', 1_000_000);
const LARGE_KEYS = argNumber('large', 100_000);
const LARGE_VALUE_BYTES = argNumber('value-bytes', 10 * 1024);
const WRITERS = argNumber('writers', 4);
const TIMEOUT_MS = 10 * 60_000;
const CLUSTER = 'split';
const say = (line: string) => process.stderr.write(`${line}\n`);

interface Scene {
  admin: AdminService;
  source: string;
  empty: string;
  proxyPort: number;
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
    await body({ admin, source: shards[0]!.address, empty: empty.address, proxyPort, at });
  });
}

async function fill(s: Scene, prefix: string, count: number, value: string): Promise<void> {
  const started = performance.now();
  const pairs = Math.max(1, Math.min(1000, Math.floor((1 << 20) / value.length)));
  let args: string[] = [];
  let inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    args.push(`${prefix}:${i}`, value);
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
  say(`  filled ${count} keys of ${value.length} bytes in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** SETs through the proxy until stopped: the longest acknowledged write, and how many failed. */
function writers(port: number) {
  let stop = false;
  let longest = 0;
  let writes = 0;
  let errors = 0;
  const clients = Array.from({ length: WRITERS }, () => new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 }));
  clients.forEach((c) => c.on('error', () => undefined));
  const deadline = Date.now() + TIMEOUT_MS;
  const loops = clients.map(async (c, k) => {
    for (let i = 0; !stop && Date.now() < deadline; i++) {
      const started = performance.now();
      try {
        await c.set(`w:${k}:${i % 1000}`, 'x');
        longest = Math.max(longest, performance.now() - started);
        writes++;
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
      return { longest, writes, errors };
    },
  };
}

interface Outcome {
  owned: number;
  done: number;
  keys: number;
  lines: string[];
}

async function bySplit(s: Scene): Promise<Outcome> {
  const started = performance.now();
  const requestedAt = Date.now();
  const { id } = await s.admin.splits.split(CLUSTER, { shard: 's0', newShard: 's1', master: s.empty, requestedBy: 'bench/split' });
  let owned = 0;
  const end = await waitFor(`split ${id} to end`, async () => {
    const split = (await s.admin.splits.list(CLUSTER)).splits.find((x) => x.id === id)!;
    if (!owned && split.steps.some((st) => st.step === 'commit')) owned = (performance.now() - started) / 1000;
    return splitFinished(split) ? split : null;
  }, TIMEOUT_MS, 50);
  if (end.state !== 'done') throw new Error(`split ${id} ended ${end.state}: ${end.error ?? ''}`);
  // When each step was recorded, from the request: the waits between steps show too.
  const steps = end.steps.map((st) => `${st.step} ${((Date.parse(st.at) - requestedAt) / 1000).toFixed(2)}`).join(', ');
  return { owned, done: (performance.now() - started) / 1000, keys: await s.at(s.empty).dbsize(), lines: [`  hold ${end.holdMs} ms; each step recorded at (s from the request): ${steps}; trimmed ${end.trim.source.removed} + ${end.trim.shard.removed} keys`] };
}

async function byMigration(s: Scene): Promise<Outcome> {
  const shard = await s.admin.addShard(CLUSTER, { master: s.empty, id: 's1' });
  const route = await s.admin.route(CLUSTER);
  const slots = `${route.slotCount / 2}-${route.slotCount - 1}`;
  const started = performance.now();
  const { id } = await s.admin.migrations.migrate(CLUSTER, { slots, to: shard.id, requestedBy: 'bench/split' });
  const end = await waitFor(`migration ${id} to end`, async () => {
    const m = await s.admin.migrations.get(CLUSTER, id);
    return migrationFinished(m) ? m : null;
  }, TIMEOUT_MS, 50);
  if (end.state !== 'done') throw new Error(`migration ${id} ended ${end.state}: ${end.error ?? ''}`);
  const seconds = (performance.now() - started) / 1000;
  const steps = end.steps.map((st) => `${st.step} ${((st.durationMs ?? 0) / 1000).toFixed(2)}`).join(', ');
  return { owned: seconds, done: seconds, keys: await s.at(s.empty).dbsize(), lines: [`  steps (s): ${steps}`] };
}

async function scenario(label: string, how: (s: Scene) => Promise<Outcome>, keys: number, valueBytes: number): Promise<{ line: string[]; rate: number; longest: number }> {
  let out: { line: string[]; rate: number; longest: number } = { line: [], rate: 0, longest: 0 };
  await withScene(async (s) => {
    say(`${label}: filling`);
    await fill(s, 'k', keys, 'v'.repeat(valueBytes));
    say(`${label}: moving half the slots`);
    const load = writers(s.proxyPort);
    const o = await how(s);
    const w = await load.stop();
    const rate = o.keys / o.owned;
    out = {
      rate,
      longest: w.longest,
      line: [
        `${label}: ${o.keys} keys on the new shard; it owned its slots ${o.owned.toFixed(2)} s after the request (${Math.round(rate)} keys/s, ${((rate * valueBytes) / 1e6).toFixed(1)} MB/s of values), done after ${o.done.toFixed(2)} s`,
        `  ${WRITERS} writers through the proxy: ${w.writes} writes, ${w.errors} errors, the longest acknowledged write ${Math.round(w.longest)} ms`,
        ...o.lines,
      ],
    };
  });
  return out;
}

async function main(): Promise<void> {
  const lines: string[] = [`bench/split: ${SMALL_KEYS} small keys, ${LARGE_KEYS} keys of ${LARGE_VALUE_BYTES} bytes; ${WRITERS} writers`];
  for (const [what, keys, bytes] of [['small', SMALL_KEYS, 16], ['large', LARGE_KEYS, LARGE_VALUE_BYTES]] as const) {
    if (keys === 0) continue;
    const split = await scenario(`split, ${what} keys`, bySplit, keys, bytes);
    const migration = await scenario(`migration, ${what} keys`, byMigration, keys, bytes);
    lines.push(...split.line, ...migration.line, `  ${what} keys: the split owned its slots ${(split.rate / migration.rate).toFixed(1)}x as fast (goal: 10x); its longest write ${Math.round(split.longest)} ms (goal: <= 100 ms)`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
