/**
 * twemproxy fronts (docs/twemproxy.md): the rendered nutcracker file, checked by a real
 * nutcracker; a cluster behind nutcracker through a kill -9 of a master, with the agent restarting
 * nutcracker on the new master and registering its epoch; slot migration refused for it.
 */
import { Redis } from 'ioredis';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { ValidationError } from '../../src/model/errors.js';
import { newRoute } from '../../src/model/route.js';
import type { Route } from '../../src/model/schemas.js';
import { ManagedProcess, freePort, waitFor } from '../../src/playground/processes.js';
import { TwemproxyAgent, type AppliedChange } from '../../src/twemproxy/agent.js';
import { NUTCRACKER_IOREDIS_OPTIONS, nutcrackerArgv } from '../../src/twemproxy/nutcracker.js';
import { parseTemplate, poolChanges, poolMembers, renderNutcracker, templateWarnings } from '../../src/twemproxy/render.js';
import { makeCluster, streaming } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, useWorld } from '../helpers/servers.js';

const TEMPLATE = `alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  hash_tag: "{}"
  timeout: 400
  server_retry_timeout: 200
  server_failure_limit: 1
  servers:
   - 10.0.0.1:6379:1 old
beta:
  listen: 127.0.0.1:22122
  servers:
   - 10.0.0.9:6379:1
`;

function route(): Route {
  const r = newRoute('demo', 12, [
    { id: 's0', master: '127.0.0.1:7000', slaves: ['127.0.0.1:7100'], slots: [[0, 5]] },
    { id: 's1', master: '127.0.0.1:7001', slaves: [], slots: [[6, 11]] },
    { id: 's2', master: '127.0.0.1:7002', slaves: [], slots: [] },
  ], 5);
  return r;
}

describe('renderNutcracker', () => {
  const template = parseTemplate(TEMPLATE, 'template');

  it('replaces the pool\'s servers by each slot-owning shard\'s master, named by shard id, and keeps everything else', () => {
    const text = renderNutcracker(template, route(), { pool: 'alpha', listen: null });
    expect(text).toBe(`alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  hash_tag: "{}"
  timeout: 400
  server_retry_timeout: 200
  server_failure_limit: 1
  redis: true
  distribution: ketama
  servers:
   - 127.0.0.1:7000:1 s0
   - 127.0.0.1:7001:1 s1
beta:
  listen: 127.0.0.1:22122
  servers:
   - 10.0.0.9:6379:1
`);
  });

  it('writes a file the real nutcracker accepts', () => {
    const dir = join(world.dir, 'render');
    execFileSync('mkdir', ['-p', dir]);
    const file = join(dir, 'nutcracker.yml');
    writeFileSync(file, renderNutcracker(template, route(), { pool: 'alpha', listen: '127.0.0.1:23000' }));
    const out = execFileSync('nutcracker', ['-t', '-c', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out + readFileSync(file, 'utf8')).toContain('listen: 127.0.0.1:23000');
  });

  it('a new master of a shard changes only its address, under the same name', () => {
    const before = renderNutcracker(template, route(), { pool: 'alpha', listen: null });
    const moved = route();
    moved.shards[0] = { ...moved.shards[0]!, master: '127.0.0.1:7100', slaves: ['127.0.0.1:7000'] };
    const after = renderNutcracker(template, moved, { pool: 'alpha', listen: null });
    expect(after).toBe(before.replace('127.0.0.1:7000:1 s0', '127.0.0.1:7100:1 s0'));
  });

  it('says what changed between two pools, for the log and history', () => {
    const before = poolMembers(route());
    expect(before).toEqual([{ name: 's0', address: '127.0.0.1:7000' }, { name: 's1', address: '127.0.0.1:7001' }]);
    expect(poolChanges(before, before)).toBe('pool unchanged');
    expect(poolChanges(before, [{ name: 's0', address: '127.0.0.1:7100' }, { name: 's2', address: '127.0.0.1:7002' }])).toBe('s0 127.0.0.1:7000 -> 127.0.0.1:7100, s2 127.0.0.1:7002 added, s1 removed');
  });

  it('without a template: one pool named after the cluster, with --listen', () => {
    expect(renderNutcracker({ pools: [] }, route(), { pool: null, listen: '127.0.0.1:1' })).toContain('demo:\n  listen: 127.0.0.1:1\n  redis: true\n  distribution: ketama\n');
  });

  it('refuses settings that would put keys on another shard, a missing listen, an ambiguous pool', () => {
    const eject = parseTemplate('p:\n  listen: 127.0.0.1:1\n  auto_eject_hosts: true\n', 't');
    expect(() => renderNutcracker(eject, route(), { pool: null, listen: null })).toThrow(/auto_eject_hosts/);
    const modula = parseTemplate('p:\n  listen: 127.0.0.1:1\n  distribution: modula\n', 't');
    expect(() => renderNutcracker(modula, route(), { pool: null, listen: null })).toThrow(/ketama/);
    expect(() => renderNutcracker({ pools: [] }, route(), { pool: null, listen: null })).toThrow(/no listen/);
    expect(() => renderNutcracker(template, route(), { pool: null, listen: null })).toThrow(/--pool/);
    expect(() => parseTemplate('p: [1, 2]\n', 't')).toThrow(ValidationError);
    expect(() => parseTemplate('p:\n  listen: {a: 1}\n', 't')).toThrow(/not a plain value/);
    expect(() => parseTemplate('p: [\n', 't')).toThrow(/not valid YAML/);
  });

  it('warns about nutcracker\'s default hash, which spreads keys unevenly on a ketama ring', () => {
    expect(templateWarnings(parseTemplate('p:\n  listen: 127.0.0.1:1\n', 't'), 'p')).toEqual([expect.stringMatching(/fnv1a_64/)]);
    expect(templateWarnings(parseTemplate('p:\n  listen: 127.0.0.1:1\n  hash: murmur\n', 't'), 'p')).toEqual([]);
  });

  it('runs nutcracker with the agent\'s config and pid files, and refuses a command that sets them or daemonizes', () => {
    expect(nutcrackerArgv('nutcracker -a 127.0.0.1  -v 3', '/etc/n.yml')).toEqual({ argv: ['nutcracker', '-a', '127.0.0.1', '-v', '3', '-c', '/etc/n.yml'], pidFile: '/etc/n.yml.pid' });
    for (const bad of ['nutcracker -c x.yml', 'nutcracker -d', 'nutcracker --pid-file=/x', '  ']) expect(() => nutcrackerArgv(bad, '/etc/n.yml'), bad).toThrow(ValidationError);
  });
});

const world = useWorld();
const redis = useRedisClients();
const agents: TwemproxyAgent[] = [];
const clients: Redis[] = [];
const managed: { manager: ManagedProcess; pidFile: string }[] = [];
afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  for (const a of agents) await a.stop();
  for (const { manager, pidFile } of managed) {
    await manager.kill9();
    // Never throws: a failing hook here would keep the world's own cleanup from running.
    try {
      process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
    } catch {
      // no pid file, or already gone
    }
  }
});

/** The operator's nutcracker file for `cluster`, in a folder of its own; returns its path. */
async function operatorFile(cluster: string): Promise<string> {
  const dir = join(world.dir, `nutcracker-${cluster}`);
  execFileSync('mkdir', ['-p', dir]);
  const configFile = join(dir, 'nutcracker.yml');
  // Pool settings to keep (murmur: nutcracker's default fnv1a_64 puts nearly every tw:N key on one
  // shard; a short retry, so that nutcracker tries a server again soon), one server the agent replaces.
  writeFileSync(configFile, `${cluster}:\n  listen: 127.0.0.1:${await freePort()}\n  hash: murmur\n  timeout: 1000\n  server_retry_timeout: 100\n  server_failure_limit: 1\n  servers:\n   - 127.0.0.1:1:1 placeholder\n`);
  return configFile;
}

async function startAgent(prefix: string, cluster: string, nutcracker?: { kind: 'pid-file'; pidFile: string; binary: string }, existing?: string): Promise<TwemproxyAgent> {
  const configFile = nutcracker || existing ? join(world.dir, `nutcracker-${cluster}`, 'nutcracker.yml') : await operatorFile(cluster);
  const dir = join(world.dir, `nutcracker-${cluster}`);
  const stats = await freePort();
  const agent = new TwemproxyAgent({
    cluster,
    etcd: world.etcd.endpoint,
    prefix,
    id: `agent-${cluster}`,
    configFile,
    pool: null,
    listen: null,
    nutcracker: nutcracker ?? { kind: 'child', command: `nutcracker -a 127.0.0.1 -s ${stats} -v 3 -o ${join(dir, 'nutcracker.log')}` },
    leaseTtlSeconds: 2,
    log: silentLogger(),
  });
  agents.push(agent);
  await agent.start();
  return agent;
}

function clientOf(agent: TwemproxyAgent): Redis {
  const [host, port] = agent.listenAddress.split(':');
  const c = new Redis({ host, port: Number(port), maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 5, ...NUTCRACKER_IOREDIS_OPTIONS });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

describe('a cluster behind twemproxy', () => {
  it('kill -9 of a master behind nutcracker: the agent restarts nutcracker on the new master, registers the epoch, and every key stays on its shard', async () => {
    const { prefix, admin, shards } = await makeCluster(world, 'tw', { shards: 2, slaves: 1 });
    const set = await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'set', 'tw', '--proxy', 'twemproxy']);
    expect(set.code, set.stderr).toBe(0);
    world.controller('t1', prefix);
    world.controller('t2', prefix);
    for (const s of shards) await streaming(redis, s.slaves, s.master.address);
    const agent = await startAgent(prefix, 'tw');
    const changes: AppliedChange[] = [];
    agent.onApplied((c) => changes.push(c));
    const before = await admin.route('tw');
    await waitFor('the agent registered', async () => (await admin.listProxies('tw')).proxies.find((p) => p.id === 'agent-tw' && p.epoch === before.epoch && p.kind === 'twemproxy'));
    const proxies = await cfgctl(world.etcd.endpoint, prefix, ['proxies', 'tw']);
    expect(proxies.stdout).toMatch(/agent-tw\s+twemproxy/);

    const client = clientOf(agent);
    await waitFor('nutcracker answers', async () => (await client.ping().catch(() => null)) === 'PONG');
    const keys = Array.from({ length: 200 }, (_, i) => `tw:${i}`);
    for (const k of keys) await client.set(k, k);
    // nutcracker spread the keys over both masters (by its hash, not by slot).
    const onS0 = (await redis.at(shards[0]!.master.address).keys('tw:*')).sort();
    const onS1 = (await redis.at(shards[1]!.master.address).keys('tw:*')).sort();
    expect(onS0.length).toBeGreaterThan(20);
    expect(onS1.length).toBeGreaterThan(20);
    expect(onS0.length + onS1.length).toBe(keys.length);
    await redis.at(shards[0]!.master.address).call('WAIT', '1', '2000');

    // A writer through nutcracker, then kill -9 of s0's master.
    const log: { at: number; ok: boolean }[] = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          await client.set(onS0[i % onS0.length]!, `w${i}`);
          log.push({ at: Date.now(), ok: true });
        } catch {
          log.push({ at: Date.now(), ok: false });
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    })();
    await waitFor('writes before the kill', async () => log.length > 50);
    await shards[0]!.master.process.kill9();
    const killedAt = Date.now();
    const newMaster = shards[0]!.slaves[0]!.address;
    const after = await waitFor('the failover', async () => {
      const r = await admin.route('tw');
      return r.shards[0]!.master === newMaster ? r : null;
    }, 20_000);
    await waitFor('the agent registered the new epoch', async () => (await admin.listProxies('tw')).proxies.find((p) => p.id === 'agent-tw' && p.epoch === after.epoch));
    await waitFor('writes through nutcracker land on the new master', async () => log.some((w) => w.ok && w.at > killedAt && w.at > Date.now() - 200) && (await redis.at(newMaster).get(onS0[0]!)) !== null);
    const resumedAt = Date.now();
    await waitFor('more writes', async () => log.filter((w) => w.at > resumedAt && w.ok).length > 50);
    stop = true;
    await writer;

    expect(agent.epoch).toBe(after.epoch);
    expect(changes.some((c) => c.epoch === after.epoch && c.restarted && c.restartMs !== null)).toBe(true);
    expect(readFileSync(join(world.dir, 'nutcracker-tw', 'nutcracker.yml'), 'utf8')).toContain(`${newMaster}:1 s0`);
    // The same names on the ring: every key is still read through nutcracker from its own shard.
    for (const k of onS1) expect(await client.get(k)).toBe(k);
    for (const k of onS0) expect(await client.get(k)).not.toBeNull();
    expect((await redis.at(newMaster).keys('tw:*')).sort()).toEqual(onS0);
    const history = (await admin.listHistory('tw')).entries;
    expect(history.some((e) => e.action === 'twemproxy:restart' && e.reason.includes(`s0 ${shards[0]!.master.address} -> ${newMaster}`))).toBe(true);

    // A new epoch that changes no master (a shard added: it owns no slot, so it is not in the
    // pool) is registered with no restart.
    const extra = await world.redis();
    const added = await cfgctl(world.etcd.endpoint, prefix, ['shard', 'add', 'tw', '--master', extra.address]);
    expect(added.code, added.stderr).toBe(0);
    const grown = await admin.route('tw');
    await waitFor('the agent registered the epoch of the added shard', async () => (await admin.listProxies('tw')).proxies.find((p) => p.id === 'agent-tw' && p.epoch === grown.epoch));
    expect(changes.find((c) => c.epoch === grown.epoch)?.restarted).toBe(false);
    expect(readFileSync(join(world.dir, 'nutcracker-tw', 'nutcracker.yml'), 'utf8')).not.toContain(extra.address);
  });

  it('nutcracker run by a service manager (--nutcracker-pid-file): a switchover restarts it through the manager, and writes go on', async () => {
    const { prefix, admin, shards } = await makeCluster(world, 'twp', { shards: 2, slaves: 1 });
    expect((await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'set', 'twp', '--proxy', 'twemproxy'])).code).toBe(0);
    world.controller('p1', prefix);
    for (const s of shards) await streaming(redis, s.slaves, s.master.address);
    // The "service manager": a loop that starts nutcracker again whenever it exits, with its pid in
    // a file (as systemd's PIDFile= with nutcracker -d -p).
    const configFile = await operatorFile('twp');
    const pidFile = join(world.dir, 'nutcracker-twp', 'managed.pid');
    const manager = new ManagedProcess('manager', 'bash', ['-c', `while :; do nutcracker -c ${configFile} -a 127.0.0.1 -s ${await freePort()} -v 3 -o ${join(world.dir, 'nutcracker-twp', 'managed.log')} & echo $! > ${pidFile}; wait $!; sleep 0.01; done`], join(world.dir, 'nutcracker-twp', 'manager.log'));
    managed.push({ manager, pidFile });
    const agent = await startAgent(prefix, 'twp', { kind: 'pid-file', pidFile, binary: 'nutcracker' });
    const client = clientOf(agent);
    await waitFor('nutcracker answers', async () => (await client.set('twp:a', '1').catch(() => null)) === 'OK');
    const before = await admin.route('twp');
    const switched = await cfgctl(world.etcd.endpoint, prefix, ['failover', 'twp', '--shard', 's0']);
    expect(switched.code, switched.stderr).toBe(0);
    const after = await admin.route('twp');
    expect(after.shards[0]!.master).toBe(shards[0]!.slaves[0]!.address);
    // The switchover's barrier waited for the agent: it had registered the new epoch.
    expect((await admin.listProxies('twp')).proxies.find((p) => p.id === 'agent-twp')?.epoch).toBe(after.epoch);
    expect(after.epoch).toBeGreaterThan(before.epoch);
    await waitFor('writes through the restarted nutcracker', async () => {
      for (let i = 0; i < 50; i++) if ((await client.set(`twp:${i}`, 'x').catch(() => null)) !== 'OK') return false;
      return true;
    });
    const onNew = await redis.at(after.shards[0]!.master).keys('twp:*');
    const onS1 = await redis.at(after.shards[1]!.master).keys('twp:*');
    expect(onNew.length).toBeGreaterThan(0);
    expect(onNew.length + onS1.length).toBe(51);
  });

  it('an agent starting where a killed agent left its nutcracker running stops that one and serves the route', async () => {
    const { prefix, shards } = await makeCluster(world, 'two', { shards: 1, slaves: 0 });
    expect((await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'set', 'two', '--proxy', 'twemproxy'])).code).toBe(0);
    const configFile = await operatorFile('two');
    // What kill -9 of an agent leaves: its nutcracker, on the port, named in the agent's pid file.
    const orphan = new ManagedProcess('orphan', 'nutcracker', ['-c', configFile, '-a', '127.0.0.1', '-s', String(await freePort()), '-v', '3', '-o', join(world.dir, 'nutcracker-two', 'orphan.log')], join(world.dir, 'nutcracker-two', 'orphan.out'));
    writeFileSync(`${configFile}.pid`, `${orphan.pid}\n`);
    const listen = /listen: (\S+)/.exec(readFileSync(configFile, 'utf8'))![1]!;
    await waitFor('the orphan listens', async () => new Promise<boolean>((resolve) => {
      const socket = connect(Number(listen.split(':')[1]), '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    }));
    const agent = await startAgent(prefix, 'two', undefined, configFile);
    await orphan.waitExit();
    expect(agent.nutcrackerPid()).not.toBe(orphan.pid);
    const client = clientOf(agent);
    await waitFor('writes through the new nutcracker', async () => (await client.set('two:a', '1').catch(() => null)) === 'OK');
    expect(await redis.at(shards[0]!.master.address).get('two:a')).toBe('1');
  });

  it("a cluster with a Redis password: nutcracker gets it as redis_auth, and a rotation restarts it on the new one before the old is removed", async () => {
    const [oldPassword, newPassword] = ['tw-old-password-1', 'tw-new-password-2'];
    const master = await world.redis(['--requirepass', oldPassword]);
    const prefix = '/test-twauth';
    const admin = world.admin(prefix);
    await admin.createCluster({ name: 'twa', file: { proxy: 'twemproxy', shards: [{ master: master.address }] } });
    const secret = (name: string, value: string) => {
      const file = join(world.dir, `${name}.secret`);
      writeFileSync(file, `${value}\n`);
      return file;
    };
    const set = await cfgctl(world.etcd.endpoint, prefix, ['auth', 'set', 'twa', '--password-file', secret('twa-old', oldPassword)]);
    expect(set.code, set.stderr).toBe(0);
    const agent = await startAgent(prefix, 'twa');
    const configFile = join(world.dir, 'nutcracker-twa', 'nutcracker.yml');
    expect(readFileSync(configFile, 'utf8')).toMatch(/redis_auth: tw-old-password-1/);
    expect(statSync(configFile).mode & 0o777, 'a file with the password is its owner\'s only').toBe(0o600);
    const through = (password: string) => {
      const [host, port] = agent.listenAddress.split(':');
      const c = new Redis({ host, port: Number(port), password, maxRetriesPerRequest: 0, retryStrategy: () => null, ...NUTCRACKER_IOREDIS_OPTIONS });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    };
    await waitFor('a write through nutcracker with the password', async () => (await through(oldPassword).set('tw:auth', '1').catch(() => null)) === 'OK');
    await waitFor('the agent registered its credentials version', async () => (await admin.listProxies('twa')).proxies.find((p) => p.id === 'agent-twa')?.authVersion === 1);

    // The rotation waits for every proxy, the agent included, to use the new password.
    const rotated = await cfgctl(world.etcd.endpoint, prefix, ['auth', 'rotate', 'twa', '--password-file', secret('twa-new', newPassword)]);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(readFileSync(configFile, 'utf8')).toMatch(/redis_auth: tw-new-password-2/);
    expect((await admin.listProxies('twa')).proxies.find((p) => p.id === 'agent-twa')?.authVersion).toBeGreaterThan(1);
    await waitFor('a write through nutcracker with the new password', async () => (await through(newPassword).set('tw:auth', '2').catch(() => null)) === 'OK');
    const direct = new Redis({ host: '127.0.0.1', port: Number(master.address.split(':')[1]), password: newPassword, maxRetriesPerRequest: 1 });
    clients.push(direct);
    expect(await direct.get('tw:auth')).toBe('2');
  });

  it('slot migration, rebalance, drain and split are refused for it with the reason, and nothing is written', async () => {
    const { prefix, admin } = await makeCluster(world, 'twm', { shards: 2, slaves: 0 });
    expect((await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'set', 'twm', '--proxy', 'nginx'])).code).toBe(2);
    expect((await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'set', 'twm', '--proxy', 'twemproxy'])).code).toBe(0);
    const before = await admin.route('twm');
    const spare = await world.redis();
    const split = ['shard', 'split', 'twm', 's0', '--new-shard', 's2', '--master', spare.address];
    for (const args of [['migrate', 'twm', '--slots', '0-9', '--to', 's1'], ['rebalance', 'twm'], ['shard', 'drain', 'twm', 's0'], split]) {
      const result = await cfgctl(world.etcd.endpoint, prefix, args);
      expect(result.code, args.join(' ')).toBe(5);
      expect(result.stderr).toMatch(/behind twemproxy, which places keys by its own hash/);
    }
    expect((await admin.migrations.list('twm')).migrations).toEqual([]);
    expect((await admin.splits.list('twm')).splits).toEqual([]);
    expect(await admin.route('twm')).toEqual(before);
    const shown = await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'show', 'twm', '--json', '--no-live']);
    expect(JSON.parse(shown.stdout).spec.proxy).toBe('twemproxy');
  });

  it('the proxy kind cannot change while a migration is under way, and the agent refuses a cluster not behind twemproxy', async () => {
    const { prefix, admin } = await makeCluster(world, 'twc', { shards: 2, slaves: 0 });
    await expect(startAgent(prefix, 'twc')).rejects.toThrow(/has proxy cfgserver: set it to twemproxy first/);
    expect((await admin.listProxies('twc')).proxies).toEqual([]);
    // No controller runs: the migration stays asked, not begun.
    const asked = await cfgctl(world.etcd.endpoint, prefix, ['migrate', 'twc', '--slots', '0-9', '--to', 's1']);
    expect(asked.code, asked.stderr).toBe(0);
    const refused = await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'set', 'twc', '--proxy', 'twemproxy']);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/slot migration under way/);
    expect((await admin.getCluster('twc')).spec.proxy).toBe('cfgserver');
  });
});
