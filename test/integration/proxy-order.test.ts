/**
 * Order and at-most-once across route changes: the proxy resends a command only when the reply
 * proves it did not run, only to the new owner, and never past a later command of the same client.
 */
import { describe, expect, it } from 'vitest';
import { keySlot } from '../../src/model/slot.js';
import { slotOwners } from '../../src/model/route.js';
import { Keys } from '../../src/store/keys.js';
import { waitFor } from '../../src/playground/processes.js';
import { useProxies } from '../helpers/proxy.js';
import { useRawClients } from '../helpers/raw-client.js';
import { useRedisClients } from '../helpers/redis.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();
const raw = useRawClients();

/** One shard on `a` behind a proxy, a second Redis `b` ready to become its master. */
async function setup(name: string) {
  const prefix = randomPrefix();
  const a = await world.redis();
  const b = await world.redis();
  await world.admin(prefix).createCluster({ name, file: { shards: [{ master: a.address }] } });
  const proxy = await proxies.start(world.etcd.endpoint, prefix, name);
  const client = await raw(proxy.listenAddress);
  /** Publishes a route whose master is `b`, and waits until the proxy applied it. */
  const moveTo = async (address: string) => {
    const route = await world.admin(prefix).route(name);
    const owner = slotOwners(route)[keySlot('k', route.slotCount)]!;
    const next = { ...route, epoch: route.epoch + 1, shards: route.shards.map((s, i) => (i === owner ? { ...s, master: address } : s)) };
    await world.client.put(new Keys(prefix).route(name)).value(JSON.stringify(next));
    await waitFor('the proxy on the new route', async () => proxy.metrics.counters.epoch === next.epoch);
  };
  return { a, b, proxy, client, moveTo, prefix };
}

describe('resends across a route change', () => {
  it('resends a write refused READONLY by a demoted master to the new one, when nothing later went out', async () => {
    const { a, b, client, moveTo } = await setup('order-resend');
    await redis.at(a.address).call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const set = client.call('SET', 'k', '1');
    await new Promise((r) => setTimeout(r, 100));
    await moveTo(b.address);
    // The old master becomes a replica, then runs the queued write: READONLY, so it did not run.
    await redis.at(a.address).call('REPLICAOF', '127.0.0.1', String(b.port));
    await redis.at(a.address).call('CLIENT', 'UNPAUSE');
    expect(await set).toBe('+OK\r\n');
    expect(await redis.at(b.address).get('k')).toBe('1');
  });

  it('resends a write refused NOREPLICAS by a fenced old master to the new one', async () => {
    const { a, b, client, moveTo } = await setup('order-fenced');
    await redis.at(a.address).call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const set = client.call('SET', 'k', '1');
    await new Promise((r) => setTimeout(r, 100));
    await moveTo(b.address);
    // The old master is fenced and has no slave: the queued write is refused, so it did not run.
    await redis.at(a.address).call('CONFIG', 'SET', 'min-replicas-max-lag', '2', 'min-replicas-to-write', '1');
    await redis.at(a.address).call('CLIENT', 'UNPAUSE');
    expect(await set).toBe('+OK\r\n');
    expect(await redis.at(b.address).get('k')).toBe('1');
    expect(await redis.at(a.address).get('k')).toBeNull();
  });

  it('passes NOREPLICAS on to the client when the route did not change', async () => {
    const { a, client } = await setup('order-fenced-same-route');
    await redis.at(a.address).call('CONFIG', 'SET', 'min-replicas-max-lag', '2', 'min-replicas-to-write', '1');
    expect(await client.call('SET', 'k', '1')).toMatch(/^-NOREPLICAS /);
    expect(await redis.at(a.address).get('k')).toBeNull();
  });

  it('never resends past a later command of the same client: SET k 1; SET k 2 ends as 2', async () => {
    const { a, b, client, moveTo } = await setup('order-later');
    await redis.at(a.address).call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const first = client.call('SET', 'k', '1');
    await new Promise((r) => setTimeout(r, 100));
    await moveTo(b.address);
    // The client's next write goes to the new master at once and runs there (its reply waits
    // behind the first one's, as replies leave in order).
    const second = client.call('SET', 'k', '2');
    await waitFor('the later write on the new master', async () => (await redis.at(b.address).get('k')) === '2');
    await redis.at(a.address).call('REPLICAOF', '127.0.0.1', String(b.port));
    await redis.at(a.address).call('CLIENT', 'UNPAUSE');
    // The first write did not run anywhere, and the client is told so; the later value stands.
    expect(await first).toMatch(/^-ERR proxy: the route changed \(epoch \d+\) while this command was in flight.*the command did not run \(READONLY/);
    expect(await second).toBe('+OK\r\n');
    expect(await redis.at(b.address).get('k')).toBe('2');
  });

  it('a connection lost with the command in flight: it may have run, and it is not sent again', async () => {
    const { a, b, client, moveTo } = await setup('order-lost');
    await redis.at(a.address).call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const set = client.call('INCR', 'k');
    await new Promise((r) => setTimeout(r, 100));
    await moveTo(b.address);
    await a.process.kill9();
    expect(await set).toMatch(/^-ERR proxy: backend 127\.0\.0\.1:\d+: .*; the command may have run\r\n$/);
    expect(await redis.at(b.address).get('k')).toBeNull();
  });

  it('a master that cannot be reached: the command did not run', async () => {
    const { a, client } = await setup('order-unreachable');
    await a.process.kill9();
    expect(await client.call('SET', 'k', '1')).toMatch(/^-ERR proxy: backend 127\.0\.0\.1:\d+: .*; the command did not run\r\n$/);
  });

  it('a write that an old master acknowledges after the route named another is not passed on', async () => {
    const { a, b, client, moveTo } = await setup('order-stale-ack');
    await redis.at(a.address).call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const set = client.call('SET', 'k', 'on-the-old-master');
    await new Promise((r) => setTimeout(r, 100));
    await moveTo(b.address);
    // The old master resumes still a master (a stall, not a demotion) and runs the write: its OK
    // would be a lie, since that master's data is about to be replaced.
    await redis.at(a.address).call('CLIENT', 'UNPAUSE');
    expect(await set).toMatch(/^-ERR proxy: the route \(epoch \d+\) no longer names 127\.0\.0\.1:\d+ as the master of slot \d+; it answered after the change, so the command may have run/);
    expect(await redis.at(a.address).get('k')).toBe('on-the-old-master');
    // The client goes on, on the new master.
    expect(await client.call('SET', 'k', 'new')).toBe('+OK\r\n');
  });

  it('registers a new epoch only when nothing sent under the old route to a replaced master is in flight', async () => {
    const { a, b, client, moveTo, prefix } = await setup('order-drain');
    const epochs = async () => (await world.admin(prefix).listProxies('order-drain')).proxies.map((p) => p.epoch);
    const before = (await epochs())[0]!;
    await redis.at(a.address).call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const set = client.call('SET', 'k', '1');
    await new Promise((r) => setTimeout(r, 100));
    await moveTo(b.address);
    // Applied, but not drained: the registration still says the old epoch.
    await new Promise((r) => setTimeout(r, 300));
    expect(await epochs()).toEqual([before]);
    await redis.at(a.address).call('CLIENT', 'UNPAUSE');
    await set;
    await waitFor('the drained epoch registered', async () => (await epochs())[0] === before! + 1);
  });
});
