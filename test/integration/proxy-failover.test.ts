import { Redis } from 'ioredis';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManagedProcess, cfgserverEntry, freePort, startEtcd, waitFor } from '../../src/playground/processes.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { Keys } from '../../src/store/keys.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();
const extraClients: Redis[] = [];
afterAll(() => extraClients.forEach((c) => c.disconnect()));

describe('the proxy across route changes, failures and bad input', () => {
  it('a switchover under pipelined load through the proxy: no error, no acknowledged write lost', async () => {
    const { prefix, admin, master, slaves: replicas } = await makeCluster(world, 'switch', { slaves: 1 });
    world.controller('sw1', prefix);
    await replicating(redis, replicas, master.address);
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'switch');
    const clients = Array.from({ length: 4 }, () => proxies.client(proxy));
    let stop = false;
    const errors: string[] = [];
    const acked: string[] = [];
    const writers = clients.map(async (c, n) => {
      for (let batch = 0; !stop; batch++) {
        const pipeline = c.pipeline();
        for (let i = 0; i < 50; i++) pipeline.set(`sw:${n}:${batch}:${i}`, '1');
        const results = (await pipeline.exec())!;
        results.forEach(([err], i) => (err ? errors.push(err.message) : acked.push(`sw:${n}:${batch}:${i}`)));
      }
    });
    await waitFor('load', async () => acked.length > 2000);
    const result = await cfgctl(world.etcd.endpoint, prefix, ['failover', 'switch', '--shard', 's0']);
    expect(result.code, result.stderr).toBe(0);
    const atSwitch = acked.length;
    await waitFor('more writes after the switch', async () => acked.length > atSwitch + 2000);
    stop = true;
    await Promise.all(writers);
    expect(errors).toEqual([]);
    const route = await admin.route('switch');
    expect(route.shards[0]!.master).toBe(replicas[0]!.address);
    expect(proxy.metrics.counters.epoch).toBe(route.epoch);
    const newMaster = redis.at(replicas[0]!.address);
    for (let i = 0; i < acked.length; i += 1000) {
      const batch = acked.slice(i, i + 1000);
      const values = await newMaster.mget(...batch);
      expect(batch.filter((_, k) => values[k] !== '1')).toEqual([]);
    }
    void master;
  });

  it('kill -9 of a master behind a proxy process: errors only during the failover, then writes land on the new master', async () => {
    const { prefix, admin, master, slaves: replicas } = await makeCluster(world, 'crash', { slaves: 1 });
    world.controller('c1', prefix);
    world.controller('c2', prefix);
    await replicating(redis, replicas, master.address);
    const port = await freePort();
    const proc = new ManagedProcess('proxy', process.execPath, [cfgserverEntry(), 'proxy', '--cluster', 'crash', '--listen', `127.0.0.1:${port}`, '--etcd', world.etcd.endpoint, '--prefix', prefix, '--id', 'px1'], join(world.dir, 'proxy-px1.log'));
    try {
      await waitFor('the proxy process', async () => (await admin.listProxies('crash')).proxies.length === 1, 15_000);
      const client = new Redis({ port, maxRetriesPerRequest: 0, enableOfflineQueue: false });
      client.on('error', () => undefined);
      extraClients.push(client);
      await new Promise((resolve) => client.once('ready', resolve));
      const log: { at: number; ok: boolean }[] = [];
      let stop = false;
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          try {
            await client.set(`c:${i}`, String(i));
            log.push({ at: Date.now(), ok: true });
          } catch {
            log.push({ at: Date.now(), ok: false });
            await new Promise((r) => setTimeout(r, 10));
          }
        }
      })();
      await waitFor('writes', async () => log.filter((l) => l.ok).length > 200);
      const killedAt = Date.now();
      await master.process.kill9();
      await waitFor('the new master in the route', async () => (await admin.route('crash')).shards[0]!.master === replicas[0]!.address, 20_000);
      await waitFor('writes to succeed again', async () => log.filter((l) => l.ok && l.at > killedAt).length > 200, 20_000);
      stop = true;
      await writer;
      const failures = log.filter((l) => !l.ok);
      expect(failures.length).toBeGreaterThan(0); // the master was really gone for a while
      const lastFailure = Math.max(...failures.map((f) => f.at));
      const firstFailure = Math.min(...failures.map((f) => f.at));
      expect(firstFailure).toBeGreaterThanOrEqual(killedAt);
      // Errors come in one window: after the first success that follows them, no more errors.
      const recovered = log.find((l) => l.ok && l.at > firstFailure)!.at;
      expect(lastFailure).toBeLessThanOrEqual(recovered);
      expect(await redis.at(replicas[0]!.address).get(`c:${log.length - 1}`)).not.toBeNull();
    } finally {
      await proc.stop();
    }
  });

  it('ignores and reports a malformed route value, and keeps serving', async () => {
    const { prefix, admin, master } = await makeCluster(world, 'malformed', { slaves: 0 });
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'malformed');
    const client = proxies.client(proxy);
    await client.set('k', 'v');
    const epoch = proxy.metrics.counters.epoch;
    await world.client.put(new Keys(prefix).route('malformed')).value('{"format": 1, "epoch": 99999999, "shards": "nope"}');
    await waitFor('the rejection', async () => proxy.metrics.counters.invalidRoutes === 1);
    expect(proxy.metrics.counters.epoch).toBe(epoch);
    expect(await client.get('k')).toBe('v');
    expect(await redis.at(master.address).get('k')).toBe('v');
    void admin;
  });

  it('bounds what one client can have in flight when a shard stops answering', async () => {
    const { prefix, master } = await makeCluster(world, 'slow', { slaves: 0 });
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'slow', { maxInFlight: 100, backendTimeoutMs: 60_000 });
    master.process.signal('SIGSTOP');
    try {
      const [host, port] = proxy.listenAddress.split(':');
      const socket = connect({ host, port: Number(port) });
      const one = '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n';
      const chunk = one.repeat(1000);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      for (let i = 0; i < 200; i++) socket.write(chunk); // 200 000 commands
      await new Promise((r) => setTimeout(r, 1000));
      const held = proxy.maxClientInFlight();
      expect(held).toBeGreaterThan(0);
      // One read can bring a few thousand commands past the limit, never the 200 000 sent.
      expect(held).toBeLessThan(5000);
      socket.destroy();
    } finally {
      master.process.signal('SIGCONT');
    }
  });

  it('keeps serving its last route while etcd is down, and follows changes when etcd is back', async () => {
    const { prefix, admin, master } = await makeCluster(world, 'outage', { slaves: 0 });
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'outage');
    const client = proxies.client(proxy);
    const etcdPort = Number(new URL(world.etcd.endpoint).port);
    await world.etcd.stop();
    try {
      for (let i = 0; i < 100; i++) expect(await client.set(`o:${i}`, 'x')).toBe('OK');
      expect(await redis.at(master.address).get('o:99')).toBe('x');
    } finally {
      world.etcd = await startEtcd(world.dir, etcdPort);
    }
    const extra = await world.redis();
    await waitFor('etcd back for admin', async () => (await admin.listClusters()).clusters.length > 0, 15_000);
    const current = await admin.getCluster('outage');
    const moved = { ...current.route, epoch: current.route.epoch + 1, shards: [{ ...current.route.shards[0]!, master: extra.address }] };
    await admin.clusters.writeRoute(moved, current.routeRevision);
    await waitFor('the proxy to follow', async () => proxy.metrics.counters.epoch === moved.epoch, 15_000);
    await client.set('after', 'y');
    expect(await redis.at(extra.address).get('after')).toBe('y');
  });
});
