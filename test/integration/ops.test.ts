/**
 * Operator answers (issue 11): the failover budget and a slave on the wrong master in `cluster
 * show`, instances that do not answer refused at `shard add` / `cluster create` unless forced, a
 * refused failover recorded once, and no "repair" entries after a switchover.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../src/playground/processes.js';
import type { ClusterStatus } from '../../src/service/admin-service.js';
import { makeCluster, replicating } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const run = (prefix: string, ...args: string[]) => cfgctl(world.etcd.endpoint, prefix, args);
const show = async (prefix: string, name: string) => JSON.parse((await run(prefix, 'cluster', 'show', name, '--json')).stdout) as ClusterStatus;

describe('operator answers', () => {
  it('refuses instances that do not answer at shard add and cluster create, unless --force (with a warning)', async () => {
    const prefix = randomPrefix();
    const live = await world.redis();
    const silent = `127.0.0.1:${await freePort()}`;

    const file = join(world.dir, 'ops-silent.yaml');
    writeFileSync(file, `slots: 16\nshards:\n  - master: ${live.address}\n    slaves: [${silent}]\n`);
    const refused = await run(prefix, 'cluster', 'create', 'quiet', '-f', file);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain(`${silent} does not answer`);
    expect(refused.stderr).toMatch(/--force adds it anyway/);
    expect((await world.admin(prefix).listClusters()).clusters).toEqual([]);

    const forced = await run(prefix, 'cluster', 'create', 'quiet', '-f', file, '--force');
    expect(forced.code).toBe(0);
    expect(forced.stderr).toMatch(new RegExp(`warning: ${silent} does not answer .*added anyway`));
    // The first epoch, and why it is not 1.
    const epoch = (await world.admin(prefix).route('quiet')).epoch;
    expect(forced.stdout).toContain(`created cluster quiet at epoch ${epoch} (the etcd revision + 1`);

    // shard add: refused with nothing written, then forced.
    const other = `127.0.0.1:${await freePort()}`;
    const before = await world.admin(prefix).route('quiet');
    const add = await run(prefix, 'shard', 'add', 'quiet', '--master', other);
    expect(add.code).toBe(5);
    expect(add.stderr).toContain(`${other} does not answer`);
    expect(await world.admin(prefix).route('quiet')).toEqual(before);
    const added = await run(prefix, 'shard', 'add', 'quiet', '--master', other, '--force');
    expect(added.code).toBe(0);
    expect(added.stderr).toContain(`warning: ${other} does not answer`);
    expect((await world.admin(prefix).route('quiet')).shards.map((s) => s.master)).toEqual([live.address, other]);
    // An instance that answers needs no --force, and prints no warning.
    const answering = await world.redis();
    const plain = await run(prefix, 'shard', 'add', 'quiet', '--master', answering.address);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toBe('');

    // The API refuses the same (422), unless "force": true.
    const port = await freePort();
    world.controller('api-ops', prefix, ['--listen', `127.0.0.1:${port}`]);
    const post = (body: unknown) => fetch(`http://127.0.0.1:${port}/v1/clusters`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await waitFor('the API', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok ?? false, 20_000);
    const ghost = `127.0.0.1:${await freePort()}`;
    const viaApi = await post({ name: 'viaapi', shards: [{ master: ghost }] });
    expect(viaApi.status).toBe(422);
    expect(((await viaApi.json()) as { error: { message: string } }).error.message).toContain(`${ghost} does not answer`);
    expect((await post({ name: 'viaapi', shards: [{ master: ghost }], force: true })).status).toBe(201);
  });

  it('records a failover refused for a master that never answered once, not every 30 s', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'never', { slaves: 1 });
    const ghost = `127.0.0.1:${await freePort()}`;
    await admin.addShard('never', { master: ghost, id: 'ghost' });
    world.controller('n1', prefix);
    await replicating(redis, slaves, master.address);
    const refusedTasks = async () => (await admin.listTasks('never')).tasks.filter((t) => t.shard === 'ghost' && t.state === 'refused');
    const first = await waitFor('the refused failover', async () => ((await refusedTasks()).length ? await refusedTasks() : null), 20_000);
    expect(first[0]!.error).toMatch(/no slave can be promoted: shard ghost has no slave/);
    // The leader tries again after 30 s, sees the same reasons, and records nothing new.
    const log = join(world.dir, 'controller-n1.log');
    await waitFor('the retry', async () => readFileSync(log, 'utf8').includes('failover of ghost still refused, as its last task says'), 60_000);
    expect(await refusedTasks()).toHaveLength(1);
    const history = (await admin.listHistory('never', 1000)).entries.filter((e) => e.shard === 'ghost' && e.outcome === 'refused');
    expect(history).toHaveLength(1);
  });

  it('cluster show: the failover budget used, and a slave on the wrong master marked, paused or not', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'budget', { slaves: 2 });
    world.controller('b1', prefix);
    await replicating(redis, slaves, master.address);
    const fresh = await show(prefix, 'budget');
    expect(fresh.failoverBudget).toEqual({ used: 0, max: 3, windowMs: 3_600_000, freesAt: null });
    expect((await run(prefix, 'cluster', 'show', 'budget')).stdout).toContain('failover budget: 0 of 3 automatic failovers used in the last 60 min');

    await master.process.kill9();
    const task = await waitFor('the failover', async () => (await admin.listTasks('budget')).tasks.find((t) => t.kind === 'failover' && t.state === 'done') ?? null, 20_000);
    const spent = await show(prefix, 'budget');
    expect(spent.failoverBudget).toEqual({ used: 1, max: 3, windowMs: 3_600_000, freesAt: new Date(Date.parse(task.createdAt) + 3_600_000).toISOString() });
    expect((await run(prefix, 'cluster', 'show', 'budget')).stdout).toMatch(/failover budget: 1 of 3 automatic failovers used in the last 60 min; the oldest leaves the window at \S+ \(in (59|60) min\)/);

    // Paused, a slave made to follow the other slave is left so by the leader, and marked.
    const newMaster = task.target!;
    const other = slaves.map((s) => s.address).find((a) => a !== newMaster)!;
    await replicating(redis, slaves.filter((s) => s.address === other), newMaster);
    expect((await run(prefix, 'cluster', 'pause', 'budget')).code).toBe(0);
    const [host, port] = master.address.split(':');
    await redis.at(other).replicaof(host!, port!); // the dead old master: the wrong one
    const marked = await waitFor('the mark', async () => {
      const s = await show(prefix, 'budget');
      const inst = s.shards[0]!.instances.find((i) => i.address === other)!;
      return inst.mismatch ? inst : null;
    }, 20_000);
    expect(marked.mismatch).toBe(`replicates from ${master.address}, not from its master ${newMaster}`);
    const text = (await run(prefix, 'cluster', 'show', 'budget')).stdout;
    expect(text).toMatch(new RegExp(`${other}\\s+slave\\s+slave\\s+${master.address} down\\s+\\S+\\s+WRONG MASTER`));
    expect(text).toContain(`${other} replicates from ${master.address}, not from its master ${newMaster} (paused: the leader leaves it so until cfgctl cluster resume)`);

    // Resumed, the leader repairs it and the mark goes.
    expect((await run(prefix, 'cluster', 'resume', 'budget')).code).toBe(0);
    await waitFor('the repair', async () => (await show(prefix, 'budget')).shards[0]!.instances.every((i) => i.mismatch === null), 20_000);
  });

  it('a switchover is followed by no repair of what it did (only the write fence of the new master)', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'sw', { slaves: 2 });
    world.controller('s1', prefix);
    await replicating(redis, slaves, master.address);
    await waitFor('the fence', async () => (await admin.listHistory('sw')).entries.some((e) => e.action === 'fence' && e.target === master.address), 20_000);
    const before = (await admin.listHistory('sw', 1000)).entries.length;
    const result = await run(prefix, 'failover', 'sw', '--shard', 's0');
    expect(result.code).toBe(0);
    const target = (await admin.route('sw')).shards[0]!.master;
    // The new master's fence, put on by a later cycle, shows that the leader judged the shard again.
    const after = await waitFor('the new master fenced', async () => {
      const entries = (await admin.listHistory('sw', 1000)).entries.slice(before);
      return entries.some((e) => e.action === 'fence' && e.target === target) ? entries : null;
    }, 20_000);
    expect(after.filter((e) => !e.action.startsWith('switchover:') && e.action !== 'fence')).toEqual([]);
  });
});
