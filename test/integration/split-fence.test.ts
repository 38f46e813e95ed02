/**
 * The source's write fence during a split (controller/splits/split-fence.ts, docs/split.md): while
 * the split's new master streams from the source, the source asks for one more good replica, so
 * that cut off from its own slaves it stops acknowledging writes that only the new master would
 * hold (a failover promotes an own slave and abandons the split: those writes would be lost).
 * Real etcd, controller and redis-servers; the partition is the source's own slave and the
 * controller both stalled (SIGSTOP), so that nobody turns the fence off meanwhile.
 */
import { describe, expect, it } from 'vitest';
import { splitFinished, type SplitRecord } from '../../src/model/split.js';
import { waitFor, type RedisServer } from '../../src/playground/processes.js';
import type { AdminService } from '../../src/service/admin-service.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useProxies } from '../helpers/proxy.js';
import { useRawClients } from '../helpers/raw-client.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();
const raw = useRawClients();

async function splitWhen(admin: AdminService, cluster: string, what: string, check: (s: SplitRecord) => boolean, timeoutMs = 40_000): Promise<SplitRecord> {
  return waitFor(`the split ${what}`, async () => {
    const s = (await admin.splits.list(cluster)).splits[0];
    return s && check(s) ? s : null;
  }, timeoutMs);
}

async function minReplicasToWrite(address: string): Promise<number> {
  return Number(((await redis.at(address).config('GET', 'min-replicas-to-write')) as string[])[1]);
}

/**
 * 3,000 keys on the source, a split of its shard s0 asked onto a new instance, and paused in its
 * full sync, slowed to about 3 s (1 ms per key in the source's fork) so that the pause lands in it.
 * The caller takes the delay off when it wants the sync to end. Returns the new master.
 */
async function splitPausedInSync(admin: AdminService, cluster: string, source: string): Promise<RedisServer> {
  const fill = redis.at(source).pipeline();
  for (let i = 0; i < 3000; i++) fill.set(`k:${i}`, `v${i}`);
  await fill.exec();
  const newMaster = await world.redis();
  await redis.at(source).config('SET', 'rdb-key-save-delay', '1000');
  await admin.splits.split(cluster, { shard: 's0', newShard: 's1', master: newMaster.address, requestedBy: 'test' });
  await splitWhen(admin, cluster, 'to sync', (s) => s.next === 'sync');
  await admin.splits.pause(cluster, 'test');
  await splitWhen(admin, cluster, 'to be paused in its sync', (s) => s.state === 'paused');
  return newMaster;
}

describe('the write fence during a split', () => {
  it('counts only the shard\'s own slaves while the new master streams: cut off from them the source refuses writes; put back at the cut-over', async () => {
    const { admin, prefix, master: source, slaves } = await makeCluster(world, 'sfence', { shards: 1, slaves: 1 });
    const ownSlave = slaves[0]!;
    const controller = world.controller('sfence-c0', prefix);
    await replicating(redis, [ownSlave], source.address);
    await waitFor('the source fenced', async () => (await minReplicasToWrite(source.address)) === 1, 15_000);
    const newMaster = await splitPausedInSync(admin, 'sfence', source.address);
    expect(await minReplicasToWrite(source.address), 'not raised during the full sync: the source would refuse every write').toBe(1);
    await redis.at(source.address).config('SET', 'rdb-key-save-delay', '0');

    // Once the new master streams, the source asks for two good replicas, and has them.
    const raised = await splitWhen(admin, 'sfence', 'to raise the fence', (s) => s.fenceRaise !== null);
    expect(raised.fenceRaise).toEqual({ instance: source.address, from: 1, to: 2, restored: false });
    expect(await minReplicasToWrite(source.address)).toBe(2);
    await waitFor('two good replicas', async () => (await redis.replication(source.address)).goodSlaves === 2, 10_000);
    expect(await redis.at(source.address).set('before', '1')).toBe('OK');
    // The leader's own fence planning keeps the raised value over its cycles.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await minReplicasToWrite(source.address)).toBe(2);

    // The source cut off from its own slave (and from the controller, who would otherwise turn the
    // fence off for a master without a live slave): the new master alone still acknowledges, but
    // the source refuses writes once the own slave's lag passes the bound (2 s).
    controller.signal('SIGSTOP');
    ownSlave.process.signal('SIGSTOP');
    try {
      let attempt = 0;
      const refusedKey = await waitFor('the source to refuse writes', async () => {
        const key = `cut-off:${attempt++}`;
        const refused = await redis.at(source.address).set(key, '1').then(() => null, (err: Error) => err.message);
        return refused !== null && /NOREPLICAS/.test(refused) ? key : null;
      }, 10_000);
      expect(await redis.at(source.address).exists(refusedKey)).toBe(0);
    } finally {
      ownSlave.process.signal('SIGCONT');
      controller.signal('SIGCONT');
    }
    await waitFor('the source to take writes again', async () => (await redis.at(source.address).set('after', '1').then(() => true, () => false)), 15_000);

    // Resumed: the cut-over puts the fence back before the promotion, and says so.
    await admin.splits.resume('sfence', 'test');
    const done = await splitWhen(admin, 'sfence', 'to end', splitFinished, 60_000);
    expect(done.state, done.error ?? '').toBe('done');
    expect(done.fenceRaise).toEqual({ instance: source.address, from: 1, to: 2, restored: true });
    expect(await minReplicasToWrite(source.address)).toBe(1);
    const steps = new Map(done.steps.map((s) => [s.step, s.detail]));
    expect(steps.get('sync')).toMatch(new RegExp(`min-replicas-to-write 1 -> 2 on ${source.address}: ${newMaster.address} streams from it`));
    expect(steps.get('catchup')).toMatch(new RegExp(`min-replicas-to-write 2 -> 1 on ${source.address}; REPLICAOF NO ONE`));
  });

  it("WAIT through a proxy does not count the split's new master: the source's own slave stalled, WAIT 1 answers 0", async () => {
    const { admin, prefix, master: source, slaves } = await makeCluster(world, 'swait', { shards: 1, slaves: 1 });
    const ownSlave = slaves[0]!;
    world.controller('swait-c0', prefix);
    await replicating(redis, [ownSlave], source.address);
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'swait');
    const client = await raw(proxy.listenAddress);
    // Paused in its sync, the new master goes on streaming from the source.
    const newMaster = await splitPausedInSync(admin, 'swait', source.address);
    expect((await admin.route('swait')).feedingSplit, 'not marked during the full sync: WAIT would ask for a replica that cannot answer').toBeUndefined();
    await redis.at(source.address).config('SET', 'rdb-key-save-delay', '0');
    const marked = await waitFor('the route to mark s0 as feeding the split', async () => {
      const route = await admin.route('swait');
      return route.feedingSplit?.includes('s0') ? route : null;
    }, 30_000);
    await waitFor('the proxy on that route', async () => proxy.metrics.counters.epoch >= marked.epoch, 10_000);
    await waitFor('two good replicas', async () => (await redis.replication(source.address)).goodSlaves === 2, 10_000);
    expect(await client.call('SET', 'w', '1')).toBe('+OK\r\n');
    expect(await client.call('WAIT', '1', '5000')).toBe(':1\r\n');

    // The own slave stalled: Redis alone counts the new master, the proxy does not.
    ownSlave.process.signal('SIGSTOP');
    try {
      const direct = await raw(source.address);
      expect(await direct.call('SET', 'direct', '1')).toBe('+OK\r\n');
      expect(await direct.call('WAIT', '1', '300'), "Redis's own count: the new master").toBe(':1\r\n');
      const [set, waited] = await Promise.all([client.call('SET', 'w', '2'), client.call('WAIT', '1', '300')]);
      expect([set, waited]).toEqual(['+OK\r\n', ':0\r\n']);
      // WAIT 0 is answered at once, the new master taken off too.
      expect(await client.call('WAIT', '0', '0')).toBe(':0\r\n');
    } finally {
      ownSlave.process.signal('SIGCONT');
    }
    expect(await client.call('WAIT', '1', '5000')).toBe(':1\r\n');

    // Resumed: the mark goes with the commit, and the history says when it came.
    await admin.splits.resume('swait', 'test');
    const done = await splitWhen(admin, 'swait', 'to end', splitFinished, 60_000);
    expect(done.state, done.error ?? '').toBe('done');
    expect((await admin.route('swait')).feedingSplit).toBeUndefined();
    expect(done.steps.find((s) => s.step === 'sync')?.detail).toMatch(new RegExp(`route epoch ${marked.epoch - 1} -> ${marked.epoch}: s0 feeds ${newMaster.address}, which proxies do not count for WAIT`));
  });
});
