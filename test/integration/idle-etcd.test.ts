/**
 * An idle cluster writes nothing to etcd: three controller replicas probing 2 shards (5 instances)
 * and a proxy, nothing happening — the etcd revision must not move. This file has an etcd of its
 * own (useWorld starts one per test file), so nothing else writes to it.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, spawnController, waitFor, type ManagedProcess } from '../../src/playground/processes.js';
import { sample } from '../helpers/metrics-text.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, randomPrefix, useWorld } from '../helpers/servers.js';
import type { ClusterStatus } from '../../src/service/admin-service.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

/** How long the revision is watched once everything has settled. */
const MEASURE_MS = 10_000;
/**
 * Unhurried probing and leases: this machine is shared, and under load a 200 ms probe times out
 * and a 2 s lease can run out — real changes that are written, as they must be, but not what this
 * test measures.
 */
const CALM_PROBE = { intervalMs: 500, timeoutMs: 2000, downAfterMs: 6000 };
const CALM_LEASE_TTL = 8;

const controllers: ManagedProcess[] = [];
afterAll(async () => {
  for (const c of controllers) await c.kill9();
});

function controller(id: string, prefix: string, listen: string): ManagedProcess {
  const p = spawnController({ id, etcd: world.etcd.endpoint, prefix, listen, leaseTtlSeconds: CALM_LEASE_TTL, logFile: join(world.dir, `controller-${id}.log`) });
  controllers.push(p);
  return p;
}

async function revision(): Promise<number> {
  return Number((await world.client.get('/none').exec()).header.revision);
}

describe('an idle cluster and etcd', () => {
  it('three replicas, 2 shards with slaves and a proxy write no revision while nothing changes; a change is still written', async () => {
    const prefix = randomPrefix();
    const admin = world.admin(prefix);
    const [m0, s0a, s0b, m1, s1] = [await world.redis(), await world.redis(), await world.redis(), await world.redis(), await world.redis()];
    await admin.createCluster({
      name: 'idle',
      file: { probe: CALM_PROBE, shards: [{ master: m0.address, slaves: [s0a.address, s0b.address] }, { master: m1.address, slaves: [s1.address] }] },
    });
    await admin.setReplicas(3);
    const apis = new Map<string, string>();
    for (const id of ['i1', 'i2', 'i3']) {
      apis.set(id, `127.0.0.1:${await freePort()}`);
      controller(id, prefix, apis.get(id)!);
    }
    /** Per replica: whether it leads, etcd requests made, cycles run — from its /metrics. */
    const counters = async () =>
      new Map(
        await Promise.all(
          [...apis].map(async ([id, address]) => {
            const text = await (await fetch(`http://${address}/metrics`)).text();
            const value = (name: string) => sample(text, name) ?? 0;
            return [id, { leader: value('cfgserver_controller_leader') === 1, requests: value('cfgserver_etcd_requests_total'), cycles: value('cfgserver_cycle_duration_seconds_count') }] as const;
          }),
        ),
      );
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'idle', { leaseTtlSeconds: CALM_LEASE_TTL });

    // Settled: every replica sees every instance in the role the route gives it, slaves linked up.
    const expected = new Map([
      [m0.address, 'master'],
      [m1.address, 'master'],
      [s0a.address, 'slave'],
      [s0b.address, 'slave'],
      [s1.address, 'slave'],
    ]);
    await waitFor('every replica to see the cluster as the route says', async () => {
      const views = await admin.health.read('idle');
      if (views.size !== 3) return false;
      for (const byInstance of views.values()) {
        for (const [address, role] of expected) {
          const h = byInstance.get(address);
          if (!h?.reachable || h.role !== role || (role === 'slave' && !h.linkUp)) return false;
        }
      }
      return true;
    }, 30_000);
    await redis.at(proxy.listenAddress).set('k', 'v');
    // A last change or two may be in flight (a link coming up as seen by a slower replica).
    let last = await revision();
    await waitFor('the revision to stay put for 2 s', async () => {
      await new Promise((r) => setTimeout(r, 2000));
      const now = await revision();
      const still = now === last;
      last = now;
      return still;
    }, 30_000, 0);

    const written: string[] = [];
    const watch = await world.client.watch().prefix(prefix).create();
    watch.on('put', (kv) => written.push(`put ${kv.key.toString()}`));
    watch.on('delete', (kv) => written.push(`delete ${kv.key.toString()}`));
    const before = await revision();
    const countedBefore = await counters();
    await new Promise((r) => setTimeout(r, MEASURE_MS));
    const countedAfter = await counters();
    const after = await revision();
    await watch.cancel();
    expect(written).toEqual([]);
    expect(after - before).toBe(0);
    // Reads too: the replicas that do not lead read nothing from etcd while nothing changes (they
    // follow it through one watch) but their campaign's safety net, one attempt per lease TTL; the
    // leader reads the route and the tasks of its one cluster once per cycle, one request each —
    // not the list, credentials, views, registry, ... (before the etcd copy: 3 requests per second
    // per replica, and 6 more per leader cycle).
    const campaigns = Math.ceil(MEASURE_MS / (CALM_LEASE_TTL * 1000));
    for (const [id, now] of countedAfter) {
      const was = countedBefore.get(id)!;
      const requests = now.requests - was.requests;
      const cycles = now.cycles - was.cycles;
      expect(cycles, `replica ${id} kept probing`).toBeGreaterThan(0);
      if (!now.leader || !was.leader) expect(requests, `etcd requests of replica ${id}, which does not lead`).toBeLessThanOrEqual(campaigns);
      // (+1: a cycle under way when a count was taken has made its requests but is not counted yet.)
      else expect(requests, `etcd requests of the leader ${id} in ${cycles} cycles`).toBeLessThanOrEqual(2 * (cycles + 1));
    }
    expect([...countedAfter.values()].filter((c) => c.leader)).toHaveLength(1);
    // Offsets are no longer refreshed in etcd: cluster show reads them from Redis now.
    const live = JSON.parse((await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'show', 'idle', '--json'])).stdout) as ClusterStatus;
    const instances = live.shards.flatMap((sh) => sh.instances);
    expect(instances).toHaveLength(5);
    for (const i of instances) expect(i.live).toMatchObject({ offset: expect.any(Number), error: null });
    expect(live.liveTimeoutMs).toBe(CALM_PROBE.timeoutMs);
    const text = (await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'show', 'idle', '--no-live'])).stdout;
    expect(text).toContain("offsets from the controller's view");
    expect(text).toMatch(/\d+ \(\d+[smh] old\)/);
    expect(await revision()).toBe(after);
    // The replicas were alive and probing all along: a change is written at once.
    expect((await admin.listControllers()).controllers.map((c) => c.id)).toEqual(['i1', 'i2', 'i3']);
    await s1.process.kill9();
    await waitFor('the replicas to publish that a slave is gone', async () => {
      const views = await admin.health.read('idle');
      return [...views.values()].every((v) => v.get(s1.address)?.reachable === false);
    }, 10_000);
    expect(await revision()).toBeGreaterThan(after);
  });
});
