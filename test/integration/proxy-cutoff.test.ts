/**
 * A proxy cut off from etcd (its link hangs) must not go on writing to a master the route no
 * longer names: it follows the route through the controllers' API, and when it cannot reach them
 * either it stops forwarding once its lease could have expired.
 */
import { describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../src/playground/processes.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useProxies } from '../helpers/proxy.js';
import { useRawClients } from '../helpers/raw-client.js';
import { useRedisClients } from '../helpers/redis.js';
import { useRelays } from '../helpers/relay.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();
const raw = useRawClients();
const relay = useRelays();

describe('a proxy cut off from etcd', () => {
  it('learns a failover from a controller and writes to the new master, not the old one', async () => {
    const cluster = await makeCluster(world, 'cutoff');
    const port = await freePort();
    world.controller('cut1', cluster.prefix, ['--listen', `127.0.0.1:${port}`]);
    await waitFor('the controller registered', async () => (await cluster.admin.listControllers()).controllers.length === 1, 15_000);
    await replicating(redis, cluster.slaves, cluster.master.address);
    const link = await relay(world.etcd.endpoint.replace('http://', ''));
    const proxy = await proxies.start(`http://${link.address}`, cluster.prefix, 'cutoff', { metricsListen: '127.0.0.1:0' });
    const client = await raw(proxy.listenAddress);
    expect(await client.call('SET', 'k', 'before')).toBe('+OK\r\n');
    const epoch = proxy.metrics.counters.epoch;

    link.hang();
    await cluster.master.process.kill9();
    // The controller fails the master over; the proxy hears of it through the controller's API.
    await waitFor('the proxy on the new route', async () => proxy.metrics.counters.epoch > epoch, 20_000);
    await waitFor('writes through the proxy', async () => (await client.call('SET', 'k', 'after')) === '+OK\r\n', 10_000);
    expect(await redis.at(cluster.slaves[0]!.address).get('k')).toBe('after');
    link.heal();
  });

  it('stops forwarding when neither etcd nor any controller answers, and says so in /healthz', async () => {
    const cluster = await makeCluster(world, 'isolated');
    const port = await freePort();
    const controller = world.controller('iso1', cluster.prefix, ['--listen', `127.0.0.1:${port}`]);
    await waitFor('the controller registered', async () => (await cluster.admin.listControllers()).controllers.length === 1, 15_000);
    const link = await relay(world.etcd.endpoint.replace('http://', ''));
    const proxy = await proxies.start(`http://${link.address}`, cluster.prefix, 'isolated', { metricsListen: '127.0.0.1:0' });
    const client = await raw(proxy.listenAddress);
    const health = async () => (await fetch(`http://${proxy.metricsListenAddress}/healthz`)).status;
    await waitFor('the proxy knows the controller', async () => proxy.knownControllers().length === 1);
    await waitFor('the proxy registered', async () => (await cluster.admin.listProxies('isolated')).proxies.length === 1);
    expect(await health()).toBe(200);

    // Cut off from both: it goes on only until its lease could have expired.
    controller.signal('SIGSTOP');
    link.hang();
    try {
      // By the time etcd drops its registration (and a barrier stops waiting for it), the proxy
      // has stopped forwarding: its lease's own deadline comes first, and it is checked on every
      // command, not at the guard's next look.
      await waitFor('etcd dropped the registration', async () => (await cluster.admin.listProxies('isolated')).proxies.length === 0, 15_000, 10);
      expect(await client.call('SET', 'k', 'v')).toMatch(/^-CLUSTERDOWN proxy: cut off from etcd and from every controller/);
      await waitFor('forwarding refused', async () => (await client.call('SET', 'k', 'v')).startsWith('-CLUSTERDOWN proxy: cut off from etcd and from every controller'), 15_000);
      expect(await health()).toBe(503);
      expect(await client.call('PING')).toBe('+PONG\r\n');
    } finally {
      controller.signal('SIGCONT');
      link.heal();
    }
    // Back in touch: forwarding again.
    await waitFor('forwarding again', async () => (await client.call('SET', 'k', 'v')) === '+OK\r\n', 15_000);
    expect(await health()).toBe(200);
  });
});
