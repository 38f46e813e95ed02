import { describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../src/playground/processes.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { sample, samples } from '../helpers/metrics-text.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

async function scrape(address: string): Promise<string> {
  return (await fetch(`http://${address}/metrics`)).text();
}

describe("the controller's metrics", () => {
  it('a failover after kill -9 of a master: counted once by the leader, with its duration; the route epoch and every proxy lag follow; the other replica exports no leader view', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'meter', { slaves: 1 });
    const apis = new Map<string, string>();
    for (const id of ['m1', 'm2']) {
      apis.set(id, `127.0.0.1:${await freePort()}`);
      world.controller(id, prefix, ['--listen', apis.get(id)!]);
    }
    const leader = await waitFor('a leader', async () => (await admin.controllers.leader())?.controller ?? null, 15_000);
    const follower = [...apis.keys()].find((id) => id !== leader)!;
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'meter');
    await replicating(redis, slaves, master.address);
    const before = await admin.route('meter');

    // Before: the leader's view of an idle cluster; the other replica has none, but saw the leader.
    let text = await waitFor('the leader to report the route epoch and the proxy drained', async () => {
      const t = await scrape(apis.get(leader)!);
      return sample(t, 'cfgserver_route_epoch', { cluster: 'meter' }) === before.epoch && sample(t, 'cfgserver_proxy_epoch_lag', { cluster: 'meter', proxy: proxy.id }) === 0 ? t : null;
    }, 15_000);
    expect(sample(text, 'cfgserver_tasks_running', { cluster: 'meter', kind: 'failover' })).toBe(0);
    expect(sample(text, 'cfgserver_instances_down', { cluster: 'meter' })).toBe(0);
    expect(sample(text, 'cfgserver_failover_budget_remaining', { cluster: 'meter' })).toBe(3);
    expect(sample(text, 'cfgserver_leader_changes_total')).toBeGreaterThanOrEqual(1);
    // The other replica learns of the leader at its next look at the leader key.
    const other = await waitFor('the other replica to have seen the leader', async () => {
      const t = await scrape(apis.get(follower)!);
      return (sample(t, 'cfgserver_leader_changes_total') ?? 0) >= 1 ? t : null;
    }, 15_000);
    expect(samples(other, 'cfgserver_route_epoch')).toEqual([]);
    expect(samples(other, 'cfgserver_proxy_epoch_lag')).toEqual([]);
    expect(sample(other, 'cfgserver_controller_leader')).toBe(0);

    await master.process.kill9();
    const task = await waitFor('the failover to end', async () => {
      const [t] = (await admin.listTasks('meter')).tasks;
      return t && t.state !== 'running' ? t : null;
    }, 20_000);
    expect(task.state).toBe('done');
    const after = await admin.route('meter');
    expect(after.epoch).toBeGreaterThan(before.epoch);

    text = await waitFor('the leader to report the new epoch, drained by the proxy, and the old master down', async () => {
      const t = await scrape(apis.get(leader)!);
      const ready =
        sample(t, 'cfgserver_route_epoch', { cluster: 'meter' }) === after.epoch &&
        sample(t, 'cfgserver_proxy_epoch_lag', { cluster: 'meter', proxy: proxy.id }) === 0 &&
        sample(t, 'cfgserver_instances_down', { cluster: 'meter' }) === 1;
      return ready ? t : null;
    }, 20_000);
    expect(sample(text, 'cfgserver_failovers_total', { cluster: 'meter', outcome: 'done' })).toBe(1);
    // The other outcomes exist at 0 (so that an alert sees their first increase).
    for (const outcome of ['failed', 'refused', 'cancelled']) expect(sample(text, 'cfgserver_failovers_total', { cluster: 'meter', outcome })).toBe(0);
    expect(sample(text, 'cfgserver_failover_duration_seconds_count', { cluster: 'meter', outcome: 'done' })).toBe(1);
    const seconds = sample(text, 'cfgserver_failover_duration_seconds_sum', { cluster: 'meter', outcome: 'done' })!;
    const taskSeconds = (Date.parse(task.updatedAt) - Date.parse(task.createdAt)) / 1000;
    expect(seconds).toBeCloseTo(taskSeconds, 1);
    expect(sample(text, 'cfgserver_tasks_running', { cluster: 'meter', kind: 'failover' })).toBe(0);
    expect(sample(text, 'cfgserver_failover_budget_remaining', { cluster: 'meter' })).toBe(2);
    expect(samples(text, 'cfgserver_switchovers_total').map((s) => s.value)).toEqual([0, 0, 0, 0]);
    // The other replica did not count the leader's failover.
    expect(samples(await scrape(apis.get(follower)!), 'cfgserver_failovers_total').filter((s) => s.value > 0)).toEqual([]);
  });

  it('a switchover is counted by outcome with its duration; when the leader stops, the other replica sees a new leader and takes the leader view over', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'meter2', { slaves: 1 });
    const apis = new Map<string, string>();
    const procs = new Map<string, ReturnType<typeof world.controller>>();
    for (const id of ['n1', 'n2']) {
      apis.set(id, `127.0.0.1:${await freePort()}`);
      procs.set(id, world.controller(id, prefix, ['--listen', apis.get(id)!]));
    }
    const leader = await waitFor('a leader', async () => (await admin.controllers.leader())?.controller ?? null, 15_000);
    const follower = [...apis.keys()].find((id) => id !== leader)!;
    await replicating(redis, slaves, master.address);
    const seenBefore = await waitFor('the other replica to see the leader', async () => sample(await scrape(apis.get(follower)!), 'cfgserver_leader_changes_total') || null);

    const requested = await admin.requestSwitchover('meter2', { shard: 's0', requestedBy: 'test' });
    const task = await waitFor('the switchover to end', async () => {
      const t = await admin.getTask('meter2', requested.id);
      return t.state === 'pending' || t.state === 'running' ? null : t;
    }, 30_000);
    expect(task.state).toBe('done');
    const text = await scrape(apis.get(leader)!);
    expect(sample(text, 'cfgserver_switchovers_total', { cluster: 'meter2', outcome: 'done' })).toBe(1);
    expect(sample(text, 'cfgserver_switchover_duration_seconds_count', { cluster: 'meter2', outcome: 'done' })).toBe(1);
    expect(sample(text, 'cfgserver_failovers_total', { cluster: 'meter2', outcome: 'done' })).toBe(0);

    // SIGTERM: the leader resigns; the other replica sees a new term (itself) and exports the view.
    await procs.get(leader)!.stop();
    const epoch = (await admin.route('meter2')).epoch;
    const taken = await waitFor('the other replica to lead and export the route epoch', async () => {
      const t = await scrape(apis.get(follower)!);
      return sample(t, 'cfgserver_controller_leader') === 1 && sample(t, 'cfgserver_route_epoch', { cluster: 'meter2' }) === epoch ? t : null;
    }, 15_000);
    expect(sample(taken, 'cfgserver_leader_changes_total')).toBe(seenBefore + 1);
    // The switchover was counted by the replica that ended it, not again by the new leader.
    expect(sample(taken, 'cfgserver_switchovers_total', { cluster: 'meter2', outcome: 'done' })).toBe(0);
  });
});
