import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Task } from '../../src/model/schemas.js';
import { waitFor } from '../../src/playground/processes.js';
import type { AdminService } from '../../src/service/admin-service.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();

async function tasksOf(admin: AdminService, cluster: string): Promise<Task[]> {
  return (await admin.listTasks(cluster)).tasks;
}

async function leaderIs(admin: AdminService, id: string): Promise<void> {
  await waitFor(`${id} to lead`, async () => (await admin.controllers.leader())?.controller === id, 20_000);
}

describe('automatic failover on real etcd and redis', () => {
  it('kill -9 of a master: the best slave is promoted, the route epoch grows, the other slave follows, the old master returns as a slave', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'auto', { slaves: 2 });
    world.controller('f1', prefix);
    world.controller('f2', prefix);
    await replicating(redis, slaves, master.address);
    for (let i = 0; i < 50; i++) await redis.at(master.address).set(`key:${i}`, String(i));
    await waitFor('the writes to reach both slaves', async () => {
      for (const s of slaves) if ((await redis.at(s.address).get('key:49')) !== '49') return false;
      return true;
    });
    const before = await admin.route('auto');

    await master.process.kill9();
    const after = await waitFor('a new master in the route', async () => {
      const r = await admin.route('auto');
      return r.shards[0]!.master !== master.address ? r : null;
    }, 20_000);
    const promoted = after.shards[0]!.master;
    expect(slaves.map((s) => s.address)).toContain(promoted);
    expect(after.epoch).toBeGreaterThan(before.epoch);
    expect(after.shards[0]!.slaves).toContain(master.address);
    expect((await redis.replication(promoted)).role).toBe('master');
    expect(await redis.at(promoted).get('key:49')).toBe('49');
    const other = slaves.find((s) => s.address !== promoted)!;
    await replicating(redis, [other], promoted);

    const [task] = await tasksOf(admin, 'auto');
    expect(task).toMatchObject({ kind: 'failover', state: 'done', oldMaster: master.address, target: promoted });
    expect(task!.steps.map((s) => s.step)).toEqual(['choose', 'promote', 'publish', 'barrier', 'repoint']);
    expect(task!.reason).toMatch(/2 of 2 needed replicas \(f1, f2\) judge/);
    const { entries } = await admin.listHistory('auto');
    expect(entries.filter((e) => e.action === 'failover:promote')).toHaveLength(1);

    // The old master comes back empty: it is made a slave of the new master, never a master.
    const back = await world.redis([], master.port);
    expect(back.port).toBe(master.port);
    await replicating(redis, [back], promoted);
    expect(await redis.at(back.address).get('key:49')).toBe('49');
    expect(await redis.at(promoted).dbsize()).toBe(50);
    expect((await admin.route('auto')).shards[0]!.master).toBe(promoted);
  });

  it('kill -9 of the leader in the middle of a failover: the next leader finishes it, with exactly one promotion', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'resume', { slaves: 2 });
    world.controller('r1', prefix, [], { pauseAfter: { step: 'promote', ms: 60_000 } });
    await leaderIs(admin, 'r1');
    const first = (await admin.listControllers()).controllers[0]!;
    world.controller('r2', prefix);
    await replicating(redis, slaves, master.address);
    await waitFor('both replicas to see the master', async () => (await admin.describeCluster('resume')).healthFrom !== null);
    await new Promise((r) => setTimeout(r, 500)); // let r2 publish its views

    await master.process.kill9();
    const midway = await waitFor('the failover to stop after promote', async () => {
      const [t] = await tasksOf(admin, 'resume');
      return t?.next === 'publish' ? t : null;
    }, 20_000);
    expect(midway.controller).toBe('r1');
    process.kill(first.pid, 'SIGKILL');

    const done = await waitFor('the failover to finish', async () => {
      const [t] = await tasksOf(admin, 'resume');
      return t?.state === 'done' ? t : null;
    }, 20_000);
    expect(done.controller).toBe('r2');
    expect(done.target).toBe(midway.target);
    expect(done.steps.map((s) => s.step)).toEqual(['choose', 'promote', 'publish', 'barrier', 'repoint']);
    const route = await admin.route('resume');
    expect(route.shards[0]!.master).toBe(midway.target);
    expect(route.epoch).toBe(midway.epochBefore! + 1);
    // Exactly one slave was promoted; the other follows it.
    const roles = await Promise.all(slaves.map((s) => redis.replication(s.address)));
    expect(roles.filter((r) => r.role === 'master')).toHaveLength(1);
    await replicating(redis, slaves.filter((s) => s.address !== midway.target), midway.target!);
    const { entries } = await admin.listHistory('resume');
    expect(entries.filter((e) => e.action === 'failover:promote').map((e) => e.controller)).toEqual(['r1']);
    expect(entries.filter((e) => e.action === 'failover:publish').map((e) => e.controller)).toEqual(['r2']);
  });

  it('a deposed leader (SIGSTOP past its lease) cannot write the route when it wakes up', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'stopped', { slaves: 1 });
    const s1 = world.controller('s1', prefix, [], { pauseAfter: { step: 'promote', ms: 2500 } });
    await leaderIs(admin, 's1');
    world.controller('s2', prefix);
    await replicating(redis, slaves, master.address);
    await new Promise((r) => setTimeout(r, 500));

    await master.process.kill9();
    const midway = await waitFor('the failover to stop after promote', async () => {
      const [t] = await tasksOf(admin, 'stopped');
      return t?.next === 'publish' ? t : null;
    }, 20_000);
    s1.signal('SIGSTOP');
    const done = await waitFor('s2 to finish the failover', async () => {
      const [t] = await tasksOf(admin, 'stopped');
      return t?.state === 'done' ? t : null;
    }, 20_000);
    expect(done.controller).toBe('s2');
    const epochAfter = (await admin.route('stopped')).epoch;

    // s1 wakes up: its hook sleep is over and it would publish next — but its lease is gone.
    s1.signal('SIGCONT');
    await waitFor('s1 to notice', async () => /stopped acting|lease lost/.test(readFileSync(s1.logFile, 'utf8')), 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await admin.route('stopped')).epoch).toBe(epochAfter);
    const { entries } = await admin.listHistory('stopped');
    expect(entries.filter((e) => e.action === 'failover:publish').map((e) => e.controller)).toEqual(['s2']);
    expect(entries.filter((e) => e.controller === 's1' && Date.parse(e.at) > Date.parse(done.updatedAt))).toEqual([]);
    expect(midway.epochBefore! + 1).toBe(epochAfter);
  });

  it('refuses a stale slave, and says why in history', async () => {
    // A slave whose link has been down longer than 1 s is too stale; detection takes 3 s, and
    // Redis reports the link's down time in whole seconds, so by then it says 2 or more.
    const { prefix, admin, master, slaves } = await makeCluster(world, 'stale', {
      slaves: 1,
      probe: { intervalMs: 200, timeoutMs: 200, downAfterMs: 3000 },
      failover: { maxLinkDownMs: 1000 },
    });
    world.controller('st1', prefix);
    await replicating(redis, slaves, master.address);
    const before = await admin.route('stale');
    await master.process.kill9();
    const refused = await waitFor('a refused failover', async () => (await tasksOf(admin, 'stale')).find((t) => t.state === 'refused'), 20_000);
    expect(refused.error).toMatch(new RegExp(`${slaves[0]!.address} is too stale: its link to ${master.address} has been down \\d+ s, more than the bound of 1 s`));
    // The history entry is written just after the task's state.
    const entry = await waitFor('the refusal in history', async () => (await admin.listHistory('stale')).entries.find((e) => e.outcome === 'refused' && e.action === 'failover:choose'));
    expect(entry.reason).toMatch(/too stale/);
    expect(await admin.route('stale')).toEqual(before);
    expect((await redis.replication(slaves[0]!.address)).role).toBe('slave');
    // Not retried every cycle: one refused task for this episode (retry comes after 30 s).
    await new Promise((r) => setTimeout(r, 1500));
    expect((await tasksOf(admin, 'stale')).filter((t) => t.state === 'refused')).toHaveLength(1);
  });

  it('does not fail over a master that only one replica cannot reach; that replica reports itself cut off', async () => {
    const { prefix, admin, master, shards } = await makeCluster(world, 'partial', { slaves: 0, shards: 2 });
    const cutOff = [master.address, shards[1]!.master.address];
    // Paused until both replicas run: alone, p1 would rightly be a majority of one.
    await admin.setPaused('partial', true);
    world.controller('p1', prefix, [], { unreachable: cutOff });
    await leaderIs(admin, 'p1');
    world.controller('p2', prefix);
    // A controller process starting on a busy CI machine: node's start alone can take seconds.
    await waitFor('p2 to publish its views', async () => (await admin.health.read('partial')).get('p2')?.get(master.address)?.reachable === true, 25_000);
    await admin.setPaused('partial', false);
    const before = await admin.route('partial');
    // p1 (the leader) judges both masters down; p2 sees them fine.
    await waitFor('p1 to record that it looks cut off', async () => (await admin.listHistory('partial')).entries.some((e) => /looks cut off/.test(e.reason)), 15_000);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await tasksOf(admin, 'partial')).toEqual([]);
    expect(await admin.route('partial')).toEqual(before);
    const views = await admin.health.read('partial');
    expect(views.get('p1')?.get(master.address)?.down).toBe(true);
    expect(views.get('p2')?.get(master.address)?.reachable).toBe(true);
  });

  it('a paused cluster: a dead master is reported, not failed over; resuming lets the failover happen', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'paused', { slaves: 1 });
    world.controller('z1', prefix);
    await replicating(redis, slaves, master.address);
    await admin.setPaused('paused', true);
    const before = await admin.route('paused');
    await master.process.kill9();
    await waitFor('the refusal in history', async () => (await admin.listHistory('paused')).entries.some((e) => /the cluster is paused: no failover/.test(e.reason)), 15_000);
    const status = await admin.describeCluster('paused');
    expect(status.shards[0]!.instances[0]!.health).toMatchObject({ reachable: false, down: true });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await tasksOf(admin, 'paused')).toEqual([]);
    expect(await admin.route('paused')).toEqual(before);
    expect((await admin.listHistory('paused')).entries.filter((e) => /paused/.test(e.reason))).toHaveLength(1);

    await admin.setPaused('paused', false);
    await waitFor('the failover after resume', async () => (await admin.route('paused')).shards[0]!.master === slaves[0]!.address, 15_000);
  });

  it('stops failing over automatically when the per-window budget is spent', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'budget', { slaves: 2, failover: { maxPerWindow: 1 } });
    world.controller('b1', prefix);
    await replicating(redis, slaves, master.address);
    await master.process.kill9();
    const first = await waitFor('the first failover', async () => {
      const m = (await admin.route('budget')).shards[0]!.master;
      return m !== master.address ? m : null;
    }, 20_000);
    const promoted = slaves.find((s) => s.address === first)!;
    await replicating(redis, slaves.filter((s) => s !== promoted), first);
    await promoted.process.kill9();
    await waitFor('the budget refusal', async () => (await admin.listHistory('budget')).entries.some((e) => /1 failovers in the last 60 min already \(limit 1\)/.test(e.reason)), 15_000);
    expect((await admin.route('budget')).shards[0]!.master).toBe(first);
    expect((await tasksOf(admin, 'budget')).filter((t) => t.kind === 'failover')).toHaveLength(1);
  });
});
