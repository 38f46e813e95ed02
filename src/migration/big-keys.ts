/**
 * Big keys move in chunks, never by one MIGRATE (docs/migration.md, "Big keys"). A MIGRATE of a
 * key of a million elements blocks the source while it serializes the key and the target while it
 * restores it — every client of both shards waits. So before the slots move the leader finds the
 * hashes, lists, sets and sorted sets of the moving slots with more than a threshold of elements
 * (and strings longer than a threshold of bytes)
 * (one `SCAN`, each page's keys of those slots sized by a script), and, while the proxies hold those slots' commands, copies
 * each one to a temporary key on the target a chunk at a time (HSCAN/SSCAN/ZSCAN/LRANGE, then
 * HSET/SADD/ZADD/RPUSH), renames it into place, gives it the source's TTL, waits for a slave of the
 * target, and unlinks the source's copy (freed in the background). No single command touches more
 * than one chunk.
 */
import type { Redis } from 'ioredis';
import { keySlot } from '../model/slot.js';
import type { CredentialSource } from '../redis/credentials.js';
import { runOn, scanPages } from '../redis/named-calls.js';
import { MoverConnections, slavesToWaitFor, waitForSlaves } from './connection.js';

export const BIG_KEY_TYPES = ['hash', 'list', 'set', 'zset', 'string'] as const;
export type BigKeyType = (typeof BIG_KEY_TYPES)[number];

export interface BigKey {
  key: Buffer;
  type: BigKeyType;
  elements: number;
}

export interface BigKeyOptions {
  /** The credentials of each instance (none: no AUTH). */
  credentials?: CredentialSource;
  timeoutMs: number;
  /** Keys with more elements than this move in chunks. */
  threshold: number;
  /** Elements per read and per write. */
  chunk: number;
  /** Strings longer than this (bytes) move in chunks too: one MIGRATE of 512 MB holds both Redis for seconds. */
  stringThreshold: number;
  /** Bytes per read and per write of a big string. */
  stringChunk: number;
  /** How long a moved key waits for a slave of the target. */
  replicaWaitMs: number;
}

export const DEFAULT_BIG_KEY_OPTIONS: BigKeyOptions = { timeoutMs: 10_000, threshold: 10_000, chunk: 1000, stringThreshold: 8 << 20, stringChunk: 1 << 20, replicaWaitMs: 1000 };

/** Keys one SCAN of the survey walks: the same page as the mover's, about 0.3 ms of Redis's time. */
const SURVEY_SCAN_COUNT = 1000;

/**
 * Sizes a page of keys in Redis itself: for each key (KEYS), its type and, for the types moved in
 * chunks, its length when above the threshold (ARGV[1]); answers the big ones only, as
 * key, type, length triples. One round trip and a few microseconds per key, instead of a
 * pipelined TYPE and length per key through the network.
 */
const SIZE_SCRIPT = `
local limit = tonumber(ARGV[1])
local bytes = tonumber(ARGV[2])
local length = { hash = 'HLEN', list = 'LLEN', set = 'SCARD', zset = 'ZCARD', string = 'STRLEN' }
local big = {}
for _, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key).ok
  local command = length[t]
  if command then
    local n = redis.call(command, key)
    if n > (t == 'string' and bytes or limit) then
      big[#big + 1] = key
      big[#big + 1] = t
      big[#big + 1] = n
    end
  end
end
return big
`;

export class BigKeyMover {

  private readonly connections: MoverConnections;

  constructor(private readonly options: BigKeyOptions = DEFAULT_BIG_KEY_OPTIONS) {
    this.connections = new MoverConnections(options);
  }

  /**
   * The keys of `slots` on `source` with more elements than the threshold. One walk of the
   * keyspace (plain SCAN), and only the keys of the moving slots are sized, in Redis, a page at a
   * time. (Four walks with `SCAN … TYPE`, one per type, cost Redis about ten times as much: in
   * 7.0 a TYPE filter looks every key up after collecting it, and clients of the source waited.)
   */
  async find(source: string, slots: ReadonlySet<number>, slotCount: number): Promise<BigKey[]> {
    const client = this.client(source);
    const found: BigKey[] = [];
    // The next page is on its way while this one is sized.
    for await (const keys of scanPages(source, client, SURVEY_SCAN_COUNT)) {
      const mine = keys.filter((k) => slots.has(keySlot(k, slotCount)));
      if (mine.length === 0) continue;
      const big = (await runOn(source, 'EVAL (sizes)', () => client.callBuffer('EVAL', SIZE_SCRIPT, mine.length, ...mine, String(this.options.threshold), String(this.options.stringThreshold)))) as (Buffer | number)[];
      for (let i = 0; i + 2 < big.length; i += 3) {
        found.push({ key: big[i] as Buffer, type: big[i + 1]!.toString() as BigKeyType, elements: Number(big[i + 2]) });
      }
    }
    return found;
  }

  /**
   * Moves one big key from `source` to `target` in chunks through `tmp` (a name of the leader's);
   * false when the source no longer holds it. The caller makes sure nobody writes the key meanwhile
   * (the proxies hold its slot).
   */
  async move(source: string, target: string, key: Buffer, tmp: string, replicas: number): Promise<boolean> {
    const src = this.client(source);
    const dst = this.client(target);
    await runOn(target, 'DEL', () => dst.del(tmp)); // a leftover of an attempt a dead leader made
    const type = String(await runOn(source, 'TYPE', () => src.type(key))) as BigKeyType | 'none';
    if (type === 'none') return false;
    if (!(BIG_KEY_TYPES as readonly string[]).includes(type)) throw new Error(`${key.toString()} is a ${type}, not a type moved in chunks`);
    await this.copyChunks(source, target, key, tmp, type);
    const ttl = Number(await runOn(source, 'PTTL', () => src.pttl(key)));
    // The destination's copy wins: if the target holds the key already, the copy is dropped.
    const placed = Number(await runOn(target, 'RENAMENX', () => dst.renamenx(tmp, key)));
    if (!placed) await runOn(target, 'DEL', () => dst.del(tmp));
    else if (ttl > 0) await runOn(target, 'PEXPIRE', () => dst.pexpire(key, ttl));
    await waitForSlaves(target, dst, await slavesToWaitFor(target, dst, replicas), this.options.replicaWaitMs);
    await runOn(source, 'UNLINK', () => src.unlink(key));
    return true;
  }

  private async copyChunks(source: string, target: string, key: Buffer, tmp: string, type: BigKeyType): Promise<void> {
    const src = this.client(source);
    const dst = this.client(target);
    const chunk = this.options.chunk;
    // Writes are not waited for one by one: the target runs them in order on one connection, and
    // the next read goes out meanwhile. At most a few are outstanding (bounded memory).
    const writes: Promise<unknown>[] = [];
    const write = async (what: string, fn: () => Promise<unknown>) => {
      writes.push(runOn(target, what, fn));
      if (writes.length >= 8) await Promise.all(writes.splice(0));
    };
    if (type === 'string') {
      // GETRANGE past the end answers what is left (or nothing): the last, short chunk ends it.
      const size = this.options.stringChunk;
      for (let start = 0; ; start += size) {
        const part = await runOn(source, 'GETRANGE', () => src.getrangeBuffer(key, start, start + size - 1));
        if (part.length > 0) await write('APPEND', () => dst.append(tmp, part));
        if (part.length < size) break;
      }
    } else if (type === 'list') {
      for (let start = 0; ; start += chunk) {
        const items = await runOn(source, 'LRANGE', () => src.lrangeBuffer(key, start, start + chunk - 1));
        if (items.length > 0) await write('RPUSH', () => dst.rpush(tmp, ...items));
        if (items.length < chunk) break;
      }
    } else {
      const scan = { hash: 'HSCAN', set: 'SSCAN', zset: 'ZSCAN' }[type];
      const add = { hash: 'HSET', set: 'SADD', zset: 'ZADD' }[type];
      let cursor = '0';
      do {
        const [next, items] = (await runOn(source, scan, () => src.callBuffer(scan, key, cursor, 'COUNT', chunk))) as [Buffer, Buffer[]];
        cursor = next.toString();
        if (items.length === 0) continue;
        // ZSCAN answers member, score; ZADD takes score, member.
        const args = type === 'zset' ? items.flatMap((_, i) => (i % 2 === 0 ? [items[i + 1]!, items[i]!] : [])) : items;
        await write(add, () => dst.callBuffer(add, tmp, ...args));
      } while (cursor !== '0');
    }
    await Promise.all(writes);
  }

  private client(address: string): Redis {
    return this.connections.get(address);
  }

  close(): void {
    this.connections.close();
  }
}
