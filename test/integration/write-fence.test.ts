/**
 * The write fence, on real controllers and redis: the leader keeps `min-replicas-to-write 1` on a
 * master that has a live slave and 0 on one that has none, so that a master cut off from its slaves
 * (here: stalled, then replaced by a failover) acknowledges no write of its own.
 */
import { describe, expect, it } from 'vitest';
import type { HistoryEntry } from '../../src/model/schemas.js';
import { waitFor } from '../../src/playground/processes.js';
import type { AdminService } from '../../src/service/admin-service.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useRawClients } from '../helpers/raw-client.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const raw = useRawClients();

/** The fence settings in force on an instance, as Redis reports them. */
async function fenceOf(address: string): Promise<{ toWrite: number; lag: number }> {
  const reply = (await redis.at(address).call('CONFIG', 'GET', 'min-replicas-*')) as string[];
  const values = new Map<string, string>();
  for (let i = 0; i + 1 < reply.length; i += 2) values.set(reply[i]!, reply[i + 1]!);
  return { toWrite: Number(values.get('min-replicas-to-write')), lag: Number(values.get('min-replicas-max-lag')) };
}

async function fenceEntries(admin: AdminService, cluster: string): Promise<HistoryEntry[]> {
  return (await admin.listHistory(cluster)).entries.filter((e) => e.action === 'fence');
}

describe('the write fence', () => {
  it('fences a master with a live slave, unfences it when its slave dies, fences it again when the slave is back', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'fence');
    const slave = slaves[0]!;
    world.controller('w1', prefix);
    await replicating(redis, [slave], master.address);
    await waitFor('the master fenced', async () => (await fenceOf(master.address)).toWrite === 1, 10_000);
    expect(await fenceOf(master.address)).toEqual({ toWrite: 1, lag: 2 });
    // The slave is never fenced, and a fenced master with a live slave takes writes.
    expect((await fenceOf(slave.address)).toWrite).toBe(0);
    expect((await redis.replication(master.address)).goodSlaves).toBe(1);
    expect(await redis.at(master.address).set('k', 'fenced')).toBe('OK');

    await slave.process.kill9();
    await waitFor('the master unfenced', async () => (await fenceOf(master.address)).toWrite === 0, 10_000);
    expect(await redis.at(master.address).set('k', 'alone')).toBe('OK');
    expect((await redis.replication(master.address)).goodSlaves).toBeUndefined();

    // Back empty: the controller makes it a slave again, and once it is linked fences the master.
    const back = await world.redis([], slave.port);
    await replicating(redis, [back], master.address);
    await waitFor('the master fenced again', async () => (await fenceOf(master.address)).toWrite === 1, 10_000);
    expect(await redis.at(back.address).get('k')).toBe('alone');

    // Recorded once per change, each with its reason.
    const entries = await fenceEntries(admin, 'fence');
    expect(entries.map((e) => [e.target, e.outcome, e.detail?.['minReplicasToWrite']])).toEqual([
      [master.address, 'done', 1],
      [master.address, 'done', 0],
      [master.address, 'done', 1],
    ]);
    expect(entries[0]!.reason).toMatch(/replicates from .* with the link up/);
    expect(entries[1]!.reason).toMatch(new RegExp(`has no live slave \\(${slave.address} unreachable`));
  });

  it('a stalled master that was failed over acknowledges no write sent to it once it resumes', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'stall');
    const slave = slaves[0]!;
    const first = world.controller('s1', prefix);
    await replicating(redis, [slave], master.address);
    await waitFor('the master fenced', async () => (await fenceOf(master.address)).toWrite === 1, 10_000);
    const lagMs = (await fenceOf(master.address)).lag * 1000;
    expect(await redis.at(master.address).set('before', '1')).toBe('OK');
    await waitFor('the write on the slave', async () => (await redis.at(slave.address).get('before')) === '1');

    // A connection opened before the stall, as a proxy's would be.
    const open = await raw(master.address);
    const stoppedAt = Date.now();
    master.process.signal('SIGSTOP');
    await waitFor('the failover', async () => (await admin.route('stall')).shards[0]!.master === slave.address, 20_000);
    // The demotion of the old master is held: the only leader from now on cannot reach it.
    await first.stop();
    world.controller('s2', prefix, [], { unreachable: [master.address] });
    // The stall outlasts the fence's lag bound.
    await new Promise((r) => setTimeout(r, Math.max(0, stoppedAt + lagMs + 1000 - Date.now())));
    master.process.signal('SIGCONT');
    // Commands it reads in its first event-loop turns still see the slave count from before the
    // stall (docs/failover.md); from the moment it has noticed its slave left, it refuses writes.
    await waitFor('the old master to notice its slave left', async () => (await redis.replication(master.address)).connectedSlaves === 0);
    expect((await redis.replication(master.address)).goodSlaves).toBe(0);

    expect(await open.call('SET', 'after', '1')).toMatch(/^-NOREPLICAS /);
    const fresh = await raw(master.address);
    expect(await fresh.call('SET', 'after', '2')).toMatch(/^-NOREPLICAS /);
    expect(await open.call('INCR', 'counter')).toMatch(/^-NOREPLICAS /);
    // Refused by the fence, not by a demotion: it is still a master, and has none of the writes.
    expect((await redis.replication(master.address)).role).toBe('master');
    expect(await redis.at(master.address).exists('after', 'counter')).toBe(0);
    // The promoted slave was unfenced as it was promoted (it has no live slave), and takes writes.
    expect(await redis.at(slave.address).set('new', '1')).toBe('OK');
    expect(await redis.at(slave.address).get('before')).toBe('1');
  });
});
