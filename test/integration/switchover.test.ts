import { describe, expect, it } from 'vitest';
import { RefusedError } from '../../src/model/errors.js';
import { waitFor } from '../../src/playground/processes.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { RouteWatcher } from '../../src/store/route-watcher.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
describe('planned switchover (cfgctl failover) on real etcd and redis', () => {
  it('under a continuous writer, every acknowledged write is on the new master', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'sw', { slaves: 2 });
    world.controller('w1', prefix);
    world.controller('w2', prefix);
    await replicating(redis, slaves, master.address);

    const watcher = new RouteWatcher({ cluster: 'sw', etcd: world.client, prefix });
    await watcher.start();
    const acked: number[] = [];
    let errors = 0;
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; ) {
        const to = watcher.current()!.shards[0]!.master;
        try {
          await redis.at(to).set(`w:${i}`, String(i));
          acked.push(i);
          i++;
        } catch {
          errors++;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    })();
    await waitFor('some writes', async () => acked.length > 200);

    const result = await cfgctl(world.etcd.endpoint, prefix, ['failover', 'sw', '--shard', 's0', '--to', slaves[1]!.address]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    for (const step of ['check', 'pause', 'catchup', 'promote', 'demote', 'publish', 'unpause', 'barrier', 'repoint']) expect(result.stdout).toMatch(new RegExp(`^  ${step}\\b`, 'm'));
    expect(result.stdout).toContain(`done: ${slaves[1]!.address} is master of s0`);

    const countAtSwitch = acked.length;
    await waitFor('writes on the new master', async () => acked.length > countAtSwitch + 200);
    stop = true;
    await writer;
    await watcher.stop();

    const route = await admin.route('sw');
    expect(route.shards[0]!.master).toBe(slaves[1]!.address);
    expect(route.shards[0]!.slaves.sort()).toEqual([master.address, slaves[0]!.address].sort());
    const newMaster = redis.at(slaves[1]!.address);
    for (let from = 0; from < acked.length; from += 500) {
      const batch = acked.slice(from, from + 500);
      const values = await newMaster.mget(...batch.map((i) => `w:${i}`));
      const missing = batch.filter((i, k) => values[k] !== String(i));
      expect(missing, `acknowledged writes missing on the new master`).toEqual([]);
    }
    // The old master now follows the new one, and so does the other slave.
    await replicating(redis, [master, slaves[0]!], slaves[1]!.address);
    // Writes that waited on the old master during the switch failed (READONLY) rather than being lost.
    expect(errors).toBeLessThan(50);
  });

  it('refuses a target that is not a slave of the shard, an unreachable target, and a busy shard', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'nope', { slaves: 1 });
    const notSlave = await cfgctl(world.etcd.endpoint, prefix, ['failover', 'nope', '--shard', 's0', '--to', master.address]);
    expect(notSlave.code).toBe(5);
    expect(notSlave.stderr).toMatch(/is not a slave of shard s0/);
    expect((await admin.listTasks('nope')).tasks).toEqual([]);

    // No controller runs yet: the first request stays pending, a second one is refused.
    const first = await admin.requestSwitchover('nope', { shard: 's0' });
    expect(first.state).toBe('pending');
    await expect(admin.requestSwitchover('nope', { shard: 's0' })).rejects.toBeInstanceOf(RefusedError);
    const busy = await cfgctl(world.etcd.endpoint, prefix, ['failover', 'nope', '--shard', 's0']);
    expect(busy.code).toBe(5);
    expect(busy.stderr).toMatch(/shard s0 is busy with task/);

    // The slave dies; a controller takes the pending task and refuses it, saying why.
    await slaves[0]!.process.kill9();
    world.controller('n1', prefix);
    const refused = await waitFor('the refusal', async () => {
      const t = (await admin.listTasks('nope')).tasks[0]!;
      return t.state === 'refused' ? t : null;
    }, 15_000);
    expect(refused.error).toMatch(new RegExp(`${slaves[0]!.address} is unreachable`));
    expect((await admin.route('nope')).shards[0]!.master).toBe(master.address);
    expect((await redis.replication(master.address)).role).toBe('master');
    // The shard is free again: a new request is accepted (and refused for the same reason).
    const again = await cfgctl(world.etcd.endpoint, prefix, ['failover', 'nope', '--shard', 's0']);
    expect(again.code).toBe(5);
    expect(again.stderr).toMatch(/refused: no target: .* is unreachable/);
  });
  it('asked while the master is stalled (SIGSTOP shorter than the down window): waits for it, then completes', async () => {
    // A probe every 200 ms that gives up after 200 ms; down only after 5 s: a stall of about 1.5 s
    // makes probes fail without making the master dead.
    const { prefix, admin, master, slaves } = await makeCluster(world, 'stall', { slaves: 1, probe: { intervalMs: 200, timeoutMs: 200, downAfterMs: 5000 } });
    world.controller('st1', prefix);
    await replicating(redis, slaves, master.address);
    await waitFor('a leader', async () => (await admin.controllers.leader()) !== null, 15_000);
    master.process.signal('SIGSTOP');
    let resumed = false;
    try {
      await new Promise((r) => setTimeout(r, 500));
      await admin.requestSwitchover('stall', { shard: 's0' });
      // The leader takes the task while its probes of the master fail...
      await waitFor('the leader to take the task', async () => (await admin.listTasks('stall')).tasks[0]?.state === 'running', 10_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect((await admin.listTasks('stall')).tasks[0]).toMatchObject({ state: 'running', next: 'check' });
      master.process.signal('SIGCONT');
      resumed = true;
    } finally {
      if (!resumed) master.process.signal('SIGCONT');
    }
    // ...and goes on once the master answers again, instead of refusing it.
    const ended = await waitFor('the switchover to end', async () => {
      const t = (await admin.listTasks('stall')).tasks[0]!;
      return t.state === 'running' || t.state === 'pending' ? null : t;
    }, 20_000);
    expect(ended.state, ended.error ?? '').toBe('done');
    expect((await admin.route('stall')).shards[0]!.master).toBe(slaves[0]!.address);
  });
});
