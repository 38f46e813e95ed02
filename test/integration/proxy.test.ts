import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { keySlot } from '../../src/model/slot.js';
import { slotOwners } from '../../src/model/route.js';
import type { RedisServer } from '../../src/playground/processes.js';
import { waitFor } from '../../src/playground/processes.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

/** A cluster of `n` masters (no slaves) with the slots spread evenly, and a proxy in front. */
async function setup(name: string, n = 3, options = {}) {
  const prefix = randomPrefix();
  const masters: RedisServer[] = [];
  for (let i = 0; i < n; i++) masters.push(await world.redis());
  const admin = world.admin(prefix);
  await admin.createCluster({ name, file: { shards: masters.map((m) => ({ master: m.address })) } });
  const proxy = await proxies.start(world.etcd.endpoint, prefix, name, options);
  return { prefix, admin, masters, proxy, client: proxies.client(proxy) };
}

describe('the proxy on real etcd and redis', () => {
  it('sends every key to the master of the shard that owns its slot (hash tags honoured)', async () => {
    const { admin, client } = await setup('routing');
    const route = await admin.route('routing');
    const owners = slotOwners(route);
    const keys = Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? `{user${i % 17}}:k${i}` : `key:${i}:${Math.random().toString(36).slice(2)}`));
    for (const k of keys) expect(await client.set(k, `v-${k}`)).toBe('OK');
    for (const k of keys) {
      const shard = route.shards[owners[keySlot(k, route.slotCount)]!]!;
      for (const s of route.shards) {
        const value = await redis.at(s.master).get(k);
        expect(value, `${k} on ${s.id}`).toBe(s === shard ? `v-${k}` : null);
      }
      expect(await client.get(k)).toBe(`v-${k}`);
    }
    // Keys with the same hash tag are in one shard.
    const tagged = keys.filter((k) => k.startsWith('{user3}'));
    expect(new Set(tagged.map((k) => keySlot(k, route.slotCount))).size).toBe(1);
  });

  it('splits MGET, MSET, DEL, UNLINK, EXISTS, TOUCH across shards and merges the answers in order', async () => {
    const { client, masters } = await setup('multi');
    const keys = Array.from({ length: 60 }, (_, i) => `m:${i}`);
    expect(await client.mset(...keys.flatMap((k, i) => [k, String(i)]))).toBe('OK');
    // The keys really are spread: every master got some.
    for (const m of masters) expect(await redis.at(m.address).dbsize()).toBeGreaterThan(0);
    const asked = [...keys.slice(0, 30).reverse(), 'missing', keys[5]!];
    expect(await client.mget(...asked)).toEqual([...keys.slice(0, 30).reverse().map((k) => k.slice(2)), null, '5']);
    expect(await client.exists(keys[0]!, keys[1]!, keys[0]!, 'missing')).toBe(3);
    expect(await client.touch(...keys.slice(0, 10), 'missing')).toBe(10);
    expect(await client.del(...keys.slice(0, 20), 'missing')).toBe(20);
    expect(await client.unlink(...keys.slice(20, 40))).toBe(20);
    expect(await client.dbsize()).toBe(20);
    expect(await client.mget(keys[0]!, keys[45]!)).toEqual([null, '45']);
  });

  it('keeps single-slot commands together and answers CROSSSLOT otherwise', async () => {
    const { client } = await setup('slots');
    await client.set('{a}one', '1');
    expect(await client.rename('{a}one', '{a}two')).toBe('OK');
    expect(await client.get('{a}two')).toBe('1');
    await client.set('a-one', '1');
    await expect(client.rename('a-one', 'b-two-different')).rejects.toThrow(/CROSSSLOT/);
    expect(await client.eval("return redis.call('incrby', KEYS[1], ARGV[1]) + redis.call('incrby', KEYS[2], ARGV[1])", 2, '{e}x', '{e}y', 5)).toBe(10);
    await expect(client.eval('return 1', 2, 'x-1', 'y-2-other')).rejects.toThrow(/CROSSSLOT/);
    // A script without keys runs on one master (it must not touch keys, as in Redis Cluster).
    expect(await client.eval('return 1', 0)).toBe(1);
    // MULTI/EXEC with keys in one slot runs as one transaction on that shard.
    const ok = await client.multi().set('{t}a', '1').incr('{t}a').get('{t}a').exec();
    expect(ok).toEqual([[null, 'OK'], [null, 2], [null, '2']]);
    await expect(client.multi().set('{t}a', '1').set('{u}b', '2').exec()).rejects.toThrow(/EXECABORT/);
    expect(await client.get('{u}b')).toBeNull();
  });

  it('answers PING, ECHO, SELECT 0, INFO, DBSIZE, SCAN itself and refuses what makes no sense through a proxy', async () => {
    const { client } = await setup('local');
    for (let i = 0; i < 50; i++) await client.set(`scan:${i}`, 'x');
    expect(await client.ping()).toBe('PONG');
    expect(await client.echo('hello')).toBe('hello');
    expect(await client.select(0)).toBe('OK');
    await expect(client.select(1)).rejects.toThrow(/only database 0/);
    expect(await client.info()).toMatch(/route_epoch:\d+/);
    expect(await client.dbsize()).toBe(50);
    const seen: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', 'scan:*', 'COUNT', 7);
      seen.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    expect(seen.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `scan:${i}`).sort());
    for (const [cmd, pattern] of [
      [['FLUSHALL'], /FLUSHALL is refused: it would empty every shard/],
      [['CONFIG', 'GET', 'save'], /CONFIG is not supported through the proxy/],
      [['REPLICAOF', 'NO', 'ONE'], /REPLICAOF is refused/],
      [['MOVE', 'k', '1'], /only database 0/],
      [['CLIENT', 'TRACKING', 'on'], /client-side caching needs invalidation messages/],
      [['COPY', 'k', 'k2', 'DB', '1'], /only database 0/],
      [['NOSUCHCOMMAND'], /unknown command/],
      [['GET'], /wrong number of arguments for 'get'/],
      [['HELLO', '4'], /NOPROTO/],
    ] as [string[], RegExp][]) {
      await expect(client.call(cmd[0]!, ...cmd.slice(1)), cmd.join(' ')).rejects.toThrow(pattern);
    }
    expect(await client.ping()).toBe('PONG');
  });

  it('answers pipelined commands in order, for many clients at once', async () => {
    const { proxy } = await setup('pipeline');
    const clients = Array.from({ length: 20 }, () => proxies.client(proxy));
    await Promise.all(
      clients.map(async (c, n) => {
        const pipeline = c.pipeline();
        for (let i = 0; i < 300; i++) {
          pipeline.set(`p:${n}:${i}`, String(i));
          pipeline.incr(`counter:${n}`);
          pipeline.get(`p:${n}:${i}`);
        }
        const results = await pipeline.exec();
        for (let i = 0; i < 300; i++) {
          expect(results![3 * i]).toEqual([null, 'OK']);
          expect(results![3 * i + 1]).toEqual([null, i + 1]);
          expect(results![3 * i + 2]).toEqual([null, String(i)]);
        }
      }),
    );
  });

  it('requires AUTH when it has a password, and never lets a wrong one in', async () => {
    const { proxy } = await setup('auth', 1, { password: 's3cret' });
    // Its ready check (INFO) would fail before AUTH, as with Redis; RESP2 so that it sends no HELLO.
    const anon = proxies.client(proxy, { enableReadyCheck: false, protocol: 2 });
    await expect(anon.get('x')).rejects.toThrow(/NOAUTH/);
    await expect(anon.call('AUTH', 'wrong')).rejects.toThrow(/WRONGPASS/);
    await expect(anon.get('x')).rejects.toThrow(/NOAUTH/);
    expect(await anon.call('AUTH', 's3cret')).toBe('OK');
    expect(await anon.set('x', '1')).toBe('OK');
    // A wrong password after a right one is refused, and leaves the client authenticated (as Redis).
    await expect(anon.call('AUTH', 'wrong')).rejects.toThrow(/WRONGPASS/);
    expect(await anon.get('x')).toBe('1');
    // Before AUTH, Redis's small limits: a 100 MB bulk header is refused at once, nothing buffered.
    const [host, port] = proxy.listenAddress.split(':');
    const stranger = connect(Number(port), host);
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      stranger.on('data', (d) => (got += d.toString()));
      stranger.on('close', () => resolve(got));
      stranger.write('*2\r\n$3\r\nSET\r\n$100000000\r\n');
    });
    expect(answer).toBe('-ERR Protocol error: unauthenticated bulk length\r\n');
    const withPassword = proxies.client(proxy, { password: 's3cret' });
    expect(await withPassword.get('x')).toBe('1');
  });

  it('answers protocol garbage with an error and closes that connection only', async () => {
    const { proxy, client } = await setup('garbage', 1);
    await client.set('still', 'here');
    const [host, port] = proxy.listenAddress.split(':');
    const answer = await new Promise<string>((resolve) => {
      const s = connect({ host, port: Number(port) }, () => s.write('*2\r\n$3\r\nGET\r\n$abc\r\n'));
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('close', () => resolve(data));
    });
    expect(answer).toMatch(/^-ERR Protocol error: expected a number\r\n$/);
    expect(await client.get('still')).toBe('here');
    // Inline commands, as typed in telnet, work.
    const inline = await new Promise<string>((resolve) => {
      const s = connect({ host, port: Number(port) }, () => s.write('PING\r\nGET still\r\nQUIT\r\n'));
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('close', () => resolve(data));
    });
    expect(inline).toBe('+PONG\r\n$4\r\nhere\r\n+OK\r\n');
  });

  it('registers itself with the epoch it applied, and follows a new route', async () => {
    const { admin, proxy, client } = await setup('registry', 1);
    const extra = await world.redis();
    const before = await admin.route('registry');
    await waitFor('the registration', async () => (await admin.listProxies('registry')).proxies[0]?.epoch === before.epoch);
    await client.set('{r}k', 'old');
    // Move everything to a new shard: add it, give it all slots by hand, through a new route.
    await admin.addShard('registry', { master: extra.address });
    const current = await admin.getCluster('registry');
    const moved = { ...current.route, epoch: current.route.epoch + 1, shards: current.route.shards.map((s) => ({ ...s, slots: s.master === extra.address ? [[0, current.route.slotCount - 1] as [number, number]] : [] })) };
    await admin.clusters.writeRoute(moved, current.routeRevision);
    await waitFor('the proxy to apply the new route', async () => (await admin.listProxies('registry')).proxies[0]?.epoch === moved.epoch);
    expect(await client.get('{r}k')).toBeNull(); // now served by the new (empty) master
    await client.set('{r}k', 'new');
    expect(await redis.at(extra.address).get('{r}k')).toBe('new');
    expect(proxy.metrics.counters.epoch).toBe(moved.epoch);
  });
});
