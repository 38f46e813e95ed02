import { describe, expect, it } from 'vitest';
import { freePort, waitFor, type ManagedProcess } from '../../src/playground/processes.js';
import { ControllerRegistry } from '../../src/store/controller-registry.js';
import { Keys } from '../../src/store/keys.js';
import { useRedisClients } from '../helpers/redis.js';
import { TEST_LEASE_TTL, randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const { at: redisAt, replication } = useRedisClients();

async function leaderOf(prefix: string): Promise<string | null> {
  return (await new ControllerRegistry(world.client, new Keys(prefix)).leader())?.controller ?? null;
}

/** Two replicas under a fresh prefix, once one leads and both are registered. */
async function twoReplicas(ids: [string, string]) {
  const prefix = randomPrefix();
  const procs = new Map<string, ManagedProcess>(ids.map((id) => [id, world.controller(id, prefix)]));
  const leader = await waitFor('a leader', () => leaderOf(prefix), 10_000);
  await waitFor('both replicas registered', async () => (await world.admin(prefix).listControllers()).controllers.length === 2, 10_000);
  const nextLeader = () =>
    waitFor('a new leader', async () => {
      const l = await leaderOf(prefix);
      return l && l !== leader ? l : null;
    }, 10_000, 10);
  return { prefix, procs, leader, nextLeader };
}

describe('controller replicas on real etcd and redis', () => {
  it('the leader makes every slave replicate from its master, repairs drift, and records why', async () => {
    const prefix = randomPrefix();
    const [master, slave, stranger] = [await world.redis(), await world.redis(), await world.redis()];
    const admin = world.admin(prefix);
    await admin.createCluster({ name: 'repair', file: { shards: [{ master: master.address, slaves: [slave.address] }] } });
    // Both instances start as masters; the route says slave replicates from master.
    expect((await replication(slave.address)).role).toBe('master');
    world.controller('r1', prefix);
    world.controller('r2', prefix);

    await waitFor('the slave to replicate from the master', async () => (await replication(slave.address)).masterAddress === master.address, 15_000);
    await redisAt(master.address).set('k', 'v1');
    await waitFor('the write to reach the slave', async () => (await redisAt(slave.address).get('k')) === 'v1');

    // Somebody points the slave at the wrong master: the leader puts it back.
    await redisAt(slave.address).call('REPLICAOF', '127.0.0.1', String(stranger.port));
    await waitFor('the slave to be repointed at its master', async () => (await replication(slave.address)).masterAddress === master.address, 10_000);

    const { entries } = await admin.listHistory('repair');
    const reasons = entries.filter((e) => e.action === 'replicaof' && e.target === slave.address).map((e) => e.reason);
    expect(reasons.some((r) => r.includes('is a master but the route names it a slave'))).toBe(true);
    expect(reasons.some((r) => r.includes(`replicates from ${stranger.address}`))).toBe(true);
    const leader = await leaderOf(prefix);
    expect(entries.every((e) => e.controller === leader)).toBe(true);

    // cluster show reports what the controller saw.
    await waitFor('health to be published', async () => {
      const status = await admin.describeCluster('repair');
      const [m, s] = status.shards[0]!.instances;
      return m?.health?.role === 'master' && s?.health?.role === 'slave' && s.health.masterAddress === master.address && s.health.linkUp;
    }, 10_000);
  });

  it('kill -9 of the leader: another replica leads within the lease TTL + 1 s', async () => {
    const { prefix, procs, leader: first, nextLeader } = await twoReplicas(['k1', 'k2']);
    const killedAt = Date.now();
    await procs.get(first)!.kill9();
    const second = await nextLeader();
    const takeover = Date.now() - killedAt;
    expect(second).not.toBe(first);
    expect(takeover).toBeLessThanOrEqual(TEST_LEASE_TTL * 1000 + 1000);
    const { controllers } = await world.admin(prefix).listControllers();
    expect(controllers.map((c) => [c.id, c.leader])).toEqual([[second, true]]);
  });

  it('SIGTERM of the leader: it resigns and another replica leads within 1 s', async () => {
    const { procs, leader: first, nextLeader } = await twoReplicas(['t1', 't2']);
    const stoppedAt = Date.now();
    procs.get(first)!.signal('SIGTERM');
    const second = await nextLeader();
    expect(Date.now() - stoppedAt).toBeLessThanOrEqual(1000);
    expect(await procs.get(first)!.waitExit()).toBe(0);
    expect(second).not.toBe(first);
  });

  it('serves the HTTP API and Prometheus metrics', async () => {
    const prefix = randomPrefix();
    const master = await world.redis();
    await world.admin(prefix).createCluster({ name: 'web', file: { shards: [{ master: master.address }] } });
    const port = await freePort();
    world.controller('api1', prefix, ['--listen', `127.0.0.1:${port}`]);
    const base = `http://127.0.0.1:${port}`;
    const health = await waitFor('the API', async () => (await fetch(`${base}/healthz`)).json() as Promise<{ ok: boolean }>, 10_000);
    expect(health).toMatchObject({ ok: true, controller: 'api1' });
    await waitFor('api1 to lead', async () => ((await (await fetch(`${base}/healthz`)).json()) as { leader: boolean }).leader, 10_000);

    const clusters = (await (await fetch(`${base}/v1/clusters`)).json()) as { clusters: { name: string }[] };
    expect(clusters.clusters.map((c) => c.name)).toEqual(['web']);
    const route = (await (await fetch(`${base}/v1/clusters/web/route`)).json()) as { epoch: number; shards: { master: string }[] };
    expect(route.shards[0]!.master).toBe(master.address);
    const detail = await waitFor('health in the API', async () => {
      const d = (await (await fetch(`${base}/v1/clusters/web`)).json()) as { healthFrom: string; shards: { instances: { health: { reachable: boolean } | null }[] }[] };
      return d.shards[0]!.instances[0]!.health?.reachable ? d : null;
    }, 10_000);
    expect(detail.healthFrom).toBe('api1');
    const controllers = (await (await fetch(`${base}/v1/controllers`)).json()) as { controllers: { id: string; leader: boolean; address: string }[] };
    expect(controllers.controllers).toEqual([expect.objectContaining({ id: 'api1', leader: true, address: `127.0.0.1:${port}` })]);

    const history = (await (await fetch(`${base}/v1/clusters/web/history?limit=5`)).json()) as { entries: unknown[]; problems: string[] };
    expect(history).toEqual({ entries: [], problems: [] });
    const tasks = (await (await fetch(`${base}/v1/clusters/web/tasks`)).json()) as { tasks: unknown[] };
    expect(tasks.tasks).toEqual([]);

    // Creating through the API: validated like the CLI, and nothing written on bad input.
    const post = (body: string) => fetch(`${base}/v1/clusters`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const created = await post(JSON.stringify({ name: 'viaapi', slots: 16, shards: [{ master: '127.0.0.1:7999' }], force: true }));
    expect(created.status).toBe(201);
    expect(((await created.json()) as { shards: { slots: unknown }[] }).shards[0]!.slots).toEqual([[0, 15]]);
    const bad = await post(JSON.stringify({ name: 'Bad Name' }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('VALIDATION');
    const garbage = await post('{not json');
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'VALIDATION', message: expect.stringMatching(/not valid JSON/) });
    for (const limit of ['abc', '-3', '0', '1.5', '5000']) {
      const res = await fetch(`${base}/v1/clusters/web/history?limit=${limit}`);
      expect(res.status, limit).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/\?limit= must be a whole number from 1 to 1000/);
    }
    const again = await post(JSON.stringify({ name: 'viaapi' }));
    expect(again.status).toBe(409);
    expect((await world.admin(prefix).listClusters()).clusters.map((c) => c.name)).toEqual(['viaapi', 'web']);

    const missing = await fetch(`${base}/v1/clusters/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'cluster nope does not exist' } });
    const typo = await fetch(`${base}/v1/clusters/wbe`);
    expect(((await typo.json()) as { error: { message: string } }).error.message).toBe('cluster wbe does not exist (did you mean web?)');
    const invalid = await fetch(`${base}/v1/clusters/Bad_Name`);
    expect(invalid.status).toBe(400);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^cfgserver_controller_leader 1$/m);
    expect(metrics).toMatch(/^cfgserver_probes_total\{result="ok"\} [1-9]/m);
    expect(metrics).toMatch(/^cfgserver_clusters [12]$/m); // 2 once it has seen the cluster made through the API
  });
});
