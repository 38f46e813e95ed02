import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConflictError, RedisError, RefusedError, ValidationError } from '../../src/model/errors.js';
import { freePort, waitFor } from '../../src/playground/processes.js';
import { RedisPool } from '../../src/redis/pool.js';
import { AdminService, type ClusterStatus } from '../../src/service/admin-service.js';
import { Keys } from '../../src/store/keys.js';
import { makeCluster, replicating, type TestCluster } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const pool = new RedisPool({ timeoutMs: 2000 });
afterAll(() => pool.close());

/** The admin side with a Redis connection, as cfgctl and the HTTP API have it. */
function adminOf(prefix: string): AdminService {
  return new AdminService(world.client, new Keys(prefix), pool);
}

async function configValue(address: string, key: string): Promise<string | undefined> {
  const reply = (await redis.at(address).call('CONFIG', 'GET', key)) as string[];
  return reply[1];
}

/** A one-slave cluster under a leader that compares config every 300 ms. */
async function managedCluster(name: string, extraArgs: string[] = []): Promise<TestCluster & { config: AdminService['config'] }> {
  const c = await makeCluster(world, name);
  const file = join(world.dir, `controller-${name}.yaml`);
  writeFileSync(file, 'configCheckMs: 300\n');
  world.controller(`${name}-1`, c.prefix, ['--config', file, ...extraArgs]);
  await replicating(redis, c.slaves, c.master.address);
  return { ...c, config: adminOf(c.prefix).config };
}

async function configHistory(c: TestCluster, name: string) {
  return (await c.admin.listHistory(name, 200)).entries.filter((e) => e.action === 'config');
}

describe('desired Redis configuration', () => {
  it('is applied to every instance, per role, repaired after a hand change, and only reported while paused', async () => {
    const c = await managedCluster('cfg');
    const [master, slave] = [c.master.address, c.slaves[0]!.address];
    await c.config.set('cfg', { 'maxmemory-policy': 'allkeys-lru', maxmemory: '100mb' });
    await c.config.set('cfg', { 'maxmemory-policy': 'volatile-ttl' }, { role: 'slave' });

    await waitFor('the config on every instance', async () =>
      (await configValue(master, 'maxmemory-policy')) === 'allkeys-lru' &&
      (await configValue(slave, 'maxmemory-policy')) === 'volatile-ttl' &&
      (await configValue(master, 'maxmemory')) === String(100 * 1024 * 1024) &&
      (await configValue(slave, 'maxmemory')) === String(100 * 1024 * 1024), 10_000);
    const applied = await configHistory(c, 'cfg');
    expect(applied.some((e) => e.target === master && e.outcome === 'done' && e.reason.includes('desired changed: maxmemory-policy'))).toBe(true);
    expect(applied.some((e) => e.target === slave && e.outcome === 'done' && e.reason.includes('volatile-ttl'))).toBe(true);
    expect((await c.config.diff('cfg')).map((i) => i.state)).toEqual(['ok', 'ok']);

    // Somebody changes it by hand: found and repaired, recorded as drift.
    await redis.at(master).call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await waitFor('the hand change to be repaired', async () => (await configValue(master, 'maxmemory-policy')) === 'allkeys-lru', 10_000);
    expect((await configHistory(c, 'cfg')).some((e) => e.target === master && e.reason.startsWith('drift: maxmemory-policy was noeviction'))).toBe(true);

    // Paused: the difference is reported once, not repaired.
    await c.admin.setPaused('cfg', true);
    await new Promise((r) => setTimeout(r, 1000)); // a leader cycle that had read the cluster before the pause ends
    await redis.at(slave).call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-random');
    const report = await waitFor('the drift to be reported', async () => (await configHistory(c, 'cfg')).find((e) => e.target === slave && e.outcome === 'refused'), 10_000);
    expect(report.reason).toMatch(/cluster paused, not repaired: drift: maxmemory-policy was allkeys-random/);
    await new Promise((r) => setTimeout(r, 1500)); // five passes
    expect(await configValue(slave, 'maxmemory-policy')).toBe('allkeys-random');
    expect((await configHistory(c, 'cfg')).filter((e) => e.outcome === 'refused')).toHaveLength(1);
    const diff = await c.config.diff('cfg');
    expect(diff.find((i) => i.instance === slave)?.keys).toContainEqual({ key: 'maxmemory-policy', desired: 'volatile-ttl', actual: 'allkeys-random', state: 'drift' });
    // cluster show marks it too, paused as it is: the slave drifted (which key), the master in sync.
    const show = await cfgctl(world.etcd.endpoint, c.prefix, ['cluster', 'show', 'cfg', '--json']);
    const marks = Object.fromEntries((JSON.parse(show.stdout) as ClusterStatus).shards[0]!.instances.map((i) => [i.address, i.config]));
    expect(marks[slave]).toEqual({ state: 'drifted', drifted: [{ key: 'maxmemory-policy', desired: 'volatile-ttl', actual: 'allkeys-random' }], error: null });
    expect(marks[master]?.state).toBe('in-sync');
    const text = (await cfgctl(world.etcd.endpoint, c.prefix, ['cluster', 'show', 'cfg'])).stdout;
    expect(text).toMatch(new RegExp(`${slave.replace(/\./g, '\\.')}.*drift: maxmemory-policy`));
    expect(text).toContain(`config drift on ${slave}: maxmemory-policy is allkeys-random, desired volatile-ttl`);

    await c.admin.setPaused('cfg', false);
    await waitFor('the drift to be repaired after the pause', async () => (await configValue(slave, 'maxmemory-policy')) === 'volatile-ttl', 10_000);
  });

  it('refuses managed keys, unknown keys, bad values and an unreachable cluster, changing nothing', async () => {
    const c = await makeCluster(world, 'strict', { slaves: 0 });
    const config = adminOf(c.prefix).config;
    await config.set('strict', { hz: '15' });
    const before = await config.get('strict');
    // No controller runs here, so the master keeps its hz: cluster show marks it drifted; --no-live reads nothing.
    const shown = await adminOf(c.prefix).describeCluster('strict');
    expect(shown.spec.paused).toBe(false);
    expect(shown.shards[0]!.instances[0]!.config).toEqual({ state: 'drifted', drifted: [{ key: 'hz', desired: '15', actual: '10' }], error: null });
    expect((await adminOf(c.prefix).describeCluster('strict', { live: false })).shards[0]!.instances[0]!.config).toBeNull();

    await expect(config.set('strict', { replicaof: '127.0.0.1 6379' })).rejects.toThrow(RefusedError);
    await expect(config.set('strict', { dir: '/tmp' })).rejects.toThrow(/dir is managed by cfgserver: where the data lives/);
    await expect(config.set('strict', { 'no-such-param': '1' })).rejects.toThrow(/unknown parameter for Redis 7\.\d+\.\d+: no-such-param/);
    await expect(config.set('strict', { maxmemory: 'plenty' })).rejects.toThrow(ValidationError);
    await expect(config.set('strict', { hz: '5' }, { shard: 'nope' })).rejects.toThrow(/no shard nope/);
    await expect(config.replace('strict', { global: { hz: '5', requirepass: 'x' } })).rejects.toThrow(RefusedError);
    await expect(config.unset('strict', ['maxmemory'])).rejects.toThrow(/not set for every instance: maxmemory/);
    expect(await config.get('strict')).toEqual(before);
    await expect(adminOf(c.prefix).config.store.write('strict', before.config, '1')).rejects.toThrow(ConflictError);

    const gone = adminOf(c.prefix);
    await gone.createCluster({ name: 'gone', force: true, file: { shards: [{ master: `127.0.0.1:${await freePort()}` }] } });
    await expect(gone.config.set('gone', { hz: '15' })).rejects.toThrow(RedisError);
    expect((await gone.config.get('gone')).revision).toBe('0');
  });

  it('cfgctl config set, get, diff, unset and set -f', async () => {
    const c = await managedCluster('cli');
    const run = (...args: string[]) => cfgctl(world.etcd.endpoint, c.prefix, ['config', ...args]);

    const set = await run('set', 'cli', 'hz', '15', 'maxmemory-policy', 'allkeys-lfu');
    expect(set.code).toBe(0);
    expect(set.stdout).toContain('desired config of cli written');
    expect((await run('set', 'cli', 'hz', '20', '--role', 'slave')).code).toBe(0);
    const get = await run('get', 'cli', 'h*');
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(/global\s+hz\s+15/);
    expect(get.stdout).toMatch(/role slave\s+hz\s+20/);
    expect(get.stdout).not.toContain('maxmemory-policy');

    await waitFor('the config to be applied', async () => {
      const diff = JSON.parse((await run('diff', 'cli', '--json')).stdout) as { state: string }[];
      return diff.length === 2 && diff.every((i) => i.state === 'ok');
    }, 10_000);
    expect((await run('diff', 'cli')).stdout).toMatch(new RegExp(`${c.slaves[0]!.address.replace(/\./g, '\\.')}\\s+s0\\s+slave\\s+hz\\s+20\\s+20\\s+ok`));

    const managed = await run('set', 'cli', 'dir', '/tmp');
    expect(managed.code).toBe(5);
    expect(managed.stderr).toMatch(/dir is managed by cfgserver/);
    expect((await run('set', 'cli', 'no-such-param', '1')).code).toBe(2);
    expect((await run('set', 'cli', 'hz')).code).toBe(2);

    expect((await run('unset', 'cli', 'hz', '--role', 'slave')).code).toBe(0);
    const again = await run('unset', 'cli', 'hz', '--role', 'slave');
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/not set for role slave: hz/);

    const file = join(world.dir, 'cli-config.yaml');
    writeFileSync(file, 'global:\n  maxmemory: 64mb\nroles:\n  slave:\n    maxmemory-policy: noeviction\n');
    expect((await run('set', 'cli', '-f', file)).code).toBe(0);
    expect(JSON.parse((await run('get', 'cli', '--json')).stdout)).toEqual({ global: { maxmemory: '64mb' }, roles: { slave: { 'maxmemory-policy': 'noeviction' } }, shards: {} });
    await waitFor('the file config on the slave', async () => (await configValue(c.slaves[0]!.address, 'maxmemory-policy')) === 'noeviction', 10_000);
  });

  it('the HTTP API reads, replaces and diffs the desired config (a managed key: 422); a new instance and a restarted one get it', async () => {
    const port = await freePort();
    const c = await managedCluster('web', ['--listen', `127.0.0.1:${port}`]);
    const base = `http://127.0.0.1:${port}/v1/clusters/web/config`;
    await waitFor('the API', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok, 10_000);
    const put = (body: unknown) => fetch(base, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    const ok = await put({ global: { 'maxmemory-policy': 'allkeys-lfu' }, shards: { s0: { hz: '25' } } });
    expect(ok.status).toBe(200);
    const refused = await put({ global: { dir: '/tmp' } });
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/dir is managed by cfgserver/);
    const got = (await (await fetch(`${base}?pattern=h*`)).json()) as { config: unknown };
    expect(got.config).toEqual({ global: {}, roles: {}, shards: { s0: { hz: '25' } } });

    await waitFor('every instance in line', async () => {
      const diff = (await (await fetch(`${base}/diff`)).json()) as { state: string; keys: unknown[] }[];
      return diff.length === 2 && diff.every((i) => i.state === 'ok' && i.keys.length === 2);
    }, 10_000);
    expect(await configValue(c.slaves[0]!.address, 'hz')).toBe('25');
    const check = await fetch(`${base}/check?sampleMs=200`);
    expect(check.status).toBe(200);
    expect(((await check.json()) as { warnings: { code: string; instance: string }[] }).warnings).toContainEqual(expect.objectContaining({ code: 'no-persistence', instance: c.master.address }));
    expect((await fetch(`${base}/check?sampleMs=soon`)).status).toBe(400);

    // An instance added later gets the config by the same pass (the global part: it is not in s0).
    const late = await world.redis();
    await c.admin.addShard('web', { master: late.address });
    await waitFor('the new instance in line', async () => (await configValue(late.address, 'maxmemory-policy')) === 'allkeys-lfu', 10_000);
    expect(await configValue(late.address, 'hz')).not.toBe('25');

    // A slave that restarts (without a config file, so with Redis's defaults) gets it back.
    const slave = c.slaves[0]!;
    await slave.process.kill9();
    await world.redis([], slave.port);
    await waitFor('the restarted slave in line', async () => (await configValue(slave.address, 'hz').catch(() => null)) === '25', 15_000);
    const history = await configHistory(c, 'web');
    expect(history.some((e) => e.target === slave.address && e.reason.includes('drift: hz was 10'))).toBe(true);

    // A parameter Redis will not change at run time: tried every pass, recorded once per instance.
    await c.config.set('web', { databases: '32' });
    await waitFor('the failures recorded', async () => (await configHistory(c, 'web')).filter((e) => e.outcome === 'failed').length === 3, 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // five more passes
    const failed = (await configHistory(c, 'web')).filter((e) => e.outcome === 'failed');
    expect(failed.map((e) => e.target).sort()).toEqual([c.master.address, slave.address, late.address].sort());
    expect(failed[0]!.detail?.['error']).toMatch(/immutable/i);
  });

  it('config check warns with the reason (persistence, maxmemory, backlog for the measured write rate, disk loads) and exits 11; 0 once all is well', async () => {
    const c = await makeCluster(world, 'advice');
    const [master, slave] = [c.master.address, c.slaves[0]!.address];
    await redis.at(slave).call('REPLICAOF', '127.0.0.1', String(c.master.port)); // no controller here
    await replicating(redis, c.slaves, master);
    const run = (...args: string[]) => cfgctl(world.etcd.endpoint, c.prefix, ['config', 'check', 'advice', ...args]);
    await redis.at(master).call('CONFIG', 'SET', 'repl-backlog-size', '16kb');
    await redis.at(slave).call('CONFIG', 'SET', 'repl-diskless-load', 'disabled');

    // A writer of about 1 KB every few ms: far more than 16 KB over a minute.
    let writing = true;
    const writer = (async () => {
      const value = 'x'.repeat(1024);
      for (let n = 0; writing; n++) await redis.at(master).set(`w${n % 100}`, value);
    })();
    const warned = await run('--json', '--sample-ms', '500').finally(() => (writing = false));
    await writer;
    expect(warned.code).toBe(12);
    const report = JSON.parse(warned.stdout) as { warnings: { code: string; instance: string; message: string }[]; rates: { bytesPerSecond: number }[]; backlogs: { instance: string; seconds: number }[] };
    expect(report.warnings.map((w) => `${w.instance} ${w.code}`).sort()).toEqual(
      // The slave's default 1 MB backlog is too small for this writer as well (it serves the other slaves once promoted).
      [`${master} no-persistence`, `${master} maxmemory-unset`, `${slave} maxmemory-unset`, `${master} backlog-small`, `${slave} backlog-small`, `${slave} disk-load-without-persistence`].sort(),
    );
    expect(report.rates[0]!.bytesPerSecond).toBeGreaterThan(0);
    expect(report.backlogs.find((b) => b.instance === master)!.seconds).toBeLessThan(60);
    expect(report.warnings.find((w) => w.code === 'backlog-small')!.message).toMatch(/repl-backlog-size 16384 bytes \(16\.0 KiB\): at the \d+ bytes\/s .* it covers [\d.]+ s of disconnection/);
    const text = await run('--sample-ms', '200');
    expect(text.stdout).toMatch(/\[no-persistence\] .*restart brings it back empty/);

    // All well: persistence on the master, memory bounded with eviction, a large backlog, no disk loads.
    await redis.at(master).call('CONFIG', 'SET', 'appendonly', 'yes', 'repl-backlog-size', '64mb');
    await redis.at(slave).call('CONFIG', 'SET', 'repl-diskless-load', 'swapdb', 'repl-backlog-size', '64mb');
    for (const i of [master, slave]) await redis.at(i).call('CONFIG', 'SET', 'maxmemory', '100mb', 'maxmemory-policy', 'allkeys-lru');
    const clean = await run('--sample-ms', '200');
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain('no warnings');
    expect((await run('--sample-ms', '5')).code).toBe(2);
  });
});
