import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { slotOwners, toRanges } from '../../src/model/route.js';
import type { Route } from '../../src/model/schemas.js';
import { keySlot } from '../../src/model/slot.js';
import type { RedisServer } from '../../src/playground/processes.js';
import { waitFor } from '../../src/playground/processes.js';
import { COMMAND_TABLE } from '../../src/proxy/command-table.js';
import { commandTable, useCommandTable } from '../../src/proxy/commands.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

/** A cluster of 3 masters with the slots spread evenly, and a proxy in front. */
async function setup(name: string, options = {}) {
  const prefix = randomPrefix();
  const masters: RedisServer[] = [];
  for (let i = 0; i < 3; i++) masters.push(await world.redis());
  const admin = world.admin(prefix);
  await admin.createCluster({ name, file: { shards: masters.map((m) => ({ master: m.address })) } });
  const route = await admin.route(name);
  const proxy = await proxies.start(world.etcd.endpoint, prefix, name, options);
  return { prefix, admin, masters, route, proxy, client: proxies.client(proxy) };
}

/** Writes, directly on each master, a key of a slot that master does not own (as before a trim). */
async function writeForeignKeys(route: Route, tag: string): Promise<string[]> {
  const owners = slotOwners(route);
  const written: string[] = [];
  for (const [i, shard] of route.shards.entries()) {
    for (let n = 0; ; n++) {
      const key = `${tag}:foreign:${shard.id}:${n}`;
      if (owners[keySlot(key, route.slotCount)] !== i) {
        await redis.at(shard.master).set(key, 'stale');
        written.push(key);
        break;
      }
    }
  }
  return written;
}

/** SCAN to the end as redis-py and go-redis do: the cursor is parsed as an integer and sent back as one. */
async function scanAll(client: Redis, args: (string | number)[] = [], onPage?: (page: number) => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  let cursor = 0n;
  let page = 0;
  do {
    const [next, batch] = (await client.call('SCAN', cursor.toString(), ...args)) as [string, string[]];
    expect(next).toMatch(/^\d+$/);
    cursor = BigInt(next);
    seen.push(...batch);
    await onPage?.(++page);
  } while (cursor !== 0n);
  return seen;
}

const sorted = (a: string[]) => [...a].sort();

describe('commands fanned out to every shard', () => {
  it('KEYS merges every shard and leaves out keys of slots a shard does not own', async () => {
    const { client, route, masters } = await setup('keys');
    const keys = Array.from({ length: 40 }, (_, i) => `k:${i}`);
    await client.mset(...keys.flatMap((k) => [k, '1']));
    for (const m of masters) expect(await redis.at(m.address).dbsize()).toBeGreaterThan(0);
    const foreign = await writeForeignKeys(route, 'k');
    expect(sorted(await client.keys('k:*'))).toEqual(sorted(keys));
    expect(sorted(await client.keys('k:1*'))).toEqual(sorted(keys.filter((k) => k.startsWith('k:1'))));
    expect(await client.keys('nothing:*')).toEqual([]);
    // The foreign keys are there, on the masters, just not the cluster's.
    for (const [i, k] of foreign.entries()) expect(await redis.at(route.shards[i]!.master).get(k)).toBe('stale');
  });

  it('DBSIZE sums the shards; RANDOMKEY answers a key of the cluster, nil when empty', async () => {
    const { client, route } = await setup('sizes');
    expect(await client.dbsize()).toBe(0);
    expect(await client.randomkey()).toBeNull();
    const keys = Array.from({ length: 30 }, (_, i) => `r:${i}`);
    await client.mset(...keys.flatMap((k) => [k, '1']));
    expect(await client.dbsize()).toBe(30);
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const k = await client.randomkey();
      expect(keys).toContain(k);
      seen.add(k!);
    }
    expect(seen.size).toBeGreaterThan(3);
    // Foreign keys are never the answer.
    await client.del(...keys);
    const foreign = await writeForeignKeys(route, 'r');
    await client.set('r:only', '1');
    for (let i = 0; i < 20; i++) {
      const k = await client.randomkey();
      expect(foreign).not.toContain(k);
      expect([null, 'r:only']).toContain(k);
    }
  });

  it('refuses FLUSHALL, FLUSHDB, SCRIPT FLUSH, FUNCTION FLUSH without --allow-flush, and flushes every master with it', async () => {
    const { client, masters, prefix, route } = await setup('flush');
    await client.mset(...Array.from({ length: 20 }, (_, i) => [`f:${i}`, '1']).flat());
    for (const cmd of [['FLUSHALL'], ['FLUSHDB', 'ASYNC'], ['SCRIPT', 'FLUSH'], ['FUNCTION', 'FLUSH']]) {
      await expect(client.call(cmd[0]!, ...cmd.slice(1)), cmd.join(' ')).rejects.toThrow(/refused: it would empty every shard.*--allow-flush/);
    }
    expect(await client.dbsize()).toBe(20);
    const foreign = await writeForeignKeys(route, 'f');
    const allowed = proxies.client(await proxies.start(world.etcd.endpoint, prefix, 'flush', { allowFlush: true }));
    expect(await allowed.call('FLUSHALL')).toBe('OK');
    for (const m of masters) expect(await redis.at(m.address).dbsize()).toBe(0);
    expect(foreign.length).toBe(3);
    await allowed.set('f:again', '1');
    expect(await allowed.call('FLUSHDB', 'SYNC')).toBe('OK');
    expect(await allowed.dbsize()).toBe(0);
    const sha = (await allowed.call('SCRIPT', 'LOAD', 'return 7')) as string;
    expect(await allowed.call('SCRIPT', 'FLUSH')).toBe('OK');
    expect(await allowed.call('SCRIPT', 'EXISTS', sha)).toEqual([0]);
    expect(await allowed.call('FUNCTION', 'FLUSH', 'ASYNC')).toBe('OK');
    await expect(allowed.call('FLUSHALL', 'BOGUS')).rejects.toThrow(/syntax error/);
  });

  it('SCRIPT LOAD loads on every master, so EVALSHA works on every shard; SCRIPT EXISTS is 1 only where all have it', async () => {
    const { client, masters, route } = await setup('scripts');
    const body = "return redis.call('incrby', KEYS[1], ARGV[1])";
    const sha = (await client.call('SCRIPT', 'LOAD', body)) as string;
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    for (const m of masters) expect(await redis.at(m.address).call('SCRIPT', 'EXISTS', sha)).toEqual([1]);
    // One key on each shard.
    const owners = slotOwners(route);
    for (const i of [0, 1, 2]) {
      let n = 0;
      while (owners[keySlot(`e:${n}`, route.slotCount)] !== i) n++;
      expect(await client.evalsha(sha, 1, `e:${n}`, 5)).toBe(5);
      expect(await redis.at(route.shards[i]!.master).get(`e:${n}`)).toBe('5');
    }
    const onOne = (await redis.at(masters[1]!.address).call('SCRIPT', 'LOAD', 'return 42')) as string;
    expect(await client.call('SCRIPT', 'EXISTS', sha, onOne, 'f'.repeat(40))).toEqual([1, 0, 0]);
    await expect(client.call('SCRIPT', 'LOAD', 'this is not lua')).rejects.toThrow(/Error compiling script/);
    await expect(client.call('SCRIPT', 'KILL')).rejects.toThrow(/SCRIPT KILL is not supported/);
  });
});

describe('the command table', () => {
  it('is read from a master at start, and the built-in one stays when COMMAND fails', async () => {
    // The table is the process's: start from the built-in one, as a fresh process does.
    useCommandTable(COMMAND_TABLE);
    const prefix = randomPrefix();
    const noCommand = await world.redis(['--rename-command', 'COMMAND', '']);
    const admin = world.admin(prefix);
    await admin.createCluster({ name: 'nocommand', file: { shards: [{ master: noCommand.address }] } });
    const blind = proxies.client(await proxies.start(world.etcd.endpoint, prefix, 'nocommand'));
    expect(commandTable()).toBe(COMMAND_TABLE);
    expect(await blind.set('x', '1')).toBe('OK');
    expect(await blind.get('x')).toBe('1');

    const { client } = await setup('commands');
    const table = commandTable();
    expect(table).not.toBe(COMMAND_TABLE);
    expect(Object.keys(table).length).toBeGreaterThan(200);
    expect(table['GET']).toEqual(COMMAND_TABLE['GET']);
    expect(table['OBJECT']!.subcommands!['ENCODING']!.keys).toHaveLength(1);
    await client.set('{o}k', 'v');
    expect(await client.object('ENCODING', '{o}k')).toBe('embstr');
  });
});

describe('SCAN through the proxy', () => {
  it('returns every key of every shard exactly once with integer cursors, and no foreign key', async () => {
    const { client, route } = await setup('scan');
    const keys = Array.from({ length: 300 }, (_, i) => `s:${i}`);
    await client.mset(...keys.flatMap((k) => [k, '1']));
    await client.hset('s:hash', 'f', 'v');
    const foreign = await writeForeignKeys(route, 's');
    const seen = await scanAll(client, ['COUNT', 10]);
    expect(seen.length).toBe(301);
    expect(sorted(seen)).toEqual(sorted([...keys, 's:hash']));
    for (const f of foreign) expect(seen).not.toContain(f);
    // MATCH and TYPE go to the shards as given.
    expect(sorted(await scanAll(client, ['MATCH', 's:1?', 'COUNT', 50]))).toEqual(sorted(keys.filter((k) => /^s:1.$/.test(k))));
    expect(await scanAll(client, ['TYPE', 'hash'])).toEqual(['s:hash']);
  });

  it('answers ERR invalid cursor like Redis, for the old cursor format too', async () => {
    const { client } = await setup('badcursor');
    for (const bad of ['abc', '-1', '00003', '1.5']) await expect(client.call('SCAN', bad), bad).rejects.toThrow(/^ERR invalid cursor$/);
  });

  it('returns every key of the original shards exactly once when a shard is added mid-scan, before them in id order', async () => {
    const { client, admin, route } = await setup('scangrow');
    const keys = Array.from({ length: 300 }, (_, i) => `g:${i}`);
    await client.mset(...keys.flatMap((k) => [k, '1']));
    const extra = await world.redis();
    const seen = await scanAll(client, ['COUNT', 20], async (page) => {
      if (page !== 4) return;
      // A new shard "a0" (first in id order) gets one slot none of the keys is in.
      await admin.addShard('scangrow', { master: extra.address, id: 'a0' });
      const current = await admin.getCluster('scangrow');
      const used = new Set(keys.map((k) => keySlot(k, route.slotCount)));
      let free = 0;
      while (used.has(free)) free++;
      const owners = slotOwners(current.route);
      const shards = current.route.shards.map((s, i) => {
        const slots: number[] = [];
        owners.forEach((owner, slot) => owner === i && slot !== free && slots.push(slot));
        return { ...s, slots: toRanges(s.id === 'a0' ? [free] : slots) };
      });
      const moved = { ...current.route, epoch: current.route.epoch + 1, shards };
      await admin.clusters.writeRoute(moved, current.routeRevision);
      await waitFor('the proxy to apply the new route', async () => (await admin.listProxies('scangrow')).proxies[0]?.epoch === moved.epoch);
      await redis.at(extra.address).set('g:on-the-new-shard-but-foreign', '1');
    });
    expect(seen.length).toBe(keys.length);
    expect(sorted(seen)).toEqual(sorted(keys));
  });
});
