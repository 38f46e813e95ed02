/**
 * A leader cut off from Redis (but not from etcd) lets a replica that can see Redis lead, and the
 * failover of a dead master then happens — on a 3-member etcd, with the cut made by the harness
 * (the leader's connections to the instances are refused).
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/playground/processes.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';
import { leaderIs } from '../helpers/tasks.js';

const world = useWorld({ etcdMembers: 3 });
const redis = useRedisClients();

describe('a leader that sees less', () => {
  it('cut off from every instance, the leader steps aside; the new leader fails a dead master over', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'blind', { slaves: 2 });
    const instances = [master.address, ...slaves.map((s) => s.address)];
    world.controller('blind1', prefix, [], { unreachable: instances });
    await leaderIs(admin, 'blind1');
    world.controller('sees2', prefix);
    world.controller('sees3', prefix);
    await replicating(redis, slaves, master.address);

    const next = await waitFor('another replica to lead', async () => {
      const leader = (await admin.controllers.leader())?.controller;
      return leader && leader !== 'blind1' ? leader : null;
    }, 30_000);
    expect(['sees2', 'sees3']).toContain(next);
    const { entries } = await admin.listHistory('blind');
    const aside = entries.find((e) => e.action === 'step-aside');
    expect(aside?.controller).toBe('blind1');
    expect(aside?.reason).toMatch(/blind1 cannot reach .* which \d\+ of the replicas \(sees.*\) reach; sees.* more: stepping aside/);

    // The master dies: the replica that sees Redis fails it over.
    await master.process.kill9();
    const failover = await waitFor('the failover', async () => {
      // (Alone at start-up, blind1 may have tried one already, refused for want of a slave it can reach.)
      return (await admin.listTasks('blind')).tasks.find((x) => x.kind === 'failover' && x.state === 'done') ?? null;
    }, 30_000);
    expect(failover.controller).not.toBe('blind1');
    expect(slaves.map((s) => s.address)).toContain((await admin.route('blind')).shards[0]!.master);
    // The blind replica did not take the lock back meanwhile.
    expect((await admin.controllers.leader())?.controller).not.toBe('blind1');
  });
});
