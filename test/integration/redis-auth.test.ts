/**
 * Redis credentials per cluster (docs/redis-auth.md): stored with `cfgctl auth set`, used by
 * controllers and proxies with no process-wide password, rotated under a continuous writer, and
 * never printed anywhere.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { ManagedProcess, cfgserverEntry, freePort, packageRoot, waitFor } from '../../src/playground/processes.js';
import { makeCluster, replicating, type TestCluster } from '../helpers/cluster.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, useWorld } from '../helpers/servers.js';
import { parseReplicationInfo } from '../../src/redis/info.js';
import { RedisPool } from '../../src/redis/pool.js';
import { keySlot } from '../../src/model/slot.js';
import { fixedCredentials } from '../../src/redis/credentials.js';

const world = useWorld();
/** Test clients made inside a test (useRedisClients registers its cleanup at the file's level). */
const useRedisClientsNow = (options: { username: string; password: string }) => {
  const clients = new Map<string, Redis>();
  return {
    at: (address: string) => clients.get(address) ?? clients.set(address, redisAt(address, options)).get(address)!,
    replication: async (address: string) => parseReplicationInfo(String(await redisAt(address, options).info('replication'))),
  };
};
const proxies = useProxies();
const opened: Redis[] = [];
const processes: ManagedProcess[] = [];
afterAll(async () => {
  opened.forEach((c) => c.disconnect());
  for (const p of processes) await p.stop();
});

/** Every secret any test here sets: none may appear in a log, the history, cluster show or /metrics. */
/** Each cluster's prefix, for the last test's search for secrets. */
const prefixes: Record<string, string> = {};
const SECRETS = { rqOld: 'rq-Old-31aa07', rqNew: 'rq-New-8d9e44', rpOld: 'rp-Old-9f3a1c', rpWrong: 'rp-Wrong-77e2b0', aclOld: 'acl-Old-5d21e8', aclNew: 'acl-New-c40b97', client: 'client-Secret-1b8e55' };

function expectNoSecret(where: string, text: string): void {
  for (const secret of Object.values(SECRETS)) expect(text.includes(secret), `${secret} in ${where}`).toBe(false);
}

function secretFile(name: string, secret: string): string {
  const file = join(world.dir, `${name}.secret`);
  writeFileSync(file, `${secret}\n`);
  return file;
}

/** A connection of the test's own, authenticated as given (ioredis runs AUTH first). */
function redisAt(address: string, options: { username?: string; password?: string } = {}): Redis {
  const [host, port] = address.split(':');
  const client = new Redis({ host, port: Number(port), maxRetriesPerRequest: 0, retryStrategy: () => null, ...options });
  client.on('error', () => undefined);
  opened.push(client);
  return client;
}

/** The first reply to one command on a fresh connection, as text ('OK', an error line, or raw RESP). */
function rawCommand(address: string, args: string[]): Promise<string> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port) }, () => socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    socket.once('data', (d) => {
      resolve(d.toString().trim().replace(/^[+-]/, ''));
      socket.end();
    });
    socket.once('error', reject);
  });
}

/** What AUTH answers for these arguments on a fresh connection: 'OK' or the error line. */
const tryAuth = (address: string, ...args: string[]) => rawCommand(address, ['AUTH', ...args]);

describe('Redis credentials per cluster', () => {
  const rpArgs = ['--requirepass', SECRETS.rpOld, '--masterauth', SECRETS.rpOld];
  const rpRedis = useRedisClients({ password: SECRETS.rpOld });
  let rp: TestCluster;

  it('refuses bad input with nothing written, then stores credentials the instances accept', async () => {
    rp = await makeCluster(world, 'rp', { slaves: 1, redisArgs: rpArgs });
    const prefix = (prefixes.rp = rp.prefix);
    const run = (args: string[]) => cfgctl(world.etcd.endpoint, prefix, args);
    const wrong = await run(['auth', 'set', 'rp', '--password-file', secretFile('rp-wrong', SECRETS.rpWrong)]);
    expect(wrong.code, wrong.stderr).toBe(5);
    expect(wrong.stderr).toMatch(/refused these credentials/);
    expectNoSecret('a refused auth set', wrong.stdout + wrong.stderr);
    const checks: [string[], number, RegExp][] = [
      [['auth', 'set', 'rp'], 2, /--password-file FILE or --password-stdin/],
      [['auth', 'set', 'rp', '--password-file', secretFile('empty', '')], 2, /is empty/],
      [['auth', 'set', 'rp', '--password-file', join(world.dir, 'missing.secret')], 2, /cannot read the password file .*ENOENT/],
      [['auth', 'set', 'rp', '--user', 'bad user', '--password-file', secretFile('rp-old', SECRETS.rpOld)], 2, /invalid user/],
      [['auth', 'set', 'rp', '--password-file', secretFile('spaced', 'two words')], 2, /spaces or control characters/],
      [['auth', 'set', 'nope', '--password-file', secretFile('rp-old', SECRETS.rpOld)], 3, /does not exist/],
      [['auth', 'rotate', 'rp', '--password-file', secretFile('rp-new', 'rp-New-unused')], 5, /no stored credentials/],
    ];
    for (const [args, code, message] of checks) {
      const r = await run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(message);
    }
    // --password-stdin: the password piped in is read (and refused here), an empty stdin is bad input.
    const piped = (input: string) => new Promise<{ code: number; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [join(packageRoot(), 'dist', 'cli', 'cfgctl.js'), '--etcd', world.etcd.endpoint, '--prefix', prefix, 'auth', 'set', 'rp', '--password-stdin'], (err, _out, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }));
      child.stdin!.end(input);
    });
    expect(await piped(`${SECRETS.rpWrong}\n`)).toMatchObject({ code: 5, stderr: expect.stringMatching(/refused these credentials/) });
    expect(await piped('')).toMatchObject({ code: 2, stderr: expect.stringMatching(/from stdin is empty/) });
    expect((await run(['auth', 'show', 'rp'])).stdout).toMatch(/not set/);
    expect(await world.client.get(`${prefix}/clusters/rp/auth`).string()).toBeNull();

    const set = await run(['auth', 'set', 'rp', '--password-file', secretFile('rp-old', SECRETS.rpOld)]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/set, 1 password, default user \(requirepass\), version 1/);
    const shown = await run(['auth', 'show', 'rp', '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ set: true, user: null, passwords: 1, version: 1 });

    // A malformed value in etcd: a clear error naming the key, never the value.
    const key = `${prefix}/clusters/rp/auth`;
    const good = (await world.client.get(key).string())!;
    await world.client.put(key).value(JSON.stringify({ passwords: [SECRETS.rpOld], version: 'x' }));
    const malformed = await run(['auth', 'show', 'rp']);
    expect(malformed.code).toBe(7);
    expect(malformed.stderr).toMatch(/malformed value at .*\/auth/);
    expect(malformed.stderr).not.toContain(SECRETS.rpOld);
    await world.client.put(key).value(good);
  });

  it('controllers and proxies use the stored password (no environment variable); a failover works', async () => {
    const { prefix, admin, master, slaves } = rp;
    world.controller('rp1', prefix, ['--listen', '127.0.0.1:0']);
    await replicating(rpRedis, slaves, master.address);
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'rp');
    const client = proxies.client(proxy);
    await client.set('before', '1');
    expect(await rpRedis.at(master.address).get('before')).toBe('1');
    await waitFor('the write on the slave', async () => (await rpRedis.at(slaves[0]!.address).get('before')) === '1');
    await waitFor('the controller to see both instances', async () => {
      const view = await admin.describeCluster('rp', { live: false });
      return view.shards[0]!.instances.every((i) => i.health?.reachable === true);
    }, 15_000);
    // kill -9 of the master: the controller fails over to the slave, through the password.
    await master.process.kill9();
    await waitFor('the slave promoted', async () => (await admin.route('rp')).shards[0]!.master === slaves[0]!.address, 20_000);
    await waitFor('writes through the proxy again', async () => client.set('after', '2').then(() => true, () => false), 20_000);
    expect(await rpRedis.at(slaves[0]!.address).get('after')).toBe('2');
    expect(await rpRedis.at(slaves[0]!.address).get('before')).toBe('1');

    // Mid-rotation, a password the instances do not know yet comes first: every user falls back to
    // the second one (a new proxy connects, the controller keeps probing).
    const key = `${prefix}/clusters/rp/auth`;
    const stored = JSON.parse((await world.client.get(key).string())!);
    await world.client.put(key).value(JSON.stringify({ ...stored, passwords: [SECRETS.rpWrong, SECRETS.rpOld], version: stored.version + 1 }));
    const pool = new RedisPool({ timeoutMs: 1000, credentials: fixedCredentials({ user: null, passwords: [SECRETS.rpWrong, SECRETS.rpOld] }) });
    try {
      // The controllers' connections: the first attempt is refused, the next one uses the second password.
      const outcomes: string[] = [];
      await waitFor('the pool to fall back', async () => {
        const ok = await pool.call(slaves[0]!.address, 'PING').then(() => true, (err: Error) => (outcomes.push(err.message), false));
        return ok;
      });
      expect(outcomes.length).toBeLessThanOrEqual(2);
      outcomes.forEach((o) => expect(o).toMatch(/WRONGPASS/));
    } finally {
      pool.close();
    }
    const late = await proxies.start(world.etcd.endpoint, prefix, 'rp');
    await proxies.client(late).set('fallback', '3');
    expect(await rpRedis.at(slaves[0]!.address).get('fallback')).toBe('3');
    await waitFor('the controller to use the new version', async () => (await admin.controllers.list()).every((c) => c.auth?.['rp'] === stored.version + 1), 10_000);

    // The HTTP API: what is stored, never the secret; bad input refused, nothing written.
    const api = (await admin.controllers.list())[0]!.address!;
    const shown = await fetch(`http://${api}/v1/clusters/rp/auth`);
    const body = await shown.text();
    expect(JSON.parse(body)).toMatchObject({ set: true, passwords: 2, rotating: true });
    expect(body).not.toContain(SECRETS.rpOld);
    const before = await world.client.get(key).string();
    const bad = await fetch(`http://${api}/v1/clusters/rp/auth`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: '' }) });
    expect(bad.status).toBe(400);
    const notJson = await fetch(`http://${api}/v1/clusters/rp/auth`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: `{"password": "${SECRETS.rpOld}"` });
    expect(notJson.status).toBe(400);
    expect(await notJson.text()).not.toContain(SECRETS.rpOld);
    const otherRotation = await fetch(`http://${api}/v1/clusters/rp/auth/rotate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: 'rp-Third-0c0c' }) });
    expect(otherRotation.status).toBe(422);
    expect(await world.client.get(key).string()).toBe(before);
    const put = await fetch(`http://${api}/v1/clusters/rp/auth`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: SECRETS.rpOld }) });
    expect(put.status, await put.clone().text()).toBe(200);
    expect(await put.text()).not.toContain(SECRETS.rpOld);
    expect(JSON.parse((await world.client.get(key).string())!).passwords).toEqual([SECRETS.rpOld]);
    // cfgctl reads offsets live with the stored credentials too (within the probe timeout, 200 ms
    // here, which a busy machine can miss once: a wrong password would never answer).
    const liveErrors: string[] = [];
    await waitFor('cluster show to read the new master live', async () => {
      const shownLive = await cfgctl(world.etcd.endpoint, prefix, ['cluster', 'show', 'rp', '--json']);
      const live = JSON.parse(shownLive.stdout).shards[0].instances.find((i: { address: string }) => i.address === slaves[0]!.address).live;
      if (live.error) liveErrors.push(live.error);
      return live.role === 'master' && live.error === null;
    }, 15_000);
    liveErrors.forEach((e) => expect(e).not.toMatch(/NOAUTH|WRONGPASS/));
  });

  it('ACL users: a rotation under a continuous writer through two proxies loses no write and never gets NOAUTH/WRONGPASS; then a switchover', async () => {
    const aclArgs = ['--user', 'default', 'off', '--user', 'app', 'on', `>${SECRETS.aclOld}`, '~*', '&*', '+@all', '--masteruser', 'app', '--masterauth', SECRETS.aclOld];
    const { prefix, admin, master, slaves } = await makeCluster(world, 'acl', { slaves: 1, redisArgs: aclArgs });
    const run = (args: string[]) => cfgctl(world.etcd.endpoint, prefix, args);
    const set = await run(['auth', 'set', 'acl', '--user', 'app', '--password-file', secretFile('acl-old', SECRETS.aclOld)]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/set, 1 password, user app, version 1/);
    world.controller('acl1', prefix, ['--listen', '127.0.0.1:0']);
    const aclRedis = useRedisClientsNow({ username: 'app', password: SECRETS.aclOld });
    await replicating(aclRedis, slaves, master.address);

    // One proxy in this process, one a process of its own whose clients AUTH as a user, with the
    // secret in a file (not in ps).
    const inProcess = await proxies.start(world.etcd.endpoint, prefix, 'acl', { metricsListen: '127.0.0.1:0' });
    const port = await freePort();
    const proxyProcess = new ManagedProcess('proxy', process.execPath, [
      cfgserverEntry(), 'proxy', '--cluster', 'acl', '--listen', `127.0.0.1:${port}`, '--etcd', world.etcd.endpoint, '--prefix', prefix,
      '--id', 'acl-px', '--user', 'appclient', '--password-file', secretFile('client', SECRETS.client), '--log-level', 'debug',
    ], join(world.dir, 'proxy-acl-px.log'));
    processes.push(proxyProcess);
    await waitFor('both proxies registered', async () => (await admin.listProxies('acl')).proxies.length === 2, 15_000);

    // Clients of the proxy process: AUTH user pass, HELLO 3 AUTH, and the wrong ones.
    expect(await rawCommand(`127.0.0.1:${port}`, ['GET', 'x'])).toMatch(/^NOAUTH/);
    expect(await tryAuth(`127.0.0.1:${port}`, 'appclient', 'nope')).toMatch(/WRONGPASS/);
    expect(await tryAuth(`127.0.0.1:${port}`, 'someone', SECRETS.client)).toMatch(/WRONGPASS/);
    expect(await tryAuth(`127.0.0.1:${port}`, 'appclient', SECRETS.client)).toBe('OK');
    expect(await rawCommand(`127.0.0.1:${port}`, ['HELLO', '3', 'AUTH', 'appclient', SECRETS.client])).toMatch(/^%\d+/); // a RESP3 map
    expect(await rawCommand(`127.0.0.1:${port}`, ['HELLO', '3', 'AUTH', 'appclient', 'nope'])).toMatch(/^WRONGPASS/);
    const viaProcess = redisAt(`127.0.0.1:${port}`, { username: 'appclient', password: SECRETS.client });
    const viaInProcess = proxies.client(inProcess);

    const errors: string[] = [];
    const acked: string[] = [];
    let stop = false;
    const writer = (c: Redis, tag: string) => (async () => {
      for (let i = 0; !stop; i++) {
        const key = `acl:${tag}:${i}`;
        try {
          await c.set(key, tag);
          acked.push(key);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    })();
    const writers = [writer(viaProcess, 'p'), writer(viaInProcess, 'i')];
    await waitFor('writes before the rotation', async () => acked.length > 300);

    const rotated = await run(['auth', 'rotate', 'acl', '--password-file', secretFile('acl-new', SECRETS.aclNew)]);
    expect(rotated.code, rotated.stderr).toBe(0);
    expectNoSecret('cfgctl auth rotate acl', rotated.stdout + rotated.stderr);
    expect(rotated.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[0])).toEqual(['add', 'store', 'adopt', 'remove', 'finish', 'credentials of acl']);
    expect(rotated.stdout).toMatch(/set, 1 password, user app, version 3/);

    // New connections after the rotation (forced by a backend restart of the route: a switchover).
    const failover = await run(['failover', 'acl', '--shard', 's0']);
    expect(failover.code, failover.stderr).toBe(0);
    const atSwitch = acked.length;
    await waitFor('writes after the rotation and the switchover', async () => acked.length > atSwitch + 300, 20_000);
    stop = true;
    await Promise.all(writers);
    expect(errors).toEqual([]);

    // Only the new password works on every instance; replication follows it (masterauth).
    for (const address of [master.address, slaves[0]!.address]) {
      expect(await tryAuth(address, 'app', SECRETS.aclOld)).toMatch(/WRONGPASS/);
      expect(await tryAuth(address, 'app', SECRETS.aclNew)).toBe('OK');
      const fresh = redisAt(address, { username: 'app', password: SECRETS.aclNew });
      expect(await fresh.config('GET', 'masterauth')).toEqual(['masterauth', SECRETS.aclNew]);
    }
    const newMaster = redisAt(slaves[0]!.address, { username: 'app', password: SECRETS.aclNew });
    expect((await admin.route('acl')).shards[0]!.master).toBe(slaves[0]!.address);
    const oldMaster = redisAt(master.address, { username: 'app', password: SECRETS.aclNew });
    await waitFor('the old master replicating from the new one with the new password', async () => /master_link_status:up/.test(await oldMaster.info('replication')), 20_000);
    for (let i = 0; i < acked.length; i += 1000) {
      const batch = acked.slice(i, i + 1000);
      const values = await newMaster.mget(...batch);
      expect(batch.filter((_, k) => values[k] === null)).toEqual([]);
    }
    const history = await admin.history.list('acl', 200);
    expect(history.filter((e) => e.action.startsWith('auth:rotate:')).map((e) => e.action)).toEqual(['auth:rotate:add', 'auth:rotate:store', 'auth:rotate:adopt', 'auth:rotate:remove', 'auth:rotate:finish']);

    prefixes.acl = prefix;
  });

  it('requirepass: a rotation that cannot finish leaves both passwords valid, resumes, and persists in the config file across a restart', async () => {
    // The master runs from a config file (CONFIG REWRITE persists there); the slave from flags.
    const port = await freePort();
    const dir = join(world.dir, `conf-${port}`);
    mkdirSync(dir);
    const conf = join(dir, 'redis.conf');
    writeFileSync(conf, ['bind 127.0.0.1', `port ${port}`, 'save ""', `dir ${dir}`, 'repl-diskless-sync-delay 0', `requirepass ${SECRETS.rqOld}`, `masterauth ${SECRETS.rqOld}`, ''].join('\n'));
    const startMaster = () => {
      const p = new ManagedProcess('redis', 'redis-server', [conf], join(dir, 'redis.log'));
      processes.push(p);
      return waitFor('the config-file redis', async () => /^(OK|WRONGPASS)/.test(await tryAuth(`127.0.0.1:${port}`, 'x').catch(() => '')));
    };
    await startMaster();
    const master = `127.0.0.1:${port}`;
    const slave = await world.redis(['--requirepass', SECRETS.rqOld, '--masterauth', SECRETS.rqOld]);
    const prefix = (prefixes.rq = `/test-rq-${port}`);
    const admin = world.admin(prefix);
    await admin.createCluster({ name: 'rq', file: { probe: { intervalMs: 200, timeoutMs: 200, downAfterMs: 1000 }, shards: [{ master, slaves: [slave.address] }] } });
    const run = (args: string[]) => cfgctl(world.etcd.endpoint, prefix, args);
    expect((await run(['auth', 'set', 'rq', '--password-file', secretFile('rq-old', SECRETS.rqOld)])).code).toBe(0);
    world.controller('rq1', prefix, ['--listen', '127.0.0.1:0']);
    await waitFor('the slave replicating', async () => /master_link_status:up/.test(await redisAt(slave.address, { password: SECRETS.rqOld }).info('replication')), 20_000);

    // A proxy that never takes the new password (an old build, a hung process): the rotation stops
    // at "adopt", with both passwords valid and stored, and says how to go on.
    const ghost = `${prefix}/clusters/rq/proxies/ghost`;
    await world.client.put(ghost).value(JSON.stringify({ id: 'ghost', cluster: 'rq', address: '127.0.0.1:1', metrics: null, pid: 1, version: 'old', epoch: null, startedAt: 'x', updatedAt: 'x' }));
    const newFile = secretFile('rq-new', SECRETS.rqNew);
    const stuck = await run(['auth', 'rotate', 'rq', '--password-file', newFile, '--adopt-timeout', '1500']);
    expect(stuck.code, stuck.stderr).toBe(10);
    expectNoSecret('the stopped rotation', stuck.stdout + stuck.stderr);
    expect(stuck.stderr).toMatch(/proxy ghost did not take the new password/);
    for (const address of [master, slave.address]) {
      expect(await tryAuth(address, SECRETS.rqOld)).toBe('OK');
      expect(await tryAuth(address, SECRETS.rqNew)).toBe('OK');
    }
    expect((await run(['auth', 'show', 'rq'])).stdout).toMatch(/2 passwords \(rotation under way\)/);
    const failed = (await admin.history.list('rq', 50)).filter((e) => e.outcome === 'failed');
    expect(failed.map((e) => e.action)).toEqual(['auth:rotate']);
    const another = await run(['auth', 'rotate', 'rq', '--password-file', secretFile('rq-third', 'rq-Third-5b5b')]);
    expect(another.code).toBe(5);
    expect(another.stderr).toMatch(/under way/);

    // The proxy goes away: the same rotation resumes and finishes.
    await world.client.delete().key(ghost);
    const resumed = await run(['auth', 'rotate', 'rq', '--password-file', newFile]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expectNoSecret('the resumed rotation', resumed.stdout + resumed.stderr);
    for (const address of [master, slave.address]) {
      expect(await tryAuth(address, SECRETS.rqOld)).toMatch(/WRONGPASS/);
      expect(await tryAuth(address, SECRETS.rqNew)).toBe('OK');
    }
    const text = readFileSync(conf, 'utf8');
    expect(text).toContain(`requirepass "${SECRETS.rqNew}"`);
    expect(text).toContain(`masterauth "${SECRETS.rqNew}"`);
    expect(text).not.toContain(SECRETS.rqOld);

    // A restart from the file: only the new password, and the slave syncs again with it.
    await redisAt(master, { password: SECRETS.rqNew }).call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
    await waitFor('the master down', async () => (await tryAuth(master, 'x').catch(() => 'down')) === 'down');
    await startMaster();
    expect(await tryAuth(master, SECRETS.rqOld)).toMatch(/WRONGPASS/);
    expect(await tryAuth(master, SECRETS.rqNew)).toBe('OK');
    await waitFor('the slave replicating again', async () => /master_link_status:up/.test(await redisAt(slave.address, { password: SECRETS.rqNew }).info('replication')), 20_000);
  });

  it('ACL users: a slot migration under reads through a proxy moves every key with MIGRATE AUTH2, no read fails', async () => {
    const aclArgs = ['--user', 'default', 'off', '--user', 'app', 'on', `>${SECRETS.aclOld}`, '~*', '&*', '+@all'];
    const { prefix, admin, shards } = await makeCluster(world, 'mig', { shards: 2, slaves: 0, redisArgs: aclArgs });
    prefixes.mig = prefix;
    expect((await cfgctl(world.etcd.endpoint, prefix, ['auth', 'set', 'mig', '--user', 'app', '--password-file', secretFile('acl-old', SECRETS.aclOld)])).code).toBe(0);
    world.controller('mig1', prefix, ['--listen', '127.0.0.1:0']);
    await waitFor('a leader', async () => (await admin.controllers.leader()) !== null, 15_000);
    const client = proxies.client(await proxies.start(world.etcd.endpoint, prefix, 'mig'));
    const written: string[] = [];
    for (let i = 0; i < 3000; i++) written.push(`m:${i}`);
    for (let i = 0; i < written.length; i += 500) await client.mset(...written.slice(i, i + 500).flatMap((k) => [k, k]));
    // Reads through the proxy while the slots move: each read of a moving key moves it first.
    let stop = false;
    const errors: string[] = [];
    const reader = (async () => {
      for (let i = 0; !stop; i = (i + 1) % written.length) {
        const value = await client.get(written[i]!).catch((err: Error) => (errors.push(err.message), null));
        if (value !== written[i]) errors.push(`${written[i]}: ${value}`);
      }
    })();
    const s0 = (await admin.route('mig')).shards[0]!;
    await admin.migrations.migrate('mig', { slots: '0-255', to: 's1', requestedBy: 'test' });
    const done = await waitFor('the migration to end', async () => {
      const { migrations } = await admin.migrations.list('mig');
      const m = migrations[migrations.length - 1];
      return m && ['done', 'failed', 'cancelled'].includes(m.state) ? m : null;
    }, 60_000);
    stop = true;
    await reader;
    expect(done.state, done.error ?? '').toBe('done');
    expect(done.keysMoved).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    const target = redisAt(shards[1]!.master.address, { username: 'app', password: SECRETS.aclOld });
    const moved = written.filter((k) => keySlot(k, 1024) <= 255 && s0.slots.some(([a, b]) => keySlot(k, 1024) >= a && keySlot(k, 1024) <= b));
    expect(moved.length).toBeGreaterThan(0);
    expect(await target.mget(...moved)).toEqual(moved);
  });

  it('no secret in any process log, the history, cluster show, proxies or /metrics', async () => {
    expect(Object.keys(prefixes).sort()).toEqual(['acl', 'mig', 'rp', 'rq']);
    const outputs: [string, string][] = [];
    for (const [cluster, prefix] of Object.entries(prefixes)) {
      const run = (args: string[]) => cfgctl(world.etcd.endpoint, prefix, args);
      outputs.push([`history ${cluster}`, (await run(['history', cluster, '--json', '--limit', '1000'])).stdout]);
      outputs.push([`cluster show ${cluster}`, (await run(['cluster', 'show', cluster, '--json'])).stdout]);
      outputs.push([`auth show ${cluster}`, (await run(['auth', 'show', cluster, '--json'])).stdout]);
      outputs.push([`proxies ${cluster}`, (await run(['proxies', cluster, '--json'])).stdout]);
      const controllers = await world.admin(prefix).controllers.list();
      expect(controllers.map((c) => c.address)).not.toContain(null);
      for (const c of controllers) outputs.push([`controller ${c.id} /metrics`, await (await fetch(`http://${c.address}/metrics`)).text()]);
    }
    for (const p of proxies.started()) if (p.metricsListenAddress) outputs.push([`proxy ${p.id} /metrics`, await (await fetch(`http://${p.metricsListenAddress}/metrics`)).text()]);
    const logs = readdirSync(world.dir).filter((f) => f.endsWith('.log') && /^(controller|proxy)-/.test(f));
    expect(logs.sort()).toEqual(['controller-acl1.log', 'controller-mig1.log', 'controller-rp1.log', 'controller-rq1.log', 'proxy-acl-px.log']);
    for (const file of logs) outputs.push([file, readFileSync(join(world.dir, file), 'utf8')]);
    // The logs say what changed, by version: proof that they were written while the secrets were in use.
    expect(outputs.find(([name]) => name === 'controller-acl1.log')?.[1]).toMatch(/Redis credentials changed.*"version":3/);
    expect(outputs.find(([name]) => name === 'proxy-acl-px.log')?.[1]).toMatch(/Redis credentials changed.*"version":3/);
    for (const [name, text] of outputs) {
      expect(text.length, name).toBeGreaterThan(0);
      expectNoSecret(name, text);
    }
  });
});
