/**
 * Test clusters on real redis-servers: shards of a master and slaves, created in etcd under a
 * fresh prefix, and a wait for replication to be in place.
 */
import { expect } from 'vitest';
import { slotOwners } from '../../src/model/route.js';
import { keySlot } from '../../src/model/slot.js';
import type { AdminService } from '../../src/service/admin-service.js';
import { waitFor, type RedisServer } from '../../src/playground/processes.js';
import type { useRedisClients } from './redis.js';
import { randomPrefix, type TestWorld } from './servers.js';

/** Fast probing so that tests run in seconds: probe every 200 ms, down after 1 s. */
export const FAST_PROBE = { intervalMs: 200, timeoutMs: 200, downAfterMs: 1000 };

export interface ShardServers {
  master: RedisServer;
  slaves: RedisServer[];
}

export interface TestCluster extends ShardServers {
  prefix: string;
  admin: AdminService;
  /** Every shard, the first one being `master`/`slaves`. */
  shards: ShardServers[];
}

/** Only what makeCluster needs of a world, so that the chaos runner can pass its own. */
export type ClusterWorld = Pick<TestWorld, 'redis' | 'admin'>;

export async function makeCluster(
  world: ClusterWorld,
  name: string,
  /** `slaves`: a count for every shard, or one count per shard (then `shards` defaults to their number). */
  options: { slaves?: number | number[]; shards?: number; failover?: Record<string, unknown>; probe?: Record<string, unknown>; /** Extra redis-server arguments of every instance (a password, ACL users). */ redisArgs?: string[] } = {},
): Promise<TestCluster> {
  const prefix = randomPrefix();
  const admin = world.admin(prefix);
  const shards: ShardServers[] = [];
  const perShard = Array.isArray(options.slaves) ? options.slaves : null;
  for (let i = 0; i < (options.shards ?? perShard?.length ?? 1); i++) {
    const master = await world.redis(options.redisArgs);
    const slaves: RedisServer[] = [];
    const slaveCount = perShard ? (perShard[i] ?? 1) : (options.slaves as number | undefined) ?? 1;
    for (let j = 0; j < slaveCount; j++) slaves.push(await world.redis(options.redisArgs));
    shards.push({ master, slaves });
  }
  await admin.createCluster({
    name,
    file: {
      probe: options.probe ?? FAST_PROBE,
      failover: options.failover ?? {},
      shards: shards.map((g) => ({ master: g.master.address, slaves: g.slaves.map((s) => s.address) })),
    },
  });
  return { prefix, admin, master: shards[0]!.master, slaves: shards[0]!.slaves, shards };
}

/** Waits until every one of `slaves` replicates from `master` with its link up. */
/**
 * Waits until the master streams its writes to every slave, which `replicating` does not prove: after a
 * diskless full sync Redis 7.0 counts a slave as online (and good enough for `min-replicas-to-write`)
 * but sends it nothing until the slave's first `REPLCONF ACK`, up to a second later. Writes taken in that
 * window are lost to a failover whatever the control plane does; fault tests start after it.
 * A PUBLISH (which Redis replicates) then WAIT proves it without writing a key.
 */
export async function streaming(redis: ReturnType<typeof useRedisClients>, slaves: RedisServer[], master: string): Promise<void> {
  await replicating(redis, slaves, master);
  await waitFor(`${master} to stream to its slaves`, async () => {
    const replies = await redis.at(master).pipeline().publish('test:streaming', '1').call('WAIT', String(slaves.length), '1000').exec();
    return Number(replies?.[1]?.[1]) >= slaves.length;
  }, 20_000);
}

export async function replicating(redis: ReturnType<typeof useRedisClients>, slaves: RedisServer[], master: string): Promise<void> {
  await waitFor(`slaves to replicate from ${master}`, async () => {
    for (const s of slaves) {
      const info = await redis.replication(s.address);
      if (info.masterAddress !== master || !info.linkUp) return false;
    }
    return true;
  }, 20_000);
}

/**
 * After a migration or a split: nothing migrates any more, and every key is on exactly the shard
 * that owns its slot (read on the masters). Returns each key's shards, for the caller's own checks.
 */
export async function keysOnTheirOwners(redis: ReturnType<typeof useRedisClients>, admin: AdminService, cluster: string): Promise<Map<string, string[]>> {
  const route = await admin.route(cluster);
  expect(route.migrating).toEqual([]);
  const owners = slotOwners(route);
  const holders = new Map<string, string[]>();
  for (const shard of route.shards) {
    for (const key of (await redis.at(shard.master).keys('*')) as string[]) holders.set(key, [...(holders.get(key) ?? []), shard.id]);
  }
  for (const [key, shards] of holders) {
    expect(shards, `${key} is on one shard`).toHaveLength(1);
    expect(shards[0], `${key} is on the owner of its slot`).toBe(route.shards[owners[keySlot(key, route.slotCount)]!]!.id);
  }
  return holders;
}
