/**
 * What the proxies do while slots migrate (docs/migration.md), driven by hand-written routes and
 * the leader's key mover: commands of a preparing slot wait, commands of a moving slot move their
 * keys first, and under two proxies and the mover no acknowledged write is lost and every key ends
 * on exactly one shard.
 */
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { KeyMover } from '../../src/migration/mover.js';
import { planMoves, routeCommitted, routeWithPhase, type Moves } from '../../src/model/migration.js';
import type { Route } from '../../src/model/schemas.js';
import { keySlot } from '../../src/model/slot.js';
import { waitFor } from '../../src/playground/processes.js';
import type { Proxy } from '../../src/proxy/proxy.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Two shards owning every slot, an empty third one, two proxies. */
async function setup(name: string, proxyOptions = {}) {
  const prefix = randomPrefix();
  const [m0, m1, m2] = [await world.redis(), await world.redis(), await world.redis()];
  const admin = world.admin(prefix);
  await admin.createCluster({ name, slots: 64, file: { shards: [{ master: m0.address }, { master: m1.address }] } });
  await admin.addShard(name, { master: m2.address, id: 's2' });
  const a = await proxies.start(world.etcd.endpoint, prefix, name, proxyOptions);
  const b = await proxies.start(world.etcd.endpoint, prefix, name, proxyOptions);
  const publish = async (change: (route: Route) => Route): Promise<Route> => {
    const current = await admin.getCluster(name);
    const next = change(current.route);
    await admin.clusters.writeRoute(next, current.routeRevision);
    await waitFor(`both proxies to drain epoch ${next.epoch}`, async () => (await admin.listProxies(name)).proxies.filter((p) => p.epoch === next.epoch).length === 2, 10_000);
    return next;
  };
  return { admin, masters: [m0, m1, m2], proxies: [a, b] as [Proxy, Proxy], publish, route: (await admin.getCluster(name)).route };
}

/** Keys (with their hash tag) that fall in `slot`. */
function keysIn(slot: number, count: number, tag = 'k'): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if (keySlot(`${tag}:${i}`, 64) === slot) keys.push(`${tag}:${i}`);
  return keys;
}

function targetsOf(route: Route, moves: Moves, from: string) {
  const address = (id: string) => route.shards.find((s) => s.id === id)!.master;
  const map = new Map<number, { address: string; replicas: number }>();
  for (const move of moves) if (move.from === from) for (const [a, b] of move.slots) for (let s = a; s <= b; s++) map.set(s, { address: address(move.to), replicas: 0 });
  return map;
}

describe('proxies while slots migrate', () => {
  it('holds the commands of a preparing slot, in order, and runs them where the keys went once it moves', async () => {
    const { masters, proxies: [a], publish, route } = await setup('hold');
    const client = proxies.client(a);
    const other = proxies.client(a);
    const [k] = keysIn(0, 1);
    const [elsewhere] = keysIn(40, 1);
    await client.set(k!, 'v0');
    const moves = planMoves(route, [0], 's2');
    await publish((r) => routeWithPhase(r, { moves }, 'prepare'));

    const set = client.set(k!, 'v1');
    const after = client.get(elsewhere!); // later, on a served slot: waits behind the held SET
    let settled = false;
    void Promise.all([set, after]).then(() => (settled = true));
    expect(await other.set(elsewhere!, 'x')).toBe('OK'); // another client is not held
    await sleep(300);
    expect(settled).toBe(false);
    expect(await redis.at(masters[0]!.address).get(k!)).toBe('v0');

    await publish((r) => routeWithPhase(r, { moves }, 'moving'));
    expect(await set).toBe('OK');
    expect(await after).toBe('x');
    expect(await redis.at(masters[2]!.address).get(k!)).toBe('v1');
    expect(await redis.at(masters[0]!.address).exists(k!)).toBe(0);
    expect(a.metrics.counters.keysMoved).toBe(1);
  });

  it('answers TRYAGAIN when a hold runs out, and for WATCH or a blocking pop on a moving slot', async () => {
    const { proxies: [a], publish, route } = await setup('tryagain', { migrationHoldMs: 300 });
    const client = proxies.client(a);
    const [k, k2] = keysIn(1, 2);
    const moves = planMoves(route, [1], 's2');
    await publish((r) => routeWithPhase(r, { moves }, 'prepare'));
    await expect(client.set(k!, '1')).rejects.toThrow(/^TRYAGAIN proxy: slot 1 is migrating/);
    await publish((r) => routeWithPhase(r, { moves }, 'moving'));
    await expect(client.watch(k!)).rejects.toThrow(/^TRYAGAIN/);
    await expect(client.blpop(k!, 1)).rejects.toThrow(/^TRYAGAIN/);
    // Split commands move their keys first: MSET/MGET/DEL across moving and served slots.
    const [served] = keysIn(50, 1);
    expect(await client.mset(k!, 'a', k2!, 'b', served!, 'c')).toBe('OK');
    expect(await client.mget(k!, k2!, served!)).toEqual(['a', 'b', 'c']);
    expect(await client.del(k!, served!)).toBe(2);
  });

  it('moves a key once: a key known gone from its source runs at the target without another MIGRATE, but never before an earlier command of the same client', async () => {
    const { masters, proxies: [a], publish, route } = await setup('gone');
    const client = proxies.client(a);
    const [k, early] = keysIn(3, 2);
    await client.set(k!, 'v0');
    await client.set(early!, 'new');
    const moves = planMoves(route, [3], 's2');
    await publish((r) => routeWithPhase(r, { moves }, 'moving'));
    const migrates = async () => Number(/cmdstat_migrate:calls=(\d+)/.exec(await redis.at(masters[0]!.address).info('commandstats'))?.[1] ?? 0);

    const before = await migrates();
    expect(await client.get(k!)).toBe('v0'); // moved on this access
    for (let i = 0; i < 5; i++) expect(await client.get(k!)).toBe('v0'); // then served at the target at once
    expect(await migrates()).toBe(before + 1);
    expect(await redis.at(masters[2]!.address).get(k!)).toBe('v0');

    // `early` is still on the source; k is known gone. In one pipeline, a SET of `early` (which
    // must move first) and then a script declared on k alone that reads `early` at the target:
    // the script must see the SET's value, so it waits for the move although k needs none.
    const [set, read] = (await client
      .pipeline()
      .set(early!, 'newer')
      .eval("redis.call('SET', KEYS[1], redis.call('GET', ARGV[1]) or 'nothing'); return 1", 1, k!, early!)
      .exec())!;
    expect(set![1]).toBe('OK');
    expect(read![1]).toBe(1);
    expect(await redis.at(masters[2]!.address).get(k!)).toBe('newer');
  });

  it('keeps holding past its limit while the route keeps coming (a leader copying a big key), then runs the command', async () => {
    const { proxies: [a], publish, route } = await setup('renew', { migrationHoldMs: 600 });
    const client = proxies.client(a);
    const [k] = keysIn(2, 1);
    const moves = planMoves(route, [2], 's2');
    await publish((r) => routeWithPhase(r, { moves }, 'prepare'));
    const set = client.set(k!, 'late');
    let outcome: unknown = null;
    set.then((v) => (outcome = v), (err: Error) => (outcome = err.message));
    for (let i = 0; i < 6; i++) {
      await sleep(300); // 1.8 s in all: three times the hold limit
      await publish((r) => ({ ...r, epoch: r.epoch + 1 }));
    }
    expect(outcome).toBeNull();
    await publish((r) => routeWithPhase(r, { moves }, 'moving'));
    expect(await set).toBe('OK');
  });

  it('under writers on two proxies and the mover, every acknowledged write survives and each key ends on one shard', async () => {
    const { admin, masters, proxies: [a, b], publish, route } = await setup('move');
    const clients = [proxies.client(a), proxies.client(b)];
    const slots = [0, 1, 2, 3, 4, 5, 6, 7];
    const counters = slots.flatMap((s) => keysIn(s, 4, 'c'));
    const bulk = slots.flatMap((s) => keysIn(s, 150, 'b'));
    const stay = keysIn(33, 50, 's');
    const fill = clients[0]!.pipeline();
    for (const key of [...bulk, ...stay]) fill.set(key, key, 'EX', 3600);
    await fill.exec();
    const moves = planMoves(route, slots, 's2');
    const prepared = await publish((r) => routeWithPhase(r, { moves }, 'prepare'));

    // INCRs from both proxies, each counted once acknowledged; bounded in count and time.
    const acked = new Map<string, number>(counters.map((k) => [k, 0]));
    let stop = false;
    const deadline = Date.now() + 30_000;
    const write = async (client: Redis, seed: number) => {
      for (let i = seed; !stop && Date.now() < deadline && i < 200_000; i += 2) {
        const key = counters[i % counters.length]!;
        try {
          await client.incr(key);
          acked.set(key, acked.get(key)! + 1);
        } catch {
          await sleep(5);
        }
      }
    };
    const writers = [write(clients[0]!, 0), write(clients[1]!, 1)];
    await publish((r) => routeWithPhase(r, { moves }, 'moving'));
    const mover = new KeyMover({ scanCount: 50, keysPerBatch: 20, timeoutMs: 5000, replicaWaitMs: 500 });
    try {
      for (let pass = 0; pass < 5; pass++) {
        const result = await mover.pass({ source: masters[0]!.address, slotCount: 64, targets: targetsOf(prepared, moves, moves[0]!.from) }, () => true);
        if (result.seen === 0) break;
      }
    } finally {
      mover.close();
    }
    await publish((r) => routeCommitted(r, { moves }));
    await sleep(200);
    stop = true;
    await Promise.all(writers);

    const source = redis.at(masters[0]!.address);
    const target = redis.at(masters[2]!.address);
    for (const key of [...counters, ...bulk]) {
      expect(await source.exists(key), `${key} left on the source`).toBe(0);
    }
    for (const key of counters) expect(Number(await target.get(key) ?? 0), key).toBe(acked.get(key));
    for (const key of bulk.slice(0, 50)) {
      expect(await target.get(key)).toBe(key);
      expect(await target.ttl(key)).toBeGreaterThan(3000);
    }
    expect([...acked.values()].reduce((x, y) => x + y, 0)).toBeGreaterThan(100);
    expect(await clients[0]!.dbsize()).toBe(counters.length + bulk.length + stay.length);
    expect((await admin.route('move')).migrating).toEqual([]);
  });
});
