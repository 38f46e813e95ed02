/**
 * Big keys move in chunks, never by one MIGRATE (docs/migration.md, "Big keys"). A MIGRATE of a
 * key of a million elements blocks the source while it serializes the key and the target while it
 * restores it — every client of both shards waits. So before the slots move the leader finds the
 * hashes, lists, sets and sorted sets of the moving slots with more than a threshold of elements
 * (`SCAN … TYPE`, then the O(1) length), and, while the proxies hold those slots' commands, copies
 * each one to a temporary key on the target a chunk at a time (HSCAN/SSCAN/ZSCAN/LRANGE, then
 * HSET/SADD/ZADD/RPUSH), renames it into place, gives it the source's TTL, waits for a slave of the
 * target, and unlinks the source's copy (freed in the background). No single command touches more
 * than one chunk.
 */
import type { Redis } from 'ioredis';
import { keySlot } from '../model/slot.js';
import type { CredentialSource } from '../redis/credentials.js';
import { MoverConnections, runOn, slavesToWaitFor, waitForSlaves } from './connection.js';

export const BIG_KEY_TYPES = ['hash', 'list', 'set', 'zset'] as const;
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
  /** How long a moved key waits for a slave of the target. */
  replicaWaitMs: number;
}

export const DEFAULT_BIG_KEY_OPTIONS: BigKeyOptions = { timeoutMs: 10_000, threshold: 10_000, chunk: 1000, replicaWaitMs: 1000 };

/** Keys one SCAN of the survey walks: about 5 ms of Redis's time, a tenth of the round trips of 1000. */
const SURVEY_SCAN_COUNT = 10_000;

const LENGTH: Record<BigKeyType, string> = { hash: 'HLEN', list: 'LLEN', set: 'SCARD', zset: 'ZCARD' };

export class BigKeyMover {

  private readonly connections: MoverConnections;

  constructor(private readonly options: BigKeyOptions = DEFAULT_BIG_KEY_OPTIONS) {
    this.connections = new MoverConnections(options);
  }

  /** The keys of `slots` on `source` with more elements than the threshold. */
  async find(source: string, slots: ReadonlySet<number>, slotCount: number): Promise<BigKey[]> {
    // The four scans go at once on one connection (pipelined), each walking the whole keyspace
    // with a large COUNT: the walk is Redis's work, the round trips are ours.
    const found = await Promise.all(BIG_KEY_TYPES.map((type) => this.findOfType(source, type, slots, slotCount)));
    return found.flat();
  }

  private async findOfType(source: string, type: BigKeyType, slots: ReadonlySet<number>, slotCount: number): Promise<BigKey[]> {
    const client = this.client(source);
    const found: BigKey[] = [];
    let cursor = '0';
    do {
      const [next, keys] = (await runOn(source, `SCAN TYPE ${type}`, () => client.scanBuffer(cursor, 'COUNT', SURVEY_SCAN_COUNT, 'TYPE', type))) as [Buffer, Buffer[]];
      cursor = next.toString();
      const mine = keys.filter((k) => slots.has(keySlot(k, slotCount)));
      if (mine.length === 0) continue;
      const pipeline = client.pipeline();
      for (const k of mine) pipeline.call(LENGTH[type], k);
      const lengths = (await runOn(source, LENGTH[type], () => pipeline.exec())) ?? [];
      mine.forEach((key, i) => {
        const elements = Number(lengths[i]?.[1] ?? 0);
        if (elements > this.options.threshold) found.push({ key, type, elements });
      });
    } while (cursor !== '0');
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
    if (type === 'list') {
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
