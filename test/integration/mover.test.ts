/**
 * The leader's key mover against real Redis: keys of the migrating slots (every type, TTLs) end on
 * the target and nowhere else; other keys stay; a key the target already holds keeps the target's
 * copy; the target's slave holds every moved key once a batch is done.
 */
import { describe, expect, it } from 'vitest';
import { keySlot } from '../../src/model/slot.js';
import { BigKeyMover } from '../../src/migration/big-keys.js';
import { KeyMover } from '../../src/migration/mover.js';
import { waitFor } from '../../src/playground/processes.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const SLOTS = 64;
const to = (slots: Iterable<number>, address: string, replicas: number) => new Map([...slots].map((s) => [s, { address, replicas }]));

describe('KeyMover', () => {
  it('moves the keys of the migrating slots with their types and TTLs, and only them', async () => {
    const [source, target] = [await world.redis(), await world.redis()];
    const src = redis.at(source.address);
    const moving = new Set([3, 4, 5, 40]);
    const pipeline = src.pipeline();
    for (let i = 0; i < 3000; i++) pipeline.set(`k:${i}`, `v${i}`);
    pipeline.hset('h:{a}', 'f1', '1', 'f2', '2').rpush('l:{a}', 'x', 'y').sadd('s:{a}', 'm').zadd('z:{a}', 1, 'one').set('ttl:{a}', 't', 'EX', 1000);
    await pipeline.exec();
    const tagSlot = keySlot('{a}', SLOTS);
    moving.add(tagSlot);
    const expected = new Set<string>();
    for (const k of (await src.keys('*')) as string[]) if (moving.has(keySlot(k, SLOTS))) expected.add(k);

    const mover = new KeyMover({ scanCount: 100, keysPerBatch: 37, timeoutMs: 5000, replicaWaitMs: 500 });
    try {
      const result = await mover.pass({ source: source.address, slotCount: SLOTS, targets: to(moving, target.address, 0) }, () => true);
      expect(result.complete).toBe(true);
      expect(result.moved).toBe(expected.size);
      expect(result.seen).toBe(expected.size);
    } finally {
      mover.close();
    }
    const tgt = redis.at(target.address);
    const onTarget = new Set((await tgt.keys('*')) as string[]);
    expect(onTarget).toEqual(expected);
    const leftOnSource = ((await src.keys('*')) as string[]).filter((k) => moving.has(keySlot(k, SLOTS)));
    expect(leftOnSource).toEqual([]);
    expect(await src.dbsize()).toBe(3005 - expected.size);
    expect(await tgt.hgetall('h:{a}')).toEqual({ f1: '1', f2: '2' });
    expect(await tgt.lrange('l:{a}', 0, -1)).toEqual(['x', 'y']);
    expect(await tgt.zrange('z:{a}', '0', '-1', 'WITHSCORES')).toEqual(['one', '1']);
    const ttl = await tgt.ttl('ttl:{a}');
    expect(ttl).toBeGreaterThan(900);
    expect(ttl).toBeLessThanOrEqual(1000);
  });

  it('keeps the target\'s copy of a key both hold, and waits for the target\'s slave', async () => {
    const [source, target, slave] = [await world.redis(), await world.redis(), await world.redis()];
    await redis.at(slave.address).replicaof('127.0.0.1', target.port);
    // Synced and streaming (a fresh slave gets the stream only after its first ACK): a marker
    // PUBLISH reaches it, as the mover's own does.
    await waitFor('the slave to stream', async () => {
      if ((await redis.replication(slave.address)).linkUp !== true) return false;
      const [, [, acked]] = (await redis.at(target.address).pipeline().publish('x', '1').wait(1, 500).exec()) as [unknown, [unknown, number]];
      return acked === 1;
    }, 10_000);
    const src = redis.at(source.address);
    const slot = keySlot('dup', SLOTS);
    const others = Array.from({ length: 500 }, (_, i) => `m:${i}`).filter((k) => keySlot(k, SLOTS) === slot);
    await src.set('dup', 'old');
    for (const k of others) await src.set(k, k);
    await redis.at(target.address).set('dup', 'new');

    const mover = new KeyMover({ scanCount: 50, keysPerBatch: 4, timeoutMs: 5000, replicaWaitMs: 2000 });
    try {
      const result = await mover.pass({ source: source.address, slotCount: SLOTS, targets: to([slot], target.address, 1) }, () => true);
      expect(result.unconfirmed).toBe(0);
      expect(result.moved).toBe(others.length + 1);
    } finally {
      mover.close();
    }
    expect(await redis.at(target.address).get('dup')).toBe('new');
    expect(await src.exists('dup')).toBe(0);
    // Every moved key was on the target's slave before the source dropped it.
    expect(await redis.at(slave.address).dbsize()).toBe(others.length + 1);
  });

  it('stops a pass when told to, leaving the rest for the next pass; waits for no slave that is not online', async () => {
    const [source, target] = [await world.redis(), await world.redis()];
    const src = redis.at(source.address);
    const pipeline = src.pipeline();
    for (let i = 0; i < 2000; i++) pipeline.set(`p:${i}`, '1');
    await pipeline.exec();
    const all = new Set(Array.from({ length: SLOTS }, (_, i) => i));
    const mover = new KeyMover({ scanCount: 100, keysPerBatch: 100, timeoutMs: 5000, replicaWaitMs: 500 });
    try {
      // The route names a slave of the target (replicas 1), but none is online: no batch waits for it.
      const first = await mover.pass({ source: source.address, slotCount: SLOTS, targets: to(all, target.address, 1) }, (sofar) => sofar.moved < 500);
      expect(first.unconfirmed).toBe(0);
      expect(first.complete).toBe(false);
      expect(first.moved).toBeGreaterThanOrEqual(500);
      expect(first.moved).toBeLessThan(2000);
      const second = await mover.pass({ source: source.address, slotCount: SLOTS, targets: to(all, target.address, 0) }, () => true);
      expect(second.complete).toBe(true);
      expect(first.moved + second.moved).toBe(2000);
    } finally {
      mover.close();
    }
    expect(await src.dbsize()).toBe(0);
    expect(await redis.at(target.address).dbsize()).toBe(2000);
  });

  it('BigKeyMover finds the big keys of the moving slots and moves each type in chunks, TTL kept; the target\'s copy wins', async () => {
    const [source, target] = [await world.redis(), await world.redis()];
    const src = redis.at(source.address);
    const n = 5000;
    const items = Array.from({ length: n }, (_, i) => `e${i}`);
    await src.hset('h:{b}', ...items.flatMap((e) => [e, `v-${e}`]));
    await src.rpush('l:{b}', ...items);
    await src.sadd('s:{b}', ...items);
    await src.zadd('z:{b}', ...items.flatMap((e, i) => [String(i + 0.5), e]));
    await src.pexpire('z:{b}', 900_000);
    await src.hset('small:{b}', 'a', '1');
    await src.hset('h:{elsewhere}', ...items.flatMap((e) => [e, '1']));
    // A string past the byte threshold (not a whole number of chunks), with a TTL, and one below it.
    const text = Buffer.from(Array.from({ length: 40_000 + 123 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(''));
    await src.set('str:{b}', text, 'PX', 900_000);
    await src.set('smallstr:{b}', 'x'.repeat(100));
    const slot = keySlot('{b}', SLOTS);
    const mover = new BigKeyMover({ timeoutMs: 5000, threshold: 1000, chunk: 300, stringThreshold: 10_000, stringChunk: 4096, replicaWaitMs: 500 });
    try {
      const found = await mover.find(source.address, new Set([slot]), SLOTS);
      expect(found.map((k) => `${k.key.toString()}:${k.type}:${k.elements}`).sort()).toEqual([`h:{b}:hash:${n}`, `l:{b}:list:${n}`, `s:{b}:set:${n}`, `str:{b}:string:${text.length}`, `z:{b}:zset:${n}`]);
      await redis.at(target.address).hset('h:{b}', 'theirs', '1'); // already at the destination: it wins
      for (const [i, k] of found.entries()) expect(await mover.move(source.address, target.address, k.key, `tmp:${i}`, 0)).toBe(true);
      expect(await mover.move(source.address, target.address, Buffer.from('gone:{b}'), 'tmp:x', 0)).toBe(false);
    } finally {
      mover.close();
    }
    const tgt = redis.at(target.address);
    expect(await tgt.hgetall('h:{b}')).toEqual({ theirs: '1' });
    expect(await tgt.lrange('l:{b}', 0, -1)).toEqual(items);
    expect((await tgt.smembers('s:{b}')).sort()).toEqual([...items].sort());
    expect(await tgt.zrange('z:{b}', '0', '-1', 'WITHSCORES')).toEqual(items.flatMap((e, i) => [e, String(i + 0.5)]));
    expect(await tgt.pttl('z:{b}')).toBeGreaterThan(800_000);
    expect((await tgt.getBuffer('str:{b}'))!.equals(text)).toBe(true);
    expect(await tgt.pttl('str:{b}')).toBeGreaterThan(800_000);
    expect(await tgt.keys('tmp:*')).toEqual([]);
    for (const k of ['h:{b}', 'l:{b}', 's:{b}', 'z:{b}', 'str:{b}']) expect(await src.exists(k)).toBe(0);
    expect(await src.exists('small:{b}', 'h:{elsewhere}', 'smallstr:{b}')).toBe(3);
  });

  it('fills each MIGRATE with keys of many slots bound for one target, not one slot at a time', async () => {
    const [source, target] = [await world.redis(), await world.redis()];
    const src = redis.at(source.address);
    const pipeline = src.pipeline();
    for (let i = 0; i < 3000; i++) pipeline.set(`b:${i}`, '1');
    await pipeline.exec();
    await src.config('RESETSTAT');
    // One target object per slot, as the leader builds them from the route.
    const half = Array.from({ length: SLOTS / 2 }, (_, i) => i * 2);
    const mover = new KeyMover({ scanCount: 1000, keysPerBatch: 1000, timeoutMs: 5000, replicaWaitMs: 500 });
    try {
      const result = await mover.pass({ source: source.address, slotCount: SLOTS, targets: to(half, target.address, 0) }, () => true);
      expect(result.moved).toBeGreaterThan(1000);
    } finally {
      mover.close();
    }
    const stats = await src.info('commandstats');
    const count = (command: string) => Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    // A SCAN reply holds about 1000 keys, half of them moving: one batch each (two if SCAN
    // returned more); batches per slot would be about 32 per SCAN.
    expect(count('scan')).toBeGreaterThan(0);
    expect(count('migrate')).toBeLessThanOrEqual(2 * count('scan'));
  });
});
