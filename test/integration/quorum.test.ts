/**
 * The failover quorum is a majority of the configured replicas, not of those registered now.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/playground/processes.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();

describe('failover quorum of the configured replicas', () => {
  it('cfgctl replicas sets, shows and validates the count', async () => {
    const { prefix } = await makeCluster(world, 'count', { slaves: 0 });
    const run = (...args: string[]) => cfgctl(world.etcd.endpoint, prefix, args);
    expect((await run('replicas')).stdout).toContain('configured replicas: not set');
    for (const bad of ['0', '100', '2.5', 'three']) {
      const res = await run('replicas', 'set', bad);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/replica count/);
    }
    expect((await run('replicas', 'set')).code).toBe(2);
    expect((await run('replicas')).stdout).toContain('configured replicas: not set');

    const set = await run('replicas', 'set', '3', '--json');
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ configured: { replicas: 3 }, registered: 0, quorum: { needed: 2, replicas: 3 } });
    expect((await run('replicas')).stdout).toContain('a failover needs 2 of 3 replicas judging the master down');
    expect((await run('replicas', 'unset')).code).toBe(0);
    expect(JSON.parse((await run('replicas', '--json')).stdout)).toMatchObject({ configured: null, quorum: { needed: 1, replicas: 1 } });
  });

  it('with 3 replicas configured, a lone replica does not fail a dead master over (and says why, once); a second replica makes the quorum', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'lone', { slaves: 1 });
    await admin.setReplicas(3);
    world.controller('q1', prefix);
    await replicating(redis, slaves, master.address);
    const before = await admin.route('lone');

    await master.process.kill9();
    const refusal = await waitFor('the refusal in history', async () => (await admin.listHistory('lone')).entries.find((e) => e.outcome === 'refused'), 15_000);
    expect(refusal.reason).toBe(`2 of 3 configured replicas needed, only 1 votes (q1) that ${master.address} is down; 2 configured replicas are not registered: no failover`);
    expect(refusal).toMatchObject({ controller: 'q1', action: 'failover', shard: 's0', target: master.address });
    // Several cycles later: still no failover, and the refusal recorded once for the episode.
    await new Promise((r) => setTimeout(r, 2000));
    expect((await admin.listTasks('lone')).tasks).toEqual([]);
    expect(await admin.route('lone')).toEqual(before);
    expect((await admin.listHistory('lone')).entries.filter((e) => e.outcome === 'refused')).toHaveLength(1);

    world.controller('q2', prefix);
    const after = await waitFor('the failover once a second replica votes', async () => {
      const r = await admin.route('lone');
      return r.shards[0]!.master !== master.address ? r : null;
    }, 20_000);
    expect(after.shards[0]!.master).toBe(slaves[0]!.address);
    const [task] = (await admin.listTasks('lone')).tasks;
    expect(task!.reason).toMatch(/^2 of 2 needed replicas \(q1, q2\) judge .* down, a majority of 3 replicas$/);
  });
});
