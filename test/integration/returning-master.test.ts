import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManagedProcess, portOrFree, waitFor, type RedisServer } from '../../src/playground/processes.js';
import type { AdminService } from '../../src/service/admin-service.js';
import { FAST_PROBE, makeCluster, replicating } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();

async function newMaster(admin: AdminService, cluster: string, old: string): Promise<string> {
  return waitFor('a new master in the route', async () => {
    const m = (await admin.route(cluster)).shards[0]!.master;
    return m !== old ? m : null;
  }, 20_000);
}

async function refusalsOf(admin: AdminService, cluster: string, target: string) {
  return (await admin.listHistory(cluster)).entries.filter((e) => e.action === 'replicaof' && e.outcome === 'refused' && e.target === target);
}

describe('an old master that comes back', () => {
  it('with writes the new master never got (SIGSTOP, failover, writes after SIGCONT): not wiped, refused in history and cluster show', async () => {
    // Without the write fence: with it, the old master would rightly refuse the late write
    // (write-fence.test.ts), and this test needs one that took it, as a master without the fence
    // (or one answering in its first event-loop turns after a stall) does.
    const { prefix, admin, master, slaves } = await makeCluster(world, 'stopped', { slaves: 1, failover: { writeFence: false } });
    const slave = slaves[0]!;
    world.controller('a1', prefix);
    await replicating(redis, slaves, master.address);
    for (let i = 0; i < 20; i++) await redis.at(master.address).set(`key:${i}`, String(i));
    await waitFor('the writes to reach the slave', async () => (await redis.at(slave.address).get('key:19')) === '19');

    master.process.signal('SIGSTOP');
    const promoted = await newMaster(admin, 'stopped', master.address);
    expect(promoted).toBe(slave.address);
    // Held still while the old master takes a write on its own: otherwise the leader could make it
    // a slave in the moment between SIGCONT and the write, before it holds anything to lose.
    await admin.setPaused('stopped', true);
    await new Promise((r) => setTimeout(r, 500));
    master.process.signal('SIGCONT');
    await redis.at(master.address).set('late', 'written to the old master after the failover');
    const newInfo = await redis.replication(promoted);
    const oldInfo = await redis.replication(master.address);
    expect(oldInfo.replId).toBe(newInfo.replId2);
    expect(oldInfo.offset).toBeGreaterThanOrEqual(newInfo.secondReplOffset!);
    await admin.setPaused('stopped', false);

    const [refusal] = await waitFor('the refusal in history', async () => {
      const found = await refusalsOf(admin, 'stopped', master.address);
      return found.length ? found : null;
    }, 15_000);
    expect(refusal!.reason).toMatch(/bytes of writes after the branch that .* never received: making it a slave would discard data it holds; not done/);
    expect(refusal!.reason).toContain(`redis-cli -h 127.0.0.1 -p ${master.port} replicaof 127.0.0.1 ${slave.port}`);
    expect(refusal!.detail).toMatchObject({ refusal: 'branched', summary: 'holds writes the master lacks' });

    const status = await waitFor('cluster show to mark it', async () => {
      const s = await admin.describeCluster('stopped');
      return s.shards[0]!.instances.find((i) => i.address === master.address)?.refused ? s : null;
    });
    expect(status.shards[0]!.instances.find((i) => i.address === master.address)!.refused!.summary).toBe('holds writes the master lacks');
    const shown = await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'show', 'stopped']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('refused: holds writes the master lacks');
    expect(shown.stdout).toContain(`redis-cli -h 127.0.0.1 -p ${master.port} replicaof`);

    // Several cycles later it still is a master with its write, recorded once.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await redis.replication(master.address)).role).toBe('master');
    expect(await redis.at(master.address).get('late')).toBe('written to the old master after the failover');
    expect(await refusalsOf(admin, 'stopped', master.address)).toHaveLength(1);

    // The documented way to discard its data on purpose; the mark goes away.
    await redis.at(master.address).call('REPLICAOF', '127.0.0.1', String(slave.port));
    await replicating(redis, [master], promoted);
    expect(await redis.at(master.address).get('late')).toBeNull();
    await waitFor('the mark to go', async () => {
      const s = await admin.describeCluster('stopped');
      return s.shards[0]!.instances.find((i) => i.address === master.address)?.refused === null;
    });
  });

  it('restarted empty: made a slave of the new master, nothing refused', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'empty', { slaves: 1 });
    world.controller('b1', prefix);
    await replicating(redis, slaves, master.address);
    for (let i = 0; i < 10; i++) await redis.at(master.address).set(`key:${i}`, String(i));
    await waitFor('the writes to reach the slave', async () => (await redis.at(slaves[0]!.address).get('key:9')) === '9');
    await master.process.kill9();
    const promoted = await newMaster(admin, 'empty', master.address);

    const back = await world.redis([], master.port);
    await replicating(redis, [back], promoted);
    expect(await redis.at(back.address).get('key:9')).toBe('9');
    expect(await refusalsOf(admin, 'empty', master.address)).toEqual([]);
    const made = (await admin.listHistory('empty')).entries.find((e) => e.action === 'replicaof' && e.target === master.address && e.outcome === 'done');
    expect(made?.reason).toMatch(/holds no key/);
  });

  it('restarted from its AOF (new replication id, offset 0, keys in it): refused, not wiped', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'aof', { slaves: 1 });
    const aof = ['--appendonly', 'yes', '--appendfsync', 'always'];
    // The harness starts masters without persistence: restart this one with an AOF first.
    await master.process.stop();
    const persistent = await world.redis(aof, master.port);
    world.controller('c1', prefix);
    await replicating(redis, slaves, persistent.address);
    for (let i = 0; i < 10; i++) await redis.at(persistent.address).set(`key:${i}`, String(i));
    await waitFor('the writes to reach the slave', async () => (await redis.at(slaves[0]!.address).get('key:9')) === '9');
    await persistent.process.kill9();
    await newMaster(admin, 'aof', master.address);

    const back = await world.redis(aof, master.port);
    expect(await redis.at(back.address).dbsize()).toBe(10);
    const [refusal] = await waitFor('the refusal in history', async () => {
      const found = await refusalsOf(admin, 'aof', master.address);
      return found.length ? found : null;
    }, 15_000);
    expect(refusal!.reason).toMatch(/holding 10 keys on a replication history unrelated/);
    expect(refusal!.detail).toMatchObject({ refusal: 'unrelated' });
    expect((await redis.replication(back.address)).role).toBe('master');
  });
});

describe('CONFIG REWRITE after role changes', () => {
  const started: ManagedProcess[] = [];
  afterAll(async () => {
    for (const p of started) await p.kill9();
  });

  /** A redis-server that reads (and may rewrite) its own config file. */
  async function fromConfigFile(port: number): Promise<{ server: RedisServer; conf: string }> {
    const dir = join(world.dir, `conf-${port}`);
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, 'redis.conf');
    writeFileSync(conf, [`bind 127.0.0.1`, `port ${port}`, `dir ${dir}`, `save ""`, `appendonly no`, `repl-diskless-sync-delay 0`, ''].join('\n'));
    return { server: await startFromConfig(conf, port), conf };
  }

  async function startFromConfig(conf: string, port: number): Promise<RedisServer> {
    const proc = new ManagedProcess('redis', 'redis-server', [conf], `${conf}.log`);
    started.push(proc);
    const address = `127.0.0.1:${port}`;
    await waitFor(`redis-server on ${port}`, async () => {
      if (!proc.running()) throw new Error(`redis-server exited; see ${proc.logFile}`);
      return (await redis.at(address).ping().catch(() => null)) === 'PONG';
    });
    return { address, port, process: proc, stop: () => proc.stop() };
  }

  it('a promoted slave restarted from its config file is still a master', async () => {
    const prefix = randomPrefix();
    const admin = world.admin(prefix);
    const master = await fromConfigFile(await portOrFree(undefined));
    const slave = await fromConfigFile(await portOrFree(undefined));
    await admin.createCluster({ name: 'conf', file: { probe: FAST_PROBE, shards: [{ master: master.server.address, slaves: [slave.server.address] }] } });
    world.controller('d1', prefix);
    await replicating(redis, [slave.server], master.server.address);
    // The controller's REPLICAOF went to the file too.
    await waitFor('replicaof in the slave config file', async () => new RegExp(`^replicaof 127\\.0\\.0\\.1 ${master.server.port}$`, 'm').test(readFileSync(slave.conf, 'utf8')));

    await master.server.process.kill9();
    await newMaster(admin, 'conf', master.server.address);
    expect(readFileSync(slave.conf, 'utf8')).not.toMatch(/^replicaof/m);

    // Paused so that the controller cannot repair the role after the restart: the file alone must.
    await admin.setPaused('conf', true);
    await new Promise((r) => setTimeout(r, 500));
    await slave.server.process.kill9();
    const again = await startFromConfig(slave.conf, slave.server.port);
    expect((await redis.replication(again.address)).role).toBe('master');
  });
});
