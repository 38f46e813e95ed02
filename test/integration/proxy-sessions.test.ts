/**
 * What needs more than a shared pipelined connection: RESP3, blocking commands, WATCH, pub/sub —
 * and answers that must be Redis's own, compared byte for byte with a direct Redis.
 */
import { describe, expect, it } from 'vitest';
import { Keys } from '../../src/store/keys.js';
import { keySlot } from '../../src/model/slot.js';
import { slotOwners } from '../../src/model/route.js';
import type { RedisServer } from '../../src/playground/processes.js';
import { waitFor } from '../../src/playground/processes.js';
import { useProxies } from '../helpers/proxy.js';
import { useRawClients } from '../helpers/raw-client.js';
import { useRedisClients } from '../helpers/redis.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();
const raw = useRawClients();

async function setup(name: string, n = 3) {
  const prefix = randomPrefix();
  const masters: RedisServer[] = [];
  for (let i = 0; i < n; i++) masters.push(await world.redis());
  const admin = world.admin(prefix);
  await admin.createCluster({ name, file: { shards: masters.map((m) => ({ master: m.address })) } });
  const proxy = await proxies.start(world.etcd.endpoint, prefix, name);
  return { prefix, admin, masters, proxy };
}

/** Publishes a new route in which the shard that owns `key` has `newMaster` as its master. */
async function moveMasterOf(prefix: string, cluster: string, key: string, newMaster: string): Promise<number> {
  const route = await world.admin(prefix).route(cluster);
  const owner = slotOwners(route)[keySlot(key, route.slotCount)]!;
  const shards = route.shards.map((s, i) => (i === owner ? { ...s, master: newMaster } : s));
  const next = { ...route, epoch: route.epoch + 1, shards };
  await world.client.put(new Keys(prefix).route(cluster)).value(JSON.stringify(next));
  return next.epoch;
}

describe('RESP3 through the proxy', () => {
  it('HELLO 3 answers a map like Redis, and replies are Redis\'s own RESP3 bytes', async () => {
    const { proxy, masters } = await setup('resp3', 1);
    const viaProxy = await raw(proxy.listenAddress);
    const direct = await raw(masters[0]!.address);
    const hello = await viaProxy.call('HELLO', '3');
    expect(hello.startsWith('%7\r\n')).toBe(true);
    for (const field of ['server', 'version', 'proto', 'id', 'mode', 'role', 'modules']) expect(hello).toContain(`$${field.length}\r\n${field}\r\n`);
    expect(hello).toContain('$5\r\nproto\r\n:3\r\n');
    expect((await direct.call('HELLO', '3')).startsWith('%7\r\n')).toBe(true);
    await viaProxy.call('HSET', 'h', 'f1', 'v1', 'f2', 'v2');
    await viaProxy.call('ZADD', 'z', '1.5', 'a', '2', 'b');
    await viaProxy.call('SADD', 's', 'm');
    for (const cmd of [
      ['HGETALL', 'h'],
      ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'],
      ['ZSCORE', 'z', 'a'],
      ['SMEMBERS', 's'],
      ['GET', 'missing'],
      ['HGET', 'h', 'nope'],
      ['CONFIG', 'GET', 'maxmemory'],
    ]) {
      if (cmd[0] === 'CONFIG') continue; // refused by the proxy: not a data command
      expect(await viaProxy.call(...cmd), cmd.join(' ')).toBe(await direct.call(...cmd));
    }
    expect(await viaProxy.call('HGETALL', 'h')).toMatch(/^%2\r\n/);
    // Back to RESP2 on the same connection: replies are RESP2 again.
    expect((await viaProxy.call('HELLO', '2')).startsWith('*14\r\n')).toBe(true);
    expect(await viaProxy.call('HGETALL', 'h')).toMatch(/^\*4\r\n/);
    expect(await viaProxy.call('GET', 'missing')).toBe('$-1\r\n');
    expect(await viaProxy.call('HELLO', '4')).toMatch(/^-NOPROTO/);
  });
});

describe('blocking commands on a connection of their own', () => {
  it('BLPOP waits without stalling other clients and is woken by a push from another client', async () => {
    const { proxy } = await setup('blocking');
    const waiter = await raw(proxy.listenAddress);
    const other = await raw(proxy.listenAddress);
    const popped = waiter.call('BLPOP', 'queue', '10');
    // Other clients' commands for the same shard are answered meanwhile.
    for (let i = 0; i < 20; i++) expect(await other.call('SET', 'queue-neighbour', String(i))).toBe('+OK\r\n');
    expect(await other.call('RPUSH', 'queue', 'job-1')).toBe(':1\r\n');
    expect(await popped).toBe('*2\r\n$5\r\nqueue\r\n$5\r\njob-1\r\n');
    // The client's order holds across its own and the shared connections: a push sent before
    // the pop, in the same pipeline, is seen by the pop; a GET after it sees what the pop left.
    const [pushed, pop, left] = await Promise.all([waiter.call('RPUSH', 'q2', 'a', 'b'), waiter.call('BLPOP', 'q2', '1'), waiter.call('LRANGE', 'q2', '0', '-1')]);
    expect([pushed, pop, left]).toEqual([':2\r\n', '*2\r\n$2\r\nq2\r\n$1\r\na\r\n', '*1\r\n$1\r\nb\r\n']);
    // A timeout answers nil, as Redis does.
    expect(await waiter.call('BRPOP', 'empty-list', '0.1')).toBe('*-1\r\n');
  });

  it('BZPOPMIN, BLMOVE and XREAD BLOCK are woken too; a stream key named "block" does not block', async () => {
    const { proxy } = await setup('blocking-kinds');
    const waiter = await raw(proxy.listenAddress);
    const other = await raw(proxy.listenAddress);
    const zpop = waiter.call('BZPOPMIN', '{b}z', '10');
    await other.call('ZADD', '{b}z', '3', 'm');
    expect(await zpop).toBe('*3\r\n$4\r\n{b}z\r\n$1\r\nm\r\n$1\r\n3\r\n');
    const moved = waiter.call('BLMOVE', '{b}src', '{b}dst', 'LEFT', 'RIGHT', '10');
    await other.call('RPUSH', '{b}src', 'x');
    expect(await moved).toBe('$1\r\nx\r\n');
    const read = waiter.call('XREAD', 'BLOCK', '10000', 'STREAMS', 'events', '$');
    await new Promise((r) => setTimeout(r, 100));
    await other.call('XADD', 'events', '1-1', 'f', 'v');
    expect(await read).toContain('$6\r\nevents\r\n');
    await other.call('XADD', 'block', '1-1', 'f', 'v');
    expect(await other.call('XREAD', 'STREAMS', 'block', '0')).toContain('$5\r\nblock\r\n');
  });

  it('a route change that moves the blocked key\'s master ends the wait with an error, never a hang', async () => {
    const { proxy, prefix } = await setup('blocking-route', 1);
    const waiter = await raw(proxy.listenAddress);
    const popped = waiter.call('BLPOP', 'jobs', '0');
    await new Promise((r) => setTimeout(r, 100));
    const replacement = await world.redis();
    const epoch = await moveMasterOf(prefix, 'blocking-route', 'jobs', replacement.address);
    expect(await popped).toMatch(/^-UNBLOCKED proxy: the master of slot \d+ changed \(route epoch \d+\)/);
    expect(proxy.metrics.counters.epoch).toBe(epoch);
    // The client goes on, now on the new master.
    expect(await waiter.call('RPUSH', 'jobs', 'j')).toBe(':1\r\n');
    expect(await redis.at(replacement.address).lrange('jobs', 0, -1)).toEqual(['j']);
  });
});

describe('WAIT', () => {
  it('waits until every shard\'s replicas have the client\'s earlier writes', async () => {
    const prefix = randomPrefix();
    const master = await world.redis();
    const slave = await world.redis(['--replicaof', '127.0.0.1', String(master.port)]);
    await world.admin(prefix).createCluster({ name: 'wait', file: { shards: [{ master: master.address, slaves: [slave.address] }] } });
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'wait');
    await waitFor('the slave in sync', async () => (await redis.replication(slave.address)).linkUp === true);
    const client = await raw(proxy.listenAddress);
    expect(await client.call('SET', 'w', '1')).toBe('+OK\r\n');
    expect(await client.call('WAIT', '1', '5000')).toBe(':1\r\n');
    // A stalled slave cannot acknowledge: WAIT answers 0 when its timeout runs out, as Redis does.
    slave.process.signal('SIGSTOP');
    try {
      const [set, waited] = await Promise.all([client.call('SET', 'w', '2'), client.call('WAIT', '1', '300')]);
      expect([set, waited]).toEqual(['+OK\r\n', ':0\r\n']);
    } finally {
      slave.process.signal('SIGCONT');
    }
    expect(await client.call('WAIT', '1', '5000')).toBe(':1\r\n');
    expect(await redis.at(slave.address).get('w')).toBe('2');
    // Bad arguments get Redis's own error.
    expect(await client.call('WAIT', 'x', '1')).toBe(await (await raw(master.address)).call('WAIT', 'x', '1'));
  });
});

describe('WATCH / MULTI / EXEC', () => {
  it('runs an optimistic transaction, and aborts it when a watched key changed', async () => {
    const { proxy } = await setup('watch');
    const a = proxies.client(proxy);
    const b = proxies.client(proxy);
    await a.set('{acct}balance', '100');
    await a.watch('{acct}balance');
    const balance = Number(await a.get('{acct}balance'));
    expect(await a.multi().set('{acct}balance', String(balance - 30)).incr('{acct}ops').exec()).toEqual([
      [null, 'OK'],
      [null, 1],
    ]);
    expect(await b.get('{acct}balance')).toBe('70');
    // Someone else changes the key between WATCH and EXEC: EXEC answers null, nothing is written.
    await a.watch('{acct}balance');
    await b.set('{acct}balance', '500');
    expect(await a.multi().set('{acct}balance', '0').exec()).toBeNull();
    expect(await b.get('{acct}balance')).toBe('500');
    // UNWATCH, then the same transaction goes through.
    await a.watch('{acct}balance');
    await b.set('{acct}balance', '501');
    await a.unwatch();
    expect(await a.multi().set('{acct}balance', '1').exec()).toEqual([[null, 'OK']]);
    // Keys of a WATCH must share a slot.
    await expect(a.watch('x-one', 'y-two')).rejects.toThrow(/CROSSSLOT/);
  });

  it('a WATCH whose master changed makes EXEC answer null, so the client retries', async () => {
    const { proxy, prefix } = await setup('watch-route', 1);
    const a = await raw(proxy.listenAddress);
    await a.call('SET', 'w', '1');
    expect(await a.call('WATCH', 'w')).toBe('+OK\r\n');
    const replacement = await world.redis();
    await moveMasterOf(prefix, 'watch-route', 'w', replacement.address);
    await waitFor('the new route', async () => (await a.call('GET', 'w')) === '$-1\r\n');
    expect(await a.call('MULTI')).toBe('+OK\r\n');
    expect(await a.call('SET', 'w', '2')).toBe('+QUEUED\r\n');
    expect(await a.call('EXEC')).toBe('*-1\r\n');
    expect(await redis.at(replacement.address).get('w')).toBeNull();
  });
});

describe('pub/sub', () => {
  it('delivers messages published through another connection, by channel, pattern and shard channel', async () => {
    const { proxy } = await setup('pubsub');
    const sub = await raw(proxy.listenAddress);
    const pub = await raw(proxy.listenAddress);
    // Channels whose slots are on different shards.
    // One confirmation per channel, as Redis sends (the second arrives as a reply nobody waits for).
    expect(await sub.call('SUBSCRIBE', 'news', 'alerts')).toBe('*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n');
    expect(await sub.nextUnsolicited()).toBe('*3\r\n$9\r\nsubscribe\r\n$6\r\nalerts\r\n:2\r\n');
    expect(await pub.call('PUBLISH', 'news', 'hello')).toBe(':1\r\n');
    expect(await sub.nextUnsolicited()).toBe('*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n');
    await pub.call('PUBLISH', 'alerts', 'fire');
    expect(await sub.nextUnsolicited()).toBe('*3\r\n$7\r\nmessage\r\n$6\r\nalerts\r\n$4\r\nfire\r\n');
    // A subscribed RESP2 client may only (un)subscribe, ping, quit or reset: as Redis says.
    expect(await sub.call('GET', 'x')).toBe("-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n");
    expect(await sub.call('PING')).toBe('*2\r\n$4\r\npong\r\n$0\r\n\r\n');
    // A pattern hears channels of every shard.
    expect(await sub.call('PSUBSCRIBE', 'metric.*')).toBe('*3\r\n$10\r\npsubscribe\r\n$8\r\nmetric.*\r\n:3\r\n');
    const channels = Array.from({ length: 12 }, (_, i) => `metric.${i}`);
    for (const ch of channels) await pub.call('PUBLISH', ch, 'v');
    const heard = [];
    for (let i = 0; i < channels.length; i++) heard.push(await sub.nextUnsolicited());
    expect(heard.map((m) => m.split('\r\n')[6]).sort()).toEqual([...channels].sort());
    expect(await sub.call('UNSUBSCRIBE')).toBe('*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:2\r\n');
    expect(await sub.nextUnsolicited()).toBe('*3\r\n$11\r\nunsubscribe\r\n$6\r\nalerts\r\n:1\r\n');
    expect(await pub.call('PUBLISH', 'news', 'unheard')).toBe(':0\r\n');
    expect(await sub.call('PUNSUBSCRIBE')).toBe('*3\r\n$12\r\npunsubscribe\r\n$8\r\nmetric.*\r\n:0\r\n');
    // Shard channels.
    expect(await sub.call('SSUBSCRIBE', '{orders}created')).toBe('*3\r\n$10\r\nssubscribe\r\n$15\r\n{orders}created\r\n:1\r\n');
    expect(await pub.call('SPUBLISH', '{orders}created', 'o-1')).toBe(':1\r\n');
    expect(await sub.nextUnsolicited()).toBe('*3\r\n$8\r\nsmessage\r\n$15\r\n{orders}created\r\n$3\r\no-1\r\n');
    expect(sub.unsolicited).toEqual([]);
  });

  it('PUBSUB CHANNELS, NUMSUB and NUMPAT answer for the whole cluster', async () => {
    const { proxy } = await setup('pubsub-introspection');
    const sub = await raw(proxy.listenAddress);
    const ask = await raw(proxy.listenAddress);
    await sub.call('SUBSCRIBE', 'news', 'alerts', 'weather');
    for (let i = 0; i < 2; i++) await sub.nextUnsolicited();
    await sub.call('PSUBSCRIBE', 'metric.*');
    const channels = await ask.call('PUBSUB', 'CHANNELS');
    expect(channels.split('\r\n').filter((l) => !/^[*$]/.test(l) && l).sort()).toEqual(['alerts', 'news', 'weather']);
    expect(await ask.call('PUBSUB', 'NUMSUB', 'news', 'weather', 'nobody')).toBe('*6\r\n$4\r\nnews\r\n:1\r\n$7\r\nweather\r\n:1\r\n$6\r\nnobody\r\n:0\r\n');
    // The pattern is subscribed on every master, and counted once.
    expect(await ask.call('PUBSUB', 'NUMPAT')).toBe(':1\r\n');
    await ask.call('HELLO', '3');
    expect(await ask.call('PUBSUB', 'NUMSUB', 'news')).toBe('%1\r\n$4\r\nnews\r\n:1\r\n');
  });

  it('RESP3 subscribers get pushes and may run other commands meanwhile', async () => {
    const { proxy } = await setup('pubsub3');
    const sub = await raw(proxy.listenAddress);
    const pub = await raw(proxy.listenAddress);
    await sub.call('HELLO', '3');
    // In RESP3 the confirmation is itself a push, as from Redis.
    expect(await sub.call('SUBSCRIBE', 'ch')).toBe('>3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n');
    expect(await sub.call('SET', 'k', 'v')).toBe('+OK\r\n');
    await pub.call('PUBLISH', 'ch', 'm');
    expect(await sub.nextUnsolicited()).toBe('>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n');
  });

  it('messages keep flowing when the channel\'s master changes', async () => {
    const { proxy, prefix } = await setup('pubsub-route', 1);
    const sub = await raw(proxy.listenAddress);
    const pub = await raw(proxy.listenAddress);
    await sub.call('SUBSCRIBE', 'feed');
    const replacement = await world.redis();
    await moveMasterOf(prefix, 'pubsub-route', 'feed', replacement.address);
    // Published through the proxy, now on the new master, and still heard.
    await waitFor('the subscription moved', async () => (await pub.call('PUBLISH', 'feed', 'after')) === ':1\r\n');
    expect(await sub.nextUnsolicited()).toBe('*3\r\n$7\r\nmessage\r\n$4\r\nfeed\r\n$5\r\nafter\r\n');
    expect(await redis.at(replacement.address).call('PUBSUB', 'NUMSUB', 'feed')).toEqual(['feed', 1]);
  });
});

describe('answers as Redis gives them', () => {
  it('matches a direct Redis byte for byte on transaction errors, SORT, SINTERCARD and stream reads', async () => {
    const { proxy, masters } = await setup('semantics', 1);
    const viaProxy = await raw(proxy.listenAddress);
    const direct = await raw(masters[0]!.address);
    const scripts: string[][][] = [
      // A wrong-arity command inside MULTI makes EXEC fail with EXECABORT.
      [['MULTI'], ['GET'], ['SET', 'a', '1'], ['EXEC']],
      // An unknown command inside MULTI too.
      [['MULTI'], ['NOSUCH', 'x'], ['EXEC']],
      // PING inside MULTI is queued and answered by EXEC.
      [['MULTI'], ['PING'], ['SET', 'a', '2'], ['GET', 'a'], ['EXEC']],
      [['MULTI'], ['MULTI'], ['WATCH', 'a'], ['DISCARD'], ['EXEC'], ['DISCARD']],
      [['RPUSH', 'list', '3', '1', '2'], ['SORT', 'list'], ['SORT', 'list', 'DESC', 'LIMIT', '0', '2'], ['SORT', 'list', 'BY', 'nosort'], ['RPUSH', '{l}list', '2', '1'], ['SORT', '{l}list', 'STORE', '{l}sorted'], ['LRANGE', '{l}sorted', '0', '-1']],
      [['SADD', 's1', 'a', 'b'], ['SINTERCARD', '1', 's1'], ['SINTERCARD', '0', 's1'], ['SINTERCARD', 'abc', 's1'], ['SINTERCARD', '5', 's1'], ['SINTERCARD', '1', 's1', 'LIMIT', '-1']],
      [['XADD', 'block', '1-1', 'f', 'v'], ['XREAD', 'STREAMS', 'block', '0'], ['XREAD', 'COUNT', '1', 'STREAMS', 'block', '0']],
    ];
    const run = async (client: typeof direct, script: string[][]) => {
      const replies: string[] = [];
      for (const cmd of script) replies.push(`${cmd.join(' ')} => ${await client.call(...cmd)}`);
      await direct.call('FLUSHALL');
      return replies;
    };
    for (const script of scripts) expect(await run(viaProxy, script)).toEqual(await run(direct, script));
  });

  it('a command split over shards answers what the shards that ran did, and names the one that failed', async () => {
    const { proxy, masters, admin } = await setup('partial');
    const client = await raw(proxy.listenAddress);
    const route = await admin.route('partial');
    const owners = slotOwners(route);
    const keys = Array.from({ length: 30 }, (_, i) => `p:${i}`);
    expect(await client.call('MSET', ...keys.flatMap((k) => [k, 'v']))).toBe('+OK\r\n');
    const dead = route.shards[0]!.master;
    const onDead = keys.filter((k) => route.shards[owners[keySlot(k, route.slotCount)]!]!.master === dead);
    expect(onDead.length).toBeGreaterThan(0);
    expect(onDead.length).toBeLessThan(keys.length);
    await masters.find((m) => m.address === dead)!.process.kill9();
    // MGET: a value for every key whose shard answered, the shard's error for the others.
    const mget = await client.call('MGET', ...keys);
    const elements = mget.split('\r\n').slice(1, -1);
    expect(elements.filter((e) => e.startsWith('-ERR proxy: backend')).length).toBe(onDead.length);
    expect(elements.filter((e) => e === 'v').length).toBe(keys.length - onDead.length);
    // DEL: an error that says how many keys the shards that answered deleted, and which failed.
    const del = await client.call('DEL', ...keys);
    expect(del).toMatch(new RegExp(`^-ERR proxy: DEL partly failed: the shards of ${keys.length - onDead.length} of ${keys.length} keys answered ${keys.length - onDead.length}; ${dead.replace(/\./g, '\\.')}: `));
    expect(await client.call('EXISTS', ...keys.filter((k) => !onDead.includes(k)))).toBe(':0\r\n');
    // MSET likewise; with every key on the dead shard, the shard's own error comes back.
    expect(await client.call('MSET', ...keys.flatMap((k) => [k, 'w']))).toMatch(new RegExp(`^-ERR proxy: MSET partly failed: ${keys.length - onDead.length} of ${keys.length} keys were set; `));
    expect(await client.call('DEL', ...onDead)).toMatch(/^-ERR proxy: backend/);
  });
});
