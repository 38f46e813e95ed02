/**
 * Heavy settings roll (docs/config.md): a real `appendonly yes` goes to one instance per shard at a
 * time, slaves first, each instance's AOF rewrite over before the next begins, across a leader
 * killed mid-roll; a paused cluster does not roll.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/playground/processes.js';
import { parseInstanceFacts } from '../../src/redis/info.js';
import { RedisPool } from '../../src/redis/pool.js';
import { AdminService } from '../../src/service/admin-service.js';
import { Keys } from '../../src/store/keys.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const pool = new RedisPool({ timeoutMs: 2000 });
afterAll(() => pool.close());

/** Each instance's AOF rewrites as seen by a test-side poller: [first seen, last seen] sample numbers. */
class RewriteWatcher {
  readonly spans = new Map<string, [number, number][]>();
  private sample = 0;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(private readonly instances: string[]) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    const open = new Set<string>();
    while (!this.stopped) {
      this.sample++;
      const facts = await Promise.all(this.instances.map(async (i) => [i, parseInstanceFacts(await redis.at(i).call('INFO', 'persistence', 'memory', 'replication'))] as const));
      for (const [i, f] of facts) {
        const spans = this.spans.get(i) ?? [];
        if (f.aofRewriting && open.has(i)) spans[spans.length - 1]![1] = this.sample;
        else if (f.aofRewriting) (open.add(i), spans.push([this.sample, this.sample]));
        else open.delete(i);
        this.spans.set(i, spans);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

async function aofState(address: string) {
  const f = parseInstanceFacts(await redis.at(address).call('INFO', 'persistence', 'memory', 'replication'));
  return { enabled: f.aofEnabled, rewriting: f.aofRewriting };
}

describe('heavy settings', () => {
  it('roll appendonly yes one instance per shard, slaves first, each rewrite over before the next, across a leader change; paused: no roll', async () => {
    const c = await makeCluster(world, 'roll', { shards: 2, slaves: [2, 1] });
    const admin = new AdminService(world.client, new Keys(c.prefix), pool);
    const file = join(world.dir, 'controller-roll.yaml');
    writeFileSync(file, 'configCheckMs: 300\n');
    const controllers = new Map([1, 2].map((n) => [`roll-${n}`, world.controller(`roll-${n}`, c.prefix, ['--config', file])]));
    for (const s of c.shards) await replicating(redis, s.slaves, s.master.address);
    const all = c.shards.flatMap((s) => [s.master.address, ...s.slaves.map((x) => x.address)]);

    // 40 keys a shard, and a save delay of 25 ms a key: each AOF rewrite takes about a second, long enough to watch.
    for (const s of c.shards) {
      const m = redis.at(s.master.address);
      for (let k = 0; k < 40; k++) await m.set(`k${k}`, 'v');
      await m.call('WAIT', String(s.slaves.length), '5000');
    }
    for (const i of all) await redis.at(i).call('CONFIG', 'SET', 'rdb-key-save-delay', '25000');

    const watcher = new RewriteWatcher(all);
    await admin.config.set('roll', { appendonly: 'yes' });
    const rolled = () => admin.listHistory('roll', 500).then((h) => h.entries.filter((e) => e.action === 'config:roll' && e.outcome === 'done'));

    // Kill the leader once the first step is done: the other replica carries on from what the instances report.
    await waitFor('the first roll step', async () => (await rolled()).length >= 1, 20_000);
    const leader = (await admin.controllers.leader())!.controller;
    await controllers.get(leader)!.kill9();
    await waitFor('every instance with its AOF on and rewritten', async () => {
      for (const i of all) {
        const s = await aofState(i);
        if (!s.enabled || s.rewriting) return false;
      }
      return (await rolled()).length === all.length;
    }, 60_000);
    await watcher.stop();

    const steps = await rolled();
    expect(new Set(steps.map((e) => e.controller)).size).toBe(2); // both leaders rolled
    expect(steps.map((e) => e.target).sort()).toEqual([...all].sort()); // each instance once
    for (const s of c.shards) {
      const order = steps.filter((e) => e.shard === `s${c.shards.indexOf(s)}`).map((e) => e.target);
      const slaves = s.slaves.map((x) => x.address).sort();
      expect(order).toEqual([...slaves, s.master.address]);
    }
    expect(steps.every((e) => /rolled one instance per shard, slaves first.*appendonly no -> yes.*turning the AOF on/.test(e.reason))).toBe(true);
    // What the instances did: every one rewrote, and no two rewrites overlapped (on one host the
    // roll is one instance at a time), in the order of the steps.
    const spans = steps.map((e) => ({ instance: e.target!, span: watcher.spans.get(e.target!) ?? [] }));
    for (const { instance, span } of spans) expect(span.length, `${instance} rewrote its AOF once`).toBe(1);
    for (let k = 1; k < spans.length; k++) expect(spans[k]!.span[0]![0], `${spans[k]!.instance} began after ${spans[k - 1]!.instance} ended: ${JSON.stringify(spans)}`).toBeGreaterThan(spans[k - 1]!.span[0]![1]);

    // Paused: a hand change of a heavy key is reported, not rolled back; resumed: it rolls.
    const slave = c.slaves[0]!.address;
    await admin.setPaused('roll', true);
    await new Promise((r) => setTimeout(r, 1000)); // a leader cycle that had read the cluster before the pause ends
    await redis.at(slave).call('CONFIG', 'SET', 'appendonly', 'no');
    await waitFor('the paused drift reported', async () => (await admin.listHistory('roll', 500)).entries.some((e) => e.target === slave && e.outcome === 'refused' && /cluster paused, not repaired: drift: appendonly was no/.test(e.reason)), 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // five passes
    expect((await aofState(slave)).enabled).toBe(false);
    await admin.setPaused('roll', false);
    // The step is recorded right after its CONFIG SET: wait for the record, not for the setting.
    const back = await waitFor('the drift rolled back after the pause', async () => (await rolled()).find((e) => e.target === slave && /drift: appendonly was no/.test(e.reason)), 10_000);
    expect(back.controller).not.toBe(leader);
    expect((await aofState(slave)).enabled).toBe(true);
  });

  it('rolls maxmemory below the memory in use (slave, then master), and sets one above it at once', async () => {
    const c = await makeCluster(world, 'evict');
    const admin = new AdminService(world.client, new Keys(c.prefix), pool);
    const file = join(world.dir, 'controller-evict.yaml');
    writeFileSync(file, 'configCheckMs: 300\n');
    world.controller('evict-1', c.prefix, ['--config', file]);
    const [master, slave] = [c.master.address, c.slaves[0]!.address];
    await replicating(redis, c.slaves, master);
    // About 20 MB of data on both.
    const m = redis.at(master);
    const value = 'x'.repeat(100_000);
    for (let k = 0; k < 200; k++) await m.set(`big${k}`, value);
    await m.call('WAIT', '1', '5000');
    const history = async () => (await admin.listHistory('evict', 500)).entries.filter((e) => e.action.startsWith('config'));

    await admin.config.set('evict', { maxmemory: '1gb', 'maxmemory-policy': 'allkeys-lru' });
    await waitFor('maxmemory 1gb everywhere', async () => (await Promise.all([master, slave].map((i) => redis.at(i).call('CONFIG', 'GET', 'maxmemory')))).every((r) => (r as string[])[1] === String(1024 ** 3)), 10_000);
    expect((await history()).filter((e) => e.action === 'config:roll')).toEqual([]); // above what is used: light

    await admin.config.set('evict', { maxmemory: '10mb' });
    await waitFor('maxmemory 10mb everywhere, the master evicted', async () => {
      const [a, b] = await Promise.all([master, slave].map((i) => redis.at(i).call('CONFIG', 'GET', 'maxmemory')));
      return (a as string[])[1] === String(10 * 1024 ** 2) && (b as string[])[1] === String(10 * 1024 ** 2) && (await m.dbsize()) < 200 && (await history()).filter((e) => e.action === 'config:roll').length === 2;
    }, 20_000);
    const rolled = (await history()).filter((e) => e.action === 'config:roll' && e.outcome === 'done');
    expect(rolled.map((e) => e.target)).toEqual([slave, master]);
    expect(rolled[0]!.reason).toMatch(/maxmemory 1073741824 -> 10mb on .*below the \d+ bytes in use: Redis evicts the difference at once\); then 127\.0\.0\.1:\d+$/);
    expect(rolled[1]!.reason).toMatch(/the last of its shard/);
  });

  it('stops before the master while a slave does not answer (recorded once), and goes on when it is back', async () => {
    const c = await makeCluster(world, 'halt');
    const admin = new AdminService(world.client, new Keys(c.prefix), pool);
    const file = join(world.dir, 'controller-halt.yaml');
    writeFileSync(file, 'configCheckMs: 300\n');
    world.controller('halt-1', c.prefix, ['--config', file]);
    const [master, slave] = [c.master, c.slaves[0]!];
    await replicating(redis, c.slaves, master.address);
    const roll = async () => (await admin.listHistory('halt', 500)).entries.filter((e) => e.action === 'config:roll');

    await slave.process.kill9();
    await admin.config.set('halt', { appendonly: 'yes' });
    const wait = await waitFor('the roll to say it waits', async () => (await roll()).find((e) => e.outcome === 'refused'), 10_000);
    expect(wait.reason).toBe(`heavy settings of shard s0 wait: ${slave.address} does not answer`);
    await new Promise((r) => setTimeout(r, 1500)); // five more passes
    expect((await aofState(master.address)).enabled).toBe(false);
    expect((await roll()).filter((e) => e.outcome === 'refused')).toHaveLength(1);

    await world.redis([], slave.port); // back, empty: the leader makes it a slave again, then the roll goes on
    await waitFor('both with the AOF on', async () => (await aofState(master.address)).enabled && (await aofState(slave.address)).enabled, 20_000);
    await waitFor('both steps recorded', async () => (await roll()).filter((e) => e.outcome === 'done').length === 2, 10_000);
    expect((await roll()).filter((e) => e.outcome === 'done').map((e) => e.target)).toEqual([slave.address, master.address]);
  });
});
