/**
 * bench/split-sync — the full sync a split waits for, alone, under each replication setting that
 * could shorten it (issue 14: where does the split's time go?). No controller, no proxy: a source
 * filled with MSET, an empty instance, `REPLICAOF`, and the times Redis reports.
 *
 *   node --import tsx bench/split-sync.ts [--keys N] [--large N] [--value-bytes B]
 *
 * For each setting: the time until the replica's link is up (the RDB made, sent and loaded), until
 * it has also applied a PUBLISH sent after that (the stream flows: what the split's sync step waits
 * for), and the source's RDB phase as its own log tells it. Values of the large keys are random
 * bytes: incompressible, as most real values of that size are.
 *
 * Then the stream's start after the link is up, in rounds of a small data set (`--ack-keys`, as many
 * rounds as `--ack-rounds`), with the split's settings, left to Redis and with the replica asked for
 * its acknowledgement (askReplicaAck, what the split's sync does): Redis 7.0 starts the stream only on
 * an acknowledgement that arrives after it reaped its fork child, and the replica's own come once a
 * second.
 *
 *   node --import tsx bench/split-sync.ts [--ack-keys N] [--ack-rounds R]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../src/playground/processes.js';
import { RedisPool } from '../src/redis/pool.js';
import { SYNC_SETTINGS } from '../src/controller/splits/split-sync-settings.js';
import { argNumber, median } from './common.js';
import { infoField as field, timeFullSync } from './full-sync.js';

const SMALL_KEYS = argNumber('keys', 1_000_000);
const LARGE_KEYS = argNumber('large', 100_000);
const LARGE_VALUE_BYTES = argNumber('value-bytes', 10 * 1024);
const ACK_KEYS = argNumber('ack-keys', 1000);
const ACK_ROUNDS = argNumber('ack-rounds', 10);
const say = (line: string) => process.stderr.write(`${line}\n`);

/** Redis 7.0's own defaults for what startRedis (tests and playground) sets otherwise. */
const REDIS_DEFAULTS = ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '5', '--repl-diskless-load', 'disabled', '--rdbcompression', 'yes'];

interface Setting {
  name: string;
  source: string[];
  replica: string[];
}

/** What a split sets for its sync (split-sync-settings.ts), as redis-server arguments. */
const asArgs = (settings: Readonly<Record<string, string>>) => Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v]);
const SPLIT_SETTING: Setting = { name: 'what a split sets (split-sync-settings.ts)', source: asArgs(SYNC_SETTINGS.source), replica: asArgs(SYNC_SETTINGS.shard) };

const SETTINGS: Setting[] = [
  { name: 'Redis defaults (diskless sync, delay 5 s, disk load)', source: [], replica: [] },
  { name: 'source delay 0', source: ['--repl-diskless-sync-delay', '0'], replica: [] },
  { name: 'source delay 0, disk-based sync', source: ['--repl-diskless-sync-delay', '0', '--repl-diskless-sync', 'no'], replica: [] },
  { name: 'source delay 0; replica diskless load on-empty-db', source: ['--repl-diskless-sync-delay', '0'], replica: ['--repl-diskless-load', 'on-empty-db'] },
  { name: 'source delay 0, rdbcompression no; replica disk load', source: ['--repl-diskless-sync-delay', '0', '--rdbcompression', 'no'], replica: [] },
  SPLIT_SETTING,
  { name: 'the same and rdbchecksum no on both (not used)', source: [...SPLIT_SETTING.source, '--rdbchecksum', 'no'], replica: [...SPLIT_SETTING.replica, '--rdbchecksum', 'no'] },
];

async function fill(r: Redis, count: number, value: () => Buffer | string): Promise<void> {
  const pairs = 1000;
  let batch: (string | Buffer)[] = [];
  let inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    batch.push(`k:${i}`, value());
    if (batch.length >= pairs * 2 || i === count - 1) {
      inFlight.push(r.mset(...batch));
      batch = [];
      if (inFlight.length >= 16) {
        await Promise.all(inFlight);
        inFlight = [];
      }
    }
  }
  await Promise.all(inFlight);
}

/** Milliseconds between two lines of a Redis log ("... 03 Dec 2026 04:35:01.123 * text"). */
function logSpan(file: string, from: RegExp, to: RegExp): number | null {
  const lines = readFileSync(file, 'utf8').split('\n');
  const at = (re: RegExp) => {
    const line = [...lines].reverse().find((l) => re.test(l));
    const m = line && /(\d\d):(\d\d):(\d\d)\.(\d{3})/.exec(line);
    return m ? ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]) : null;
  };
  const a = at(from);
  const b = at(to);
  return a !== null && b !== null ? b - a : null;
}

interface SyncTimes {
  linkUp: number;
  streamed: number;
  line: string;
}

/** One full sync under `setting`; with `kick`, the replica is asked for its acknowledgement every ACK_ASK_MS while linked and not streaming. */
async function once(dir: string, setting: Setting, keys: number, value: () => Buffer | string, kick = false): Promise<SyncTimes> {
  const servers: RedisServer[] = [];
  const clients: Redis[] = [];
  const pool = new RedisPool({ timeoutMs: 5000 });
  try {
    const source = await startRedis(dir, undefined, [...REDIS_DEFAULTS, ...setting.source]);
    servers.push(source);
    const replica = await startRedis(dir, undefined, [...REDIS_DEFAULTS, ...setting.replica]);
    servers.push(replica);
    const s = new Redis({ port: source.port, host: '127.0.0.1' });
    const r = new Redis({ port: replica.port, host: '127.0.0.1' });
    clients.push(s, r);
    await fill(s, keys, value);
    const used = Number(field(await s.info('memory'), 'used_memory'));
    const { linkUp, streamed } = await timeFullSync({ source: s, replica: r, sourcePort: source.port, replicaAddress: replica.address, pool, kick });
    const rdb = logSpan(source.process.logFile, /Starting BGSAVE for SYNC/, /Background RDB transfer terminated|Background saving terminated/);
    const load = logSpan(replica.process.logFile, /MASTER <-> REPLICA sync: (receiving|Loading DB in memory|Flushing old data)/, /MASTER <-> REPLICA sync: Finished with success/);
    const line = `  ${setting.name}: link up ${(linkUp / 1000).toFixed(2)} s, streaming ${(streamed / 1000).toFixed(2)} s; source RDB phase ${rdb ?? '?'} ms, replica receive+load ${load ?? '?'} ms; ${(used / 1e6).toFixed(0)} MB used`;
    return { linkUp, streamed, line };
  } finally {
    await pool.close();
    clients.forEach((c) => c.disconnect());
    for (const x of servers.reverse()) await x.stop().catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cfgserver-bench-split-sync-'));
  const lines: string[] = [];
  try {
    for (const [what, keys, value] of [
      ['small', SMALL_KEYS, () => 'v'.repeat(16)],
      ['large', LARGE_KEYS, () => randomBytes(LARGE_VALUE_BYTES)],
    ] as const) {
      if (keys === 0) continue;
      lines.push(`${keys} ${what} keys:`);
      for (const setting of SETTINGS) {
        say(`${what}: ${setting.name}`);
        lines.push((await once(dir, setting, keys, value)).line);
      }
    }
    lines.push(`the stream's start after the link is up, ${ACK_ROUNDS} rounds of ${ACK_KEYS} small keys each, the split's settings (median / max):`);
    const waits: Record<string, number[]> = { 'left to Redis': [], 'replica asked to acknowledge (askReplicaAck)': [] };
    for (let round = 0; round < ACK_ROUNDS; round++) {
      for (const [name, kick] of [['left to Redis', false], ['replica asked to acknowledge (askReplicaAck)', true]] as const) {
        say(`stream start: round ${round + 1}, ${name}`);
        const t = await once(dir, SPLIT_SETTING, ACK_KEYS, () => 'v'.repeat(16), kick);
        waits[name]!.push(t.streamed - t.linkUp);
      }
    }
    for (const [name, ms] of Object.entries(waits)) lines.push(`  ${name}: ${median(ms).toFixed(0)} / ${Math.max(...ms).toFixed(0)} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
