/**
 * Switchovers that meet faults, on a 3-member etcd: a pause that runs out before the demotion, a
 * leader killed between two steps, a cancel, a timeout, a master that dies midway. In every case
 * the task ends within a bounded time and no acknowledged write is lost.
 */
import { describe, expect, it } from 'vitest';
import { RefusedError } from '../../src/model/errors.js';
import { waitFor } from '../../src/playground/processes.js';
import { RouteWatcher } from '../../src/store/route-watcher.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, useWorld } from '../helpers/servers.js';
import { leaderIs, missingWrites, taskEnded, taskWhen, writeContinuously } from '../helpers/tasks.js';

const world = useWorld({ etcdMembers: 3 });
const redis = useRedisClients();

async function watch(cluster: string, prefix: string): Promise<RouteWatcher> {
  const watcher = new RouteWatcher({ cluster, etcd: world.client, prefix });
  await watcher.start();
  return watcher;
}

const stepsOf = (t: { steps: { step: string }[] }) => t.steps.map((s) => s.step);

describe('switchover under faults (3-member etcd)', () => {
  it('a pause that runs out before the demotion: the old master took writes, so the switchover is undone and nothing is lost', async () => {
    // A 2 s pause, and a leader that sleeps 4 s after the promotion: the old master takes writes
    // again before the demotion, which must notice and undo rather than wipe them. The write fence
    // is off: it would refuse those writes (the promoted target left the old master), and the
    // demotion's own re-check is what this test is about.
    const { prefix, admin, master, slaves } = await makeCluster(world, 'ranout', { slaves: 1, failover: { switchoverTimeoutMs: 2000, writeFence: false } });
    world.controller('ro1', prefix, [], { pauseAfter: { step: 'promote', ms: 4000 } });
    await leaderIs(admin, 'ro1');
    await replicating(redis, slaves, master.address);
    const watcher = await watch('ranout', prefix);
    const writer = writeContinuously(watcher, redis.at);
    await waitFor('some writes', async () => writer.acked.length > 100);

    const asked = await admin.requestSwitchover('ranout', { shard: 's0' });
    const ended = await taskEnded(admin, 'ranout', asked.id);
    const countAtEnd = writer.acked.length;
    await waitFor('more writes after the undo', async () => writer.acked.length > countAtEnd + 100);
    await writer.stop();
    await watcher.stop();

    expect(ended.state).toBe('failed');
    expect(ended.error).toMatch(/ran out before the demotion/);
    expect(ended.error).toMatch(new RegExp(`${slaves[0]!.address} follows ${master.address} again`));
    expect(stepsOf(ended)).toEqual(['accepted', 'check', 'pause', 'catchup', 'promote', 'demote']);
    expect((await admin.route('ranout')).shards[0]!.master).toBe(master.address);
    expect((await redis.replication(master.address)).role).toBe('master');
    await replicating(redis, slaves, master.address);
    expect(await missingWrites(redis.at(master.address), writer.acked)).toEqual([]);
  });

  it('the leader killed after the demotion, before the route changed: the next leader publishes; no acknowledged write is lost', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'killdemote', { slaves: 1 });
    const k1 = world.controller('kd1', prefix, [], { pauseAfter: { step: 'demote', ms: 60_000 } });
    await leaderIs(admin, 'kd1');
    world.controller('kd2', prefix);
    await replicating(redis, slaves, master.address);
    const watcher = await watch('killdemote', prefix);
    const writer = writeContinuously(watcher, redis.at);
    await waitFor('some writes', async () => writer.acked.length > 100);

    const asked = await admin.requestSwitchover('killdemote', { shard: 's0' });
    const midway = await taskWhen(admin, 'killdemote', asked.id, 'to stop after the demotion', (t) => t.next === 'publish');
    expect(midway.controller).toBe('kd1');
    // The old master is a slave already: nothing can be acknowledged on either side until the route changes.
    expect((await redis.replication(master.address)).masterAddress).toBe(slaves[0]!.address);
    await k1.kill9();

    const done = await taskEnded(admin, 'killdemote', asked.id);
    const countAtEnd = writer.acked.length;
    await waitFor('writes on the new master', async () => writer.acked.length > countAtEnd + 100);
    await writer.stop();
    await watcher.stop();

    expect(done.state).toBe('done');
    expect(done.controller).toBe('kd2');
    expect(stepsOf(done)).toEqual(['accepted', 'check', 'pause', 'catchup', 'promote', 'demote', 'publish', 'unpause', 'barrier', 'repoint']);
    expect((await admin.route('killdemote')).shards[0]!.master).toBe(slaves[0]!.address);
    expect(await missingWrites(redis.at(slaves[0]!.address), writer.acked)).toEqual([]);
  });

  it('the leader killed between the promotion and the demotion: the next leader starts again from the pause; no acknowledged write is lost', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'killpromote', { slaves: 1, failover: { switchoverTimeoutMs: 10_000 } }); // room for the re-sync on a busy machine
    const k1 = world.controller('kp1', prefix, [], { pauseAfter: { step: 'promote', ms: 60_000 } });
    await leaderIs(admin, 'kp1');
    world.controller('kp2', prefix);
    await replicating(redis, slaves, master.address);
    const watcher = await watch('killpromote', prefix);
    const writer = writeContinuously(watcher, redis.at);
    await waitFor('some writes', async () => writer.acked.length > 100);

    const asked = await admin.requestSwitchover('killpromote', { shard: 's0' });
    await taskWhen(admin, 'killpromote', asked.id, 'to stop after the promotion', (t) => t.next === 'demote');
    await k1.kill9();

    const done = await taskEnded(admin, 'killpromote', asked.id);
    const countAtEnd = writer.acked.length;
    await waitFor('writes on the new master', async () => writer.acked.length > countAtEnd + 100);
    await writer.stop();
    await watcher.stop();

    expect(done.state).toBe('done');
    expect(done.controller).toBe('kp2');
    const steps = stepsOf(done);
    expect(steps.slice(0, 6)).toEqual(['accepted', 'check', 'pause', 'catchup', 'promote', 'resume']);
    expect(steps.slice(6)).toEqual(['pause', 'catchup', 'promote', 'demote', 'publish', 'unpause', 'barrier', 'repoint']);
    expect((await admin.route('killpromote')).shards[0]!.master).toBe(slaves[0]!.address);
    expect(await missingWrites(redis.at(slaves[0]!.address), writer.acked)).toEqual([]);
  });

  it('cfgctl tasks cancel: a running switchover is undone; a pending one ends at once; an ended one cannot be cancelled', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'cancel', { slaves: 1 });
    world.controller('c1', prefix, [], { pauseAfter: { step: 'promote', ms: 8000 } });
    await leaderIs(admin, 'c1');
    await replicating(redis, slaves, master.address);

    const asked = await admin.requestSwitchover('cancel', { shard: 's0' });
    await taskWhen(admin, 'cancel', asked.id, 'to be promoted', (t) => t.next === 'demote');
    const cancelled = await cfgctl(world.etcd.endpoint, prefix, ['tasks', 'cancel', 'cancel', asked.id]);
    expect(cancelled.stderr).toBe('');
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(/cancelled: cancelled by cfgctl@/);
    const ended = await admin.getTask('cancel', asked.id);
    expect(ended.state).toBe('cancelled');
    expect(stepsOf(ended).at(-1)).toBe('cancel');
    expect(ended.error).toMatch(new RegExp(`${slaves[0]!.address} follows ${master.address} again; writes on ${master.address} unpaused`));
    expect((await admin.route('cancel')).shards[0]!.master).toBe(master.address);
    await replicating(redis, slaves, master.address);
    // Unpaused: a write is answered at once (a paused one would wait for seconds).
    await redis.at(master.address).set('after-cancel', '1');
    expect(await redis.at(master.address).get('after-cancel')).toBe('1');
    const { entries } = await admin.listHistory('cancel');
    expect(entries.some((e) => e.action === 'switchover:cancel' && e.outcome === 'info')).toBe(true);
    expect(entries.some((e) => e.action === 'switchover:cancel' && e.outcome === 'cancelled' && e.controller === 'c1')).toBe(true);

    // The whole task: every step with its time, duration and detail.
    const shown = await cfgctl(world.etcd.endpoint, prefix, ['tasks', 'show', 'cancel', asked.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^task ${asked.id}: switchover of shard s0, cancelled`));
    for (const step of stepsOf(ended)) expect(shown.stdout).toMatch(new RegExp(`\\n${step}\\s+\\d{4}-\\d\\d-\\d\\dT`));
    expect(shown.stdout).toMatch(/\d+ ms/);

    const again = await cfgctl(world.etcd.endpoint, prefix, ['tasks', 'cancel', 'cancel', asked.id]);
    expect(again.code).toBe(5);
    expect(again.stderr).toMatch(/has already ended: cancelled/);
    const unknown = await cfgctl(world.etcd.endpoint, prefix, ['tasks', 'cancel', 'cancel', 'no-such-task']);
    expect(unknown.code).toBe(3);

    // No controller runs for this one: the request stays pending, and a cancel ends it at once.
    const idle = await makeCluster(world, 'idle', { slaves: 1 });
    const pending = await idle.admin.requestSwitchover('idle', { shard: 's0' });
    const gone = await idle.admin.cancelTask('idle', pending.id, 'test');
    expect(gone.state).toBe('cancelled');
    expect((await idle.admin.getTask('idle', pending.id)).state).toBe('cancelled');
    // The shard is free again.
    expect((await idle.admin.requestSwitchover('idle', { shard: 's0' })).state).toBe('pending');
  });

  it('a task past its point of no return cannot be cancelled', async () => {
    const { admin } = await makeCluster(world, 'noreturn', { slaves: 1 });
    const asked = await admin.requestSwitchover('noreturn', { shard: 's0' });
    // As a leader would have left it after the demotion: only publishing is left to do.
    const stored = await admin.tasks.get('noreturn', asked.id);
    await admin.tasks.update({ ...stored.task, state: 'running', next: 'publish', target: stored.task.oldMaster.replace(/\d+$/, '1') }, stored.revision);
    await expect(admin.cancelTask('noreturn', asked.id, 'test')).rejects.toThrow(RefusedError);
    await expect(admin.cancelTask('noreturn', asked.id, 'test')).rejects.toThrow(/is already a slave of .* the switchover finishes by itself/);
    expect((await admin.getTask('noreturn', asked.id)).cancel).toBeNull();
  });

  it('a switchover that outlasts its task timeout is undone', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'slow', { slaves: 1, failover: { taskTimeoutMs: 1000 } });
    world.controller('t1', prefix, [], { pauseAfter: { step: 'promote', ms: 2000 } });
    await leaderIs(admin, 't1');
    await replicating(redis, slaves, master.address);

    const asked = await admin.requestSwitchover('slow', { shard: 's0' });
    const ended = await taskEnded(admin, 'slow', asked.id);
    expect(ended.state).toBe('failed');
    expect(stepsOf(ended).at(-1)).toBe('timeout');
    expect(ended.error).toMatch(/task timeout 1 s/);
    expect((await admin.route('slow')).shards[0]!.master).toBe(master.address);
    await replicating(redis, slaves, master.address);
  });

  it('a master that dies during a switchover is failed over: the switchover gives way', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'dies', { slaves: 2 });
    world.controller('d1', prefix, [], { pauseAfter: { step: 'pause', ms: 2000 } });
    await leaderIs(admin, 'd1');
    world.controller('d2', prefix);
    await replicating(redis, slaves, master.address);

    const asked = await admin.requestSwitchover('dies', { shard: 's0' });
    await taskWhen(admin, 'dies', asked.id, 'to pause the master', (t) => t.next === 'catchup');
    await master.process.kill9();

    const ended = await taskEnded(admin, 'dies', asked.id, 30_000);
    expect(ended.state).toBe('failed');
    expect(stepsOf(ended).at(-1)).toBe('superseded');
    expect(ended.error).toMatch(/judge .* down.*: its master died during the switchover, a failover takes over/);
    const failover = await waitFor('the failover to finish', async () => {
      const t = (await admin.listTasks('dies')).tasks.find((x) => x.kind === 'failover');
      return t?.state === 'done' ? t : null;
    }, 30_000);
    const route = await admin.route('dies');
    expect(route.shards[0]!.master).toBe(failover.target);
    expect(slaves.map((s) => s.address)).toContain(failover.target);
  });
});
