import { join } from 'node:path';
import type { Lease } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { waitForProxies, type BarrierOutcome } from '../../src/controller/barrier.js';
import type { ProxyInfo, Task } from '../../src/model/schemas.js';
import { ManagedProcess, cfgserverEntry, freePort, waitFor } from '../../src/playground/processes.js';
import type { AdminService } from '../../src/service/admin-service.js';
import { Keys } from '../../src/store/keys.js';
import { ProxyRegistry } from '../../src/store/proxy-registry.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();
const leases: Lease[] = [];
afterAll(async () => {
  for (const lease of leases) await lease.revoke().catch(() => undefined);
});

/** A registry under a fresh prefix, and a way to register a proxy of cluster `c` there, bound to a lease of its own. */
function registryWithLeases() {
  const registry = new ProxyRegistry(world.client, new Keys(randomPrefix()));
  const register = async (id: string, epoch: number | null, lease?: Lease) => {
    if (!lease) {
      lease = world.client.lease(30);
      lease.on('lost', () => undefined);
      leases.push(lease);
    }
    const now = new Date().toISOString();
    const info: ProxyInfo = { id, cluster: 'c', address: '127.0.0.1:1', metrics: null, pid: 1, version: 'test', epoch, kind: 'cfgserver', startedAt: now, updatedAt: now };
    await registry.put(info, await lease.grant());
    return lease;
  };
  return { registry, register };
}

/** A barrier running in the background, to look at while it waits. */
function background(run: Promise<BarrierOutcome>) {
  const state: { outcome: BarrierOutcome | null; done: Promise<BarrierOutcome> } = { outcome: null, done: run };
  void run.then((o) => (state.outcome = o));
  return state;
}

async function failoverTask(admin: AdminService, cluster: string): Promise<Task> {
  return waitFor('the failover to finish', async () => {
    const t = (await admin.listTasks(cluster)).tasks.find((task) => task.kind === 'failover');
    return t?.state === 'done' ? t : null;
  }, 30_000);
}

describe('the proxy barrier, on registrations written directly', () => {
  it('returns at once when the cluster has no proxy', async () => {
    const { registry } = registryWithLeases();
    const o = await waitForProxies(registry, 'c', 7, { timeoutMs: 30_000 });
    expect(o).toMatchObject({ epoch: 7, acknowledged: [], gone: [], pending: [], malformed: [], timedOut: false });
  });

  it('waits for a slow acknowledger, and counts one that had acknowledged already', async () => {
    const { registry, register } = registryWithLeases();
    await register('fast', 7);
    const slow = await register('slow', 6);
    const barrier = background(waitForProxies(registry, 'c', 7, { timeoutMs: 30_000 }));
    await new Promise((r) => setTimeout(r, 300));
    expect(barrier.outcome).toBeNull(); // still waiting for "slow"
    await register('slow', 7, slow);
    const o = await barrier.done;
    expect(o.timedOut).toBe(false);
    expect(o.acknowledged.map((a) => a.id)).toEqual(['fast', 'slow']);
    expect(o.acknowledged[0]!.afterMs).toBe(0);
    expect(o.pending).toEqual([]);
  });

  it('returns when the lease of a proxy behind is revoked, naming it as gone', async () => {
    const { registry, register } = registryWithLeases();
    await register('ok', 8);
    const stuck = await register('stuck', 5);
    const barrier = background(waitForProxies(registry, 'c', 7, { timeoutMs: 30_000 }));
    await new Promise((r) => setTimeout(r, 200));
    expect(barrier.outcome).toBeNull();
    await stuck.revoke();
    const o = await barrier.done;
    expect(o).toMatchObject({ timedOut: false, acknowledged: [{ id: 'ok' }], gone: [{ id: 'stuck' }], pending: [] });
  });

  it('reports a timeout with the proxies still behind', async () => {
    const { registry, register } = registryWithLeases();
    await register('behind', 6);
    await register('ok', 7);
    const o = await waitForProxies(registry, 'c', 7, { timeoutMs: 500 });
    expect(o).toMatchObject({ timedOut: true, pending: [{ id: 'behind', epoch: 6 }], acknowledged: [{ id: 'ok' }] });
    expect(o.durationMs).toBeGreaterThanOrEqual(500);
  });

  it('reports a malformed registration without waiting on it', async () => {
    const keys = new Keys(randomPrefix());
    const registry = new ProxyRegistry(world.client, keys);
    await world.client.put(keys.proxy('c', 'garbled')).value('{"id": "garbled", "epoch": "seven"}');
    const o = await waitForProxies(registry, 'c', 7, { timeoutMs: 30_000 });
    expect(o).toMatchObject({ timedOut: false, pending: [], malformed: [{ id: 'garbled' }] });
    expect(o.malformed[0]!.problem).toMatch(/epoch/);
  });

  it('waits for a proxy that registers behind while it waits', async () => {
    const { registry, register } = registryWithLeases();
    const first = await register('first', 6);
    const barrier = background(waitForProxies(registry, 'c', 7, { timeoutMs: 30_000 }));
    await new Promise((r) => setTimeout(r, 200));
    const late = await register('late', 6);
    await register('first', 7, first);
    await new Promise((r) => setTimeout(r, 300));
    expect(barrier.outcome).toBeNull(); // "first" drained, "late" not yet
    await register('late', 7, late);
    expect(await barrier.done).toMatchObject({ timedOut: false, acknowledged: [{ id: 'first' }, { id: 'late' }], pending: [] });
  });
});

describe('the proxy barrier in a real failover', () => {
  it('kill -9 of a master behind a proxy: the failover waits for the proxy to drain the new epoch, and names it', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'drained', { slaves: 1 });
    world.controller('d1', prefix);
    await replicating(redis, slaves, master.address);
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'drained', { id: 'px-drained' });
    const client = proxies.client(proxy);
    await client.set('before', '1');

    await master.process.kill9();
    const task = await failoverTask(admin, 'drained');
    expect(task.steps.map((s) => s.step)).toEqual(['choose', 'promote', 'publish', 'barrier', 'repoint']);
    const barrier = task.steps.find((s) => s.step === 'barrier')!;
    expect(barrier.detail).toMatch(new RegExp(`^1 proxy drained epoch ${task.epochAfter} in \\d+ ms \\(px-drained\\)$`));
    const [registered] = (await admin.listProxies('drained')).proxies;
    expect(registered).toMatchObject({ id: 'px-drained' });
    expect(registered!.epoch).toBeGreaterThanOrEqual(task.epochAfter!);
    const { entries } = await admin.listHistory('drained');
    expect(entries.find((e) => e.action === 'failover:barrier')?.reason).toContain('px-drained');
    // And the proxy writes to the new master.
    await waitFor('a write through the proxy', async () => (await client.set('after', '1').catch(() => null)) === 'OK', 10_000);
    expect(await redis.at(slaves[0]!.address).get('after')).toBe('1');
  });

  it('a proxy stalled by SIGSTOP: the barrier ends when its lease expires, and says so', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'stalled', { slaves: 1, failover: { barrierTimeoutMs: 30_000 } });
    // The leader sleeps after promote, so that the proxy is stopped just before the route changes
    // while its lease still has most of its TTL (3 s) to run.
    world.controller('s1', prefix, [], { pauseAfter: { step: 'promote', ms: 800 } });
    await replicating(redis, slaves, master.address);
    const port = await freePort();
    const proc = new ManagedProcess('proxy', process.execPath, [cfgserverEntry(), 'proxy', '--cluster', 'stalled', '--listen', `127.0.0.1:${port}`, '--etcd', world.etcd.endpoint, '--prefix', prefix, '--id', 'px-stalled'], join(world.dir, 'proxy-px-stalled.log'));
    try {
      await waitFor('the proxy process to register', async () => (await admin.listProxies('stalled')).proxies.length === 1, 15_000);
      await master.process.kill9();
      await waitFor('the failover to stop after promote', async () => (await admin.listTasks('stalled')).tasks[0]?.next === 'publish', 20_000, 20);
      proc.signal('SIGSTOP');
      const task = await failoverTask(admin, 'stalled');
      const barrier = task.steps.find((s) => s.step === 'barrier')!;
      expect(barrier.detail).toMatch(/^0 proxies drained epoch \d+; px-stalled left the registry \(lease expired or proxy stopped\) after \d+ ms; done in \d+ ms$/);
      expect((await admin.listProxies('stalled')).proxies).toEqual([]);
      // Resumed, the proxy registers again under a new lease, with the new epoch drained.
      proc.signal('SIGCONT');
      await waitFor('the proxy to register again', async () => ((await admin.listProxies('stalled')).proxies[0]?.epoch ?? 0) >= task.epochAfter!, 15_000);
    } finally {
      proc.signal('SIGCONT');
      await proc.stop();
    }
  });
});
