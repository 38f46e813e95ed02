/**
 * Client-library compatibility: what applications really do with node-redis (RESP3 by default,
 * and RESP2), redis-py 8 and BullMQ, run once against a plain redis-server — which proves the
 * scenarios themselves are right — and once through the proxy in front of three masters.
 *
 * The proxy block is the definition of done for the proxy's RESP3, WATCH, blocking-command,
 * pub/sub and SCAN work: until those land, its failures say which feature is missing.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { createClient, WatchError, type RedisClientType } from 'redis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot, type RedisServer } from '../../src/playground/processes.js';
import { useProxies } from '../helpers/proxy.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const proxies = useProxies();

interface Target {
  host: string;
  port: number;
}

function parseAddress(address: string): Target {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** Rejects with `what` if `promise` has not settled within `ms`, so that nothing waits forever. */
async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
}

// ---------------------------------------------------------------------------------------------
// node-redis

/**
 * Node-redis's own type depends on the RESP version chosen; every scenario below expects the same
 * JavaScript values from RESP2 and RESP3 (that is node-redis's promise), so one type serves both.
 */
type NodeRedis = RedisClientType;

function nodeRedisScenarios(target: () => Target, options: { RESP?: 2 }) {
  const opened: NodeRedis[] = [];
  afterEach(() => {
    for (const c of opened.splice(0)) {
      try {
        c.destroy();
      } catch {
        // already closed
      }
    }
  });

  /**
   * A connected client with node-redis's defaults. Node-redis retries a failed handshake (a
   * refused HELLO 3, say) forever without rejecting connect(), so the attempt is bounded here
   * and the last error it reported becomes the failure.
   */
  const connect = async (): Promise<NodeRedis> => {
    const { host, port } = target();
    const client = createClient({ socket: { host, port }, ...options }) as unknown as NodeRedis;
    let lastError: unknown;
    client.on('error', (e: unknown) => (lastError = e));
    opened.push(client);
    try {
      await within('connect', 3000, client.connect());
    } catch (e) {
      throw new Error(`node-redis could not connect to ${host}:${port}: ${message(lastError ?? e)}`);
    }
    return client;
  };
  const tag = () => randomBytes(4).toString('hex');

  it('connects and answers PING', async () => {
    const c = await connect();
    expect(await c.ping()).toBe('PONG');
  });

  it('strings: SET, GET, INCR, EXPIRE, TTL', async () => {
    const c = await connect();
    const t = tag();
    expect(await c.set(`{${t}}s`, 'v1')).toBe('OK');
    expect(await c.get(`{${t}}s`)).toBe('v1');
    expect(await c.incr(`{${t}}n`)).toBe(1);
    expect(await c.incrBy(`{${t}}n`, 41)).toBe(42);
    expect(await c.expire(`{${t}}s`, 100)).toBe(1);
    const ttl = await c.ttl(`{${t}}s`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(100);
    expect(await c.set(`{${t}}e`, 'x', { EX: 50, NX: true })).toBe('OK');
    expect(await c.set(`{${t}}e`, 'y', { EX: 50, NX: true })).toBeNull();
    expect(await c.get(`{${t}}missing`)).toBeNull();
  });

  it('hashes: HSET of an object, HGETALL as an object', async () => {
    const c = await connect();
    const h = `{${tag()}}h`;
    expect(await c.hSet(h, { name: 'ada', lang: 'ts', n: '3' })).toBe(3);
    expect({ ...(await c.hGetAll(h)) }).toEqual({ name: 'ada', lang: 'ts', n: '3' });
    expect(await c.hIncrBy(h, 'n', 2)).toBe(5);
    expect(await c.hGet(h, 'name')).toBe('ada');
  });

  it('MSET and MGET over keys of every shard, in order', async () => {
    const c = await connect();
    const t = tag();
    const keys = Array.from({ length: 40 }, (_, i) => `mk:${t}:${i}`);
    expect(await c.mSet(Object.fromEntries(keys.map((k, i) => [k, String(i)])))).toBe('OK');
    const asked = [...keys.slice(0, 20).reverse(), `mk:${t}:missing`, keys[3]!];
    expect(await c.mGet(asked)).toEqual([...Array.from({ length: 20 }, (_, i) => String(19 - i)), null, '3']);
  });

  it('MULTI/EXEC in one slot, and execAsPipeline across slots', async () => {
    const c = await connect();
    const t = tag();
    expect(await c.multi().set(`{${t}}a`, '1').incr(`{${t}}a`).get(`{${t}}a`).exec()).toEqual(['OK', 2, '2']);
    const pipeline = c.multi();
    for (let i = 0; i < 30; i++) pipeline.set(`p:${t}:${i}`, String(i)).incr(`pc:${t}:${i}`).get(`p:${t}:${i}`);
    const replies = await pipeline.execAsPipeline();
    expect(replies).toEqual(Array.from({ length: 30 }, (_, i) => ['OK', 1, String(i)]).flat());
  });

  it('WATCH, MULTI, EXEC: commits when the watched key is unchanged', async () => {
    const c = await connect();
    const k = `{${tag()}}balance`;
    await c.set(k, '100');
    expect(await c.watch(k)).toBe('OK');
    const balance = Number(await c.get(k));
    expect(await c.multi().set(k, String(balance - 30)).get(k).exec()).toEqual(['OK', '70']);
    expect(await c.get(k)).toBe('70');
  });

  it('WATCH, MULTI, EXEC: fails with WatchError when another client changed the key', async () => {
    const [c, other] = [await connect(), await connect()];
    const k = `{${tag()}}balance`;
    await c.set(k, '100');
    expect(await c.watch(k)).toBe('OK');
    const balance = Number(await c.get(k));
    await other.set(k, '1');
    const exec = c.multi().set(k, String(balance - 30)).exec();
    await expect(exec).rejects.toBeInstanceOf(WatchError);
    expect(await c.get(k)).toBe('1');
  });

  it('scanIterator finds each of 500 keys exactly once', async () => {
    const c = await connect();
    const t = tag();
    const keys = Array.from({ length: 500 }, (_, i) => `scan:${t}:${i}`);
    await c.mSet(Object.fromEntries(keys.map((k) => [k, 'x'])));
    const seen: string[] = [];
    for await (const batch of c.scanIterator({ MATCH: `scan:${t}:*`, COUNT: 50 })) {
      seen.push(...batch);
      // A cursor that never returns to 0 must fail the test, not loop forever.
      if (seen.length > 10 * keys.length) throw new Error(`SCAN does not end: ${seen.length} keys so far`);
    }
    expect(seen.length - new Set(seen).size, 'keys returned more than once').toBe(0);
    expect([...seen].sort()).toEqual([...keys].sort());
  });

  it('SUBSCRIBE: a listener receives what another client publishes', async () => {
    const [sub, pub] = [await connect(), await connect()];
    const channel = `news:${tag()}`;
    let heard: (m: [string, string]) => void = () => undefined;
    const received = new Promise<[string, string]>((resolve) => (heard = resolve));
    // Resolves once the server acknowledged the subscription: a PUBLISH from now on reaches it.
    await sub.subscribe(channel, (msg, ch) => heard([msg, ch]));
    expect(await pub.publish(channel, 'hello')).toBe(1);
    expect(await within('the message', 5000, received)).toEqual(['hello', channel]);
    await sub.unsubscribe(channel);
  });

  it('PSUBSCRIBE: a pattern listener receives a message on a matching channel', async () => {
    const [sub, pub] = [await connect(), await connect()];
    const t = tag();
    let heard: (m: [string, string]) => void = () => undefined;
    const received = new Promise<[string, string]>((resolve) => (heard = resolve));
    await sub.pSubscribe(`events:${t}:*`, (msg, ch) => heard([msg, ch]));
    expect(await pub.publish(`events:${t}:login`, 'alice')).toBe(1);
    expect(await within('the message', 5000, received)).toEqual(['alice', `events:${t}:login`]);
  });

  it('BLPOP is woken by an RPUSH from another client', async () => {
    const [blocked, pusher] = [await connect(), await connect()];
    const q = `{${tag()}}queue`;
    const started = Date.now();
    // 3 s: under node-redis's 5 s default command timeout, so that a lost wake-up reads as a
    // null reply, not as a client-side timeout.
    const popped = blocked.blPop(q, 3);
    popped.catch(() => undefined); // a refusal is reported below, not as an unhandled rejection
    await new Promise((r) => setTimeout(r, 300));
    expect(await pusher.rPush(q, 'job-1')).toBe(1);
    expect(await within('BLPOP', 5000, popped)).toEqual({ key: q, element: 'job-1' });
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('ZADD, ZRANGE WITHSCORES', async () => {
    const c = await connect();
    const z = `{${tag()}}z`;
    expect(await c.zAdd(z, [{ score: 1, value: 'a' }, { score: 2.5, value: 'b' }, { score: 3, value: 'c' }])).toBe(3);
    expect(await c.zRangeWithScores(z, 0, -1)).toEqual([
      { value: 'a', score: 1 },
      { value: 'b', score: 2.5 },
      { value: 'c', score: 3 },
    ]);
    expect(await c.zIncrBy(z, 10, 'a')).toBe(11);
  });

  it('EVAL with keys', async () => {
    const c = await connect();
    const t = tag();
    const script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[1])";
    expect(await c.eval(script, { keys: [`{${t}}a`, `{${t}}b`], arguments: ['7'] })).toBe(7);
    expect(await c.eval(script, { keys: [`{${t}}a`, `{${t}}b`], arguments: ['7'] })).toBe(14);
    expect(await c.get(`{${t}}a`)).toBe('7');
  });
}

// ---------------------------------------------------------------------------------------------
// redis-py

/** The scenarios test/clients/redis_py_scenarios.py runs, in its order. */
const REDIS_PY_SCENARIOS = [
  'connect',
  'strings',
  'hashes',
  'lists',
  'sets',
  'sorted_sets',
  'pipeline',
  'watch_transaction',
  'watch_conflict',
  'scan_iter',
  'pubsub',
  'pattern_pubsub',
  'blocking_pop',
  'lua',
];

interface PyRun {
  code: number | null;
  stderr: string;
  lines: { scenario: string; ok: boolean; error?: string }[];
}

function runRedisPy(target: Target, protocol: 2 | 3 | undefined): Promise<PyRun> {
  const script = join(packageRoot(), 'test', 'clients', 'redis_py_scenarios.py');
  const args = [script, target.host, String(target.port), ...(protocol ? ['--protocol', String(protocol)] : [])];
  return new Promise((resolve) => {
    execFile('python3', args, { timeout: 90_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      const lines = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as PyRun['lines'][number]);
      resolve({ code, stderr: err && code === null ? `${stderr}\n${err.message}` : stderr, lines });
    });
  });
}

function redisPyScenarios(target: () => Target, protocol: 2 | 3 | undefined) {
  // One run of the script serves every `it` below; the first to need it starts it.
  let run: Promise<PyRun> | undefined;
  const result = () => (run ??= runRedisPy(target(), protocol));

  it('reports every scenario, and exits 0 only if all passed', async () => {
    const r = await result();
    expect(r.lines.map((l) => l.scenario), r.stderr).toEqual(REDIS_PY_SCENARIOS);
    expect(r.code, r.stderr).toBe(r.lines.every((l) => l.ok) ? 0 : 1);
  });

  for (const name of REDIS_PY_SCENARIOS) {
    it(name, async () => {
      const line = (await result()).lines.find((l) => l.scenario === name);
      expect(line, `${name} did not report`).toBeDefined();
      if (!line!.ok) throw new Error(`redis-py ${name}: ${line!.error}`);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// BullMQ

function bullmqScenarios(target: () => Target) {
  it('a Queue and a Worker with a {hash tag} prefix complete 1,000 jobs, each exactly once', async () => {
    const { host, port } = target();
    const connection = { host, port };
    const name = `jobs-${randomBytes(4).toString('hex')}`;
    const errors: string[] = [];
    const queue = new Queue(name, { connection, prefix: '{bull}' });
    queue.on('error', (e) => errors.push(`queue: ${message(e)}`));
    const processed = new Map<string, number>();
    const completed = new Map<string, number>();
    let allDone: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    const worker = new Worker(
      name,
      async (job) => {
        processed.set(job.id!, (processed.get(job.id!) ?? 0) + 1);
        return (job.data as { n: number }).n * 2;
      },
      { connection, prefix: '{bull}', concurrency: 20 },
    );
    worker.on('error', (e) => errors.push(`worker: ${message(e)}`));
    worker.on('failed', (job, e) => errors.push(`job ${job?.id} failed: ${message(e)}`));
    worker.on('completed', (job, value) => {
      completed.set(job.id!, (completed.get(job.id!) ?? 0) + 1);
      if (value !== (job.data as { n: number }).n * 2) errors.push(`job ${job.id} returned ${value}`);
      if (completed.size === 1000) allDone();
    });
    try {
      const jobs = await within('adding the jobs', 20_000, queue.addBulk(Array.from({ length: 1000 }, (_, n) => ({ name: 'double', data: { n } }))));
      expect(new Set(jobs.map((j) => j.id)).size).toBe(1000);
      await within('1,000 jobs', 60_000, done).catch(() => {
        // The counts at the deadline are what explains a failure.
        throw new Error(`${completed.size} of 1000 jobs completed within 60 s; first errors: ${errors.slice(0, 3).join('; ') || 'none'}`);
      });
      expect([...completed.values()].filter((n) => n !== 1)).toEqual([]);
      expect([...processed.values()].filter((n) => n !== 1)).toEqual([]);
      expect(processed.size).toBe(1000);
      expect((await queue.getJobCounts('completed')).completed).toBe(1000);
      expect(errors, 'errors the queue and the worker reported').toEqual([]);
    } finally {
      // A worker stuck on a connection that never became ready must not hold the file open.
      await within('closing the worker', 10_000, worker.close()).catch(() => worker.close(true));
      await within('closing the queue', 10_000, queue.close()).catch(() => undefined);
    }
  }, 90_000);
}

// ---------------------------------------------------------------------------------------------

/** Every client's scenarios against the Redis address `start` provides. */
function compatibility(start: () => Promise<Target>) {
  let target: Target;
  beforeAll(async () => {
    target = await start();
  });
  const t = () => target;
  describe('node-redis, default settings (RESP3: HELLO 3)', () => nodeRedisScenarios(t, {}));
  describe('node-redis, RESP2', () => nodeRedisScenarios(t, { RESP: 2 }));
  describe('redis-py, default settings (RESP3 since redis-py 8)', () => redisPyScenarios(t, undefined));
  describe('redis-py, protocol=3', () => redisPyScenarios(t, 3));
  describe('redis-py, protocol=2', () => redisPyScenarios(t, 2));
  describe('BullMQ (ioredis)', () => bullmqScenarios(t));
}

describe('client libraries against a direct redis-server (proves the scenarios)', () => {
  compatibility(async () => parseAddress((await world.redis()).address));
});

describe('client libraries through the proxy (3 masters)', () => {
  compatibility(async () => {
    const prefix = randomPrefix();
    const masters: RedisServer[] = [];
    for (let i = 0; i < 3; i++) masters.push(await world.redis());
    await world.admin(prefix).createCluster({ name: 'clients', file: { shards: masters.map((m) => ({ master: m.address })) } });
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'clients');
    return parseAddress(proxy.listenAddress);
  });
});
