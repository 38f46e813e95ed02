/**
 * Shard split by replication end to end (issue 14): a controller splits a shard in two while a
 * writer and a read-your-latest-write reader go through two proxies; the moving slots' commands
 * are held only across the cut-over; each side trims the other's keys; bad requests change nothing.
 */
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { slotOwners } from '../../src/model/route.js';
import { keySlot } from '../../src/model/slot.js';
import { splitFinished, type SplitRecord } from '../../src/model/split.js';
import { freePort, waitFor, type ManagedProcess } from '../../src/playground/processes.js';
import type { AdminService } from '../../src/service/admin-service.js';
import { keysOnTheirOwners, makeCluster } from '../helpers/cluster.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, cfgctlRunning, useWorld, type ControllerFaults } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

function splitWhen(admin: AdminService, cluster: string, what: string, check: (s: SplitRecord) => boolean, timeoutMs = 40_000): Promise<SplitRecord> {
  return waitFor(`the split ${what}`, async () => {
    const { splits } = await admin.splits.list(cluster);
    const s = splits[splits.length - 1];
    return s && check(s) ? s : null;
  }, timeoutMs, 20);
}

/**
 * A writer of unique keys and counters through each client, and reads of the counters that must
 * never be below the last acknowledged value; the longest wait of an acknowledged write is kept.
 * Bounded in time and count.
 */
function load(clients: Redis[], counters: string[]) {
  const unique: string[] = [];
  const acked = new Map<string, number>(counters.map((c) => [c, 0]));
  let stale = 0;
  let errors = 0;
  let longestWriteMs = 0;
  let stop = false;
  const deadline = Date.now() + 60_000;
  const loops = clients.map(async (client, k) => {
    for (let i = 0; !stop && Date.now() < deadline && i < 200_000; i++) {
      const counter = counters[(i * 5 + k) % counters.length]!;
      const started = performance.now();
      try {
        if (i % 2 === 0) {
          const key = `w:${k}:${i}`;
          await client.set(key, key);
          unique.push(key);
        } else {
          acked.set(counter, Math.max(acked.get(counter)!, await client.incr(counter)));
        }
        longestWriteMs = Math.max(longestWriteMs, performance.now() - started);
        const before = acked.get(counter)!;
        if (Number((await client.get(counter)) ?? 0) < before) stale++;
      } catch {
        errors++;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  });
  return {
    unique,
    acked,
    get stale() { return stale; },
    get errors() { return errors; },
    get longestWriteMs() { return longestWriteMs; },
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

async function setup(name: string, controllers = 1, faults: ControllerFaults = {}) {
  const cluster = await makeCluster(world, name, { shards: 1, slaves: 1 });
  const procs = new Map<string, ManagedProcess>();
  const apis: string[] = [];
  for (let i = 0; i < controllers; i++) {
    apis.push(`127.0.0.1:${await freePort()}`);
    procs.set(`${name}-c${i}`, world.controller(`${name}-c${i}`, cluster.prefix, ['--listen', apis[i]!], faults));
  }
  await waitFor('a leader', async () => (await cluster.admin.controllers.leader()) !== null, 15_000);
  const a = await proxies.start(world.etcd.endpoint, cluster.prefix, name);
  const b = await proxies.start(world.etcd.endpoint, cluster.prefix, name);
  const clients = [proxies.client(a), proxies.client(b)];
  const fill = clients[0]!.pipeline();
  for (let i = 0; i < 6000; i++) fill.set(`k:${i}`, `v${i}`);
  for (let i = 0; i < 1000; i++) fill.set(`t:${i}`, `v${i}`, 'EX', 5000);
  await fill.exec();
  const master = await world.redis();
  const slave = await world.redis();
  return { ...cluster, procs, apis, clients, newMaster: master, newSlave: slave, counters: Array.from({ length: 30 }, (_, i) => `c:${i}`) };
}

type Scene = Awaited<ReturnType<typeof setup>>;

/**
 * A split under writes through two proxies whose leader sleeps after `step` (the harness's
 * splitPauseAfter) and is killed there (kill -9) once the record satisfies `reached`; the next
 * leader (of two controllers) must carry it to `done` with nothing lost and no stale read.
 * `before` runs before the request (default: 200 ms of traffic), `beforeKill` just before the kill.
 */
async function splitWithLeaderKilled(
  name: string,
  step: string,
  what: string,
  reached: (s: SplitRecord) => boolean,
  hooks: { before?: (s: Scene) => Promise<void>; beforeKill?: (s: Scene) => Promise<void> } = {},
) {
  const scene = await setup(name, 2, { splitPauseAfter: { step, ms: 30_000 } });
  const { admin, clients, counters, procs, newMaster, newSlave } = scene;
  const traffic = load(clients, counters);
  await (hooks.before ? hooks.before(scene) : new Promise((r) => setTimeout(r, 200)));
  await admin.splits.split(name, { shard: 's0', newShard: 's1', master: newMaster.address, slaves: [newSlave.address], requestedBy: 'test' });
  await splitWhen(admin, name, what, reached);
  await hooks.beforeKill?.(scene);
  const leader = (await admin.controllers.leader())!.controller;
  await procs.get(leader)!.kill9();
  const done = await splitWhen(admin, name, 'to end', splitFinished, 60_000);
  await traffic.stop();
  expect(done.state, done.error ?? '').toBe('done');
  expect(done.controller).not.toBe(leader);
  expect(traffic.stale).toBe(0);
  const holders = await keysOnTheirOwners(redis, admin, name);
  expect(traffic.unique.filter((k) => !holders.has(k)), 'acknowledged writes missing').toEqual([]);
  return { ...scene, done, traffic };
}

describe('shard split by replication', () => {
  it('splits a shard under writes through two proxies: nothing lost, no stale read, each key on one shard, TTLs kept', async () => {
    const { admin, apis, clients, counters, newMaster, newSlave, master: sourceMaster } = await setup('split');
    // Over HTTP, a bad request is refused with its typed error, and nothing is written.
    const bad = await fetch(`http://${apis[0]}/v1/clusters/split/splits`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ shard: 's0', newShard: 's1', master: newMaster.address, slots: '0-5000' }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/outside 0..1023/);
    const traffic = load(clients, counters);
    await new Promise((r) => setTimeout(r, 300));
    // A slow trim, so that the proxies can be seen hiding the foreign keys while it runs.
    const asked = await admin.splits.split('split', { shard: 's0', newShard: 's1', master: newMaster.address, slaves: [newSlave.address], trimRate: 2000, requestedBy: 'test' });
    expect(asked.slots).toEqual([[512, 1023]]);

    const trimming = await splitWhen(admin, 'split', 'to trim', (s) => s.next === 'trim' || splitFinished(s));
    expect(trimming.state, trimming.error ?? '').toBe('running');
    const route = await admin.route('split');
    expect(route.shards.map((s) => [s.id, s.slots])).toEqual([['s0', [[0, 511]]], ['s1', [[512, 1023]]]]);
    // Both masters still hold (some) keys of the other's slots: the proxies list each key once.
    const listed = (await clients[1]!.keys('k:*')) as string[];
    expect(listed.length).toBe(6000);
    expect(new Set(listed).size).toBe(6000);
    const scanned = new Set<string>();
    let cursor = '0';
    do {
      const [next, page] = await clients[0]!.scan(cursor, 'MATCH', 't:*', 'COUNT', 500);
      page.forEach((k) => scanned.add(k));
      cursor = next;
    } while (cursor !== '0');
    expect(scanned.size).toBe(1000);

    const done = await splitWhen(admin, 'split', 'to end', splitFinished);
    await traffic.stop();
    expect(done.state, done.error ?? '').toBe('done');
    expect(done.steps.map((s) => s.step)).toEqual(['attach', 'sync', 'hold', 'hold-barrier', 'catchup', 'commit', 'trim']);
    expect(done.trim.source.removed).toBeGreaterThan(2000);
    expect(done.trim.shard.removed).toBeGreaterThan(2000);
    // The full sync's settings (split-sync-settings.ts) were changed only where they differed, and put back.
    expect(done.syncSettings).toEqual({ source: { rdbcompression: 'yes' }, shard: { 'repl-diskless-load': 'swapdb' }, restored: true });
    expect(await redis.at(sourceMaster.address).config('GET', 'rdbcompression')).toEqual(['rdbcompression', 'yes']);
    expect(await redis.at(newMaster.address).config('GET', 'repl-diskless-load')).toEqual(['repl-diskless-load', 'swapdb']);
    console.log(`split cut-over: moving slots held ${done.holdMs} ms; the longest acknowledged write through a proxy took ${Math.round(traffic.longestWriteMs)} ms; ${traffic.unique.length} unique writes, ${traffic.errors} errors; steps ${done.steps.map((s) => `${s.step} ${s.durationMs} ms`).join(', ')}`);

    expect(traffic.unique.length).toBeGreaterThan(200);
    expect(traffic.stale).toBe(0);
    const holders = await keysOnTheirOwners(redis, admin, 'split');
    expect(traffic.unique.filter((k) => !holders.has(k)), 'acknowledged writes missing').toEqual([]);
    for (let i = 0; i < 6000; i++) expect(holders.has(`k:${i}`), `k:${i}`).toBe(true);
    const after = await admin.route('split');
    const owners = slotOwners(after);
    for (const [counter, value] of traffic.acked) {
      const shard = after.shards[owners[keySlot(counter, after.slotCount)]!]!;
      expect(Number((await redis.at(shard.master).get(counter)) ?? 0), counter).toBeGreaterThanOrEqual(value);
    }
    // TTLs travelled with replication: a moved key with one still has it.
    const movedTtl = Array.from({ length: 1000 }, (_, i) => `t:${i}`).find((k) => keySlot(k, 1024) >= 512)!;
    expect(await redis.at(newMaster.address).ttl(movedTtl)).toBeGreaterThan(4900);
    expect(await redis.at(sourceMaster.address).exists(movedTtl)).toBe(0);
    // The new shard is an ordinary shard: its master is a master, its slave follows it.
    expect((await redis.replication(newMaster.address)).role).toBe('master');
    await waitFor('the new slave to follow the new master', async () => (await redis.replication(newSlave.address)).masterAddress === newMaster.address, 10_000);
    // Every step is in the history with its reason, and cfgctl shows the split.
    const overHttp = (await (await fetch(`http://${apis[0]}/v1/clusters/split/splits`)).json()) as { splits: SplitRecord[] };
    expect(overHttp.splits.map((x) => [x.id, x.state])).toEqual([[done.id, 'done']]);
    const history = await admin.listHistory('split', 200);
    expect(history.entries.filter((e) => e.action.startsWith('split:')).map((e) => e.action)).toEqual(expect.arrayContaining(['split:request', 'split:attach', 'split:sync', 'split:commit', 'split:trim']));
  });

  it('refuses a bad request before anything changes, and runs one migration or split at a time', async () => {
    const { admin, prefix, shards } = await makeCluster(world, 'refuse', { shards: 2, slaves: 1 });
    const busy = await world.redis();
    const free = await world.redis();
    await redis.at(busy.address).set('left-over', 'x');
    const before = await admin.route('refuse');
    const ask = (extra: Record<string, unknown>) => admin.splits.split('refuse', { shard: 's0', newShard: 's2', master: free.address, requestedBy: 'test', ...extra });
    await expect(ask({ shard: 's9' })).rejects.toThrow(/no shard s9/);
    await expect(ask({ newShard: 's1' })).rejects.toThrow(/already has a shard s1/);
    await expect(ask({ slots: '500-600' })).rejects.toThrow(/slots 512-600 are not owned by shard s0/);
    await expect(ask({ slots: '0-511' })).rejects.toThrow(/every slot of shard s0/);
    await expect(ask({ master: busy.address })).rejects.toThrow(/holds 1 keys \(--force/);
    await expect(ask({ master: '127.0.0.1:1' })).rejects.toThrow(/127.0.0.1:1 does not answer/);
    await expect(ask({ slaves: [shards[1]!.slaves[0]!.address] })).rejects.toThrow(/already serves cluster refuse/);
    await expect(ask({ master: 'nope' })).rejects.toThrow(/invalid master address/);
    await expect(ask({ trimRate: -1 })).rejects.toThrow(/rate must be/);
    // No room for the source's whole data set: refused with the numbers.
    await redis.at(free.address).config('SET', 'maxmemory', '102400');
    await expect(ask({})).rejects.toThrow(new RegExp(`${free.address} has maxmemory 102400 bytes, below the \\d+ bytes ${shards[0]!.master.address} uses`));
    await redis.at(free.address).config('SET', 'maxmemory', '0');
    // A switchover under way on the source shard: refused until it ends.
    const task = await admin.requestSwitchover('refuse', { shard: 's0', requestedBy: 'test' });
    await expect(ask({})).rejects.toThrow(/shard s0 has an unfinished task/);
    await admin.cancelTask('refuse', task.id, 'test');
    // A migration under way (no leader begun it yet, so not in the route): refused until it ends.
    const migration = await admin.migrations.migrate('refuse', { slots: '0-3', to: 's1', requestedBy: 'test' });
    await expect(ask({})).rejects.toThrow(new RegExp(`already has an unfinished migration or split \\(${migration.id}\\)`));
    await admin.migrations.cancel('refuse', 'test');
    // Through cfgctl and HTTP's shape alike: a typed error, a non-zero exit, nothing written.
    const refused = await cfgctl(world.etcd.endpoint, prefix, ['shard', 'split', 'refuse', 's0', '--new-shard', 's2', '--master', busy.address]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/holds 1 keys/);
    await expect(admin.splits.split('refuse', { shard: 's0', newShard: 's2', master: free.address, requestedBy: 'test', extra: 1 })).rejects.toThrow(/invalid split request/);
    expect(await admin.route('refuse')).toEqual(before);
    expect((await admin.splits.list('refuse')).splits).toEqual([]);
    expect(await redis.at(busy.address).get('left-over')).toBe('x');
    expect((await redis.replication(busy.address)).role).toBe('master');

    // --force takes an instance that holds keys (the full sync wipes them); no controller runs here,
    // so the split waits at its first step, and holds the cluster's one migration-or-split.
    const asked = await cfgctl(world.etcd.endpoint, prefix, ['shard', 'split', 'refuse', 's0', '--new-shard', 's2', '--master', busy.address, '--slots', '300-511', '--force']);
    expect(asked.code, asked.stderr).toBe(0);
    expect(asked.stdout).toMatch(/s0 -> s2, slots 300-511/);
    await expect(ask({ shard: 's1' })).rejects.toThrow(/unfinished migration or split/);
    await expect(admin.migrations.migrate('refuse', { slots: '0-3', to: 's1', requestedBy: 'test' })).rejects.toThrow(/unfinished migration/);
    // Nor a switchover of its source while it runs (a failover still may: it abandons the split).
    await expect(admin.requestSwitchover('refuse', { shard: 's0', requestedBy: 'test' })).rejects.toThrow(/split .* of shard s0 is under way/);
    const listed = await cfgctl(world.etcd.endpoint, prefix, ['splits', 'refuse']);
    expect(listed.stdout).toMatch(/running\s+attach\s+s0 \(.*\)\s+s2 \(.*\)\s+300-511/);
    expect(await admin.route('refuse')).toEqual(before);
    // `splits --watch` follows it: shown running, then cancelled, without being run again.
    const watching = cfgctlRunning(world.etcd.endpoint, prefix, ['splits', 'refuse', '--watch', '--interval', '0.2']);
    try {
      await waitFor('the watch to show the split', async () => /running\s+attach/.test(watching.output()));
      // Cancelled before any leader began it: it ends at once, nothing having changed.
      const cancelled = await cfgctl(world.etcd.endpoint, prefix, ['split', 'cancel', 'refuse']);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(cancelled.stdout).toMatch(/cancel asked at step - \(cancelled\)/);
      await waitFor('the watch to show it cancelled', async () => /--- \S+\n[^]*cancelled/.test(watching.output()));
    } finally {
      watching.stop();
    }
    expect((await admin.splits.list('refuse')).splits.map((s) => [s.state, s.error])).toEqual([['cancelled', expect.stringMatching(/cancelled by cfgctl@.* before a leader began it/)]]);
    expect(await admin.route('refuse')).toEqual(before);
    expect(await redis.at(busy.address).get('left-over')).toBe('x');
    // A cancel of an ended split is refused, said in history with its reason.
    const again = await cfgctl(world.etcd.endpoint, prefix, ['split', 'cancel', 'refuse', (await admin.splits.list('refuse')).splits[0]!.id]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/has already ended: cancelled/);
    const said = (await admin.listHistory('refuse', 50)).entries.filter((e) => e.action === 'split:cancel').map((e) => e.outcome);
    expect(said).toEqual(expect.arrayContaining(['info', 'refused']));
  });

  it('a source master killed during the sync: the split is abandoned (route as before, new master detached), the failover goes on', async () => {
    // The leader sleeps 8 s after the attach (the split's settings on, its sync step next): the
    // source dies and fails over meanwhile. (A sync delay on the source cannot hold it: the split sets it to 0.)
    const { admin, clients, newMaster, newSlave, master: sourceMaster, slaves } = await setup('srcdown', 1, { splitPauseAfter: { step: 'attach', ms: 8000 } });
    await admin.splits.split('srcdown', { shard: 's0', newShard: 's1', master: newMaster.address, slaves: [newSlave.address], requestedBy: 'test' });
    const attached = await splitWhen(admin, 'srcdown', 'to sync', (s) => s.next === 'sync');
    expect(attached.syncSettings).toEqual({ source: { rdbcompression: 'yes' }, shard: { 'repl-diskless-load': 'swapdb' }, restored: false });
    expect(await redis.at(newMaster.address).config('GET', 'repl-diskless-load')).toEqual(['repl-diskless-load', 'on-empty-db']);
    // Every key of the fill on the source's own slave first: what a failover loses otherwise is not
    // the split's. (Not WAIT 1: the split's new master is a replica of the source too, and may be
    // the one that answers it.)
    const filled = (await redis.replication(sourceMaster.address)).offset;
    await waitFor("the source's own slave to hold the fill", async () => (await redis.replication(slaves[0]!.address)).offset >= filled, 10_000);
    await sourceMaster.process.kill9();
    const failed = await splitWhen(admin, 'srcdown', 'to be abandoned', splitFinished);
    expect(failed.state).toBe('failed');
    expect(failed.error).toMatch(new RegExp(`the master of shard s0 is ${slaves[0]!.address} now, not ${sourceMaster.address} \\(a failover\\)`));
    const route = await admin.route('srcdown');
    expect(route.shards.map((s) => [s.id, s.master, s.slots])).toEqual([['s0', slaves[0]!.address, [[0, 1023]]]]);
    expect(route.migrating).toEqual([]);
    expect((await redis.replication(newMaster.address)).role).toBe('master');
    // The abort put the new master's setting back; the dead source's could not be (it restarts with its own file).
    expect(await redis.at(newMaster.address).config('GET', 'repl-diskless-load')).toEqual(['repl-diskless-load', 'swapdb']);
    expect(failed.syncSettings?.restored).toBe(false);
    expect(failed.steps.at(-1)?.detail).toMatch(/settings put back: repl-diskless-load swapdb on .*; settings NOT put back \(/);
    // Clients go on against the promoted slave; a new split or migration may be asked again.
    expect(await clients[0]!.get('k:1')).toBe('v1');
    expect(await clients[1]!.set('after', 'yes')).toBe('OK');
    const history = await admin.listHistory('srcdown', 200);
    expect(history.entries.some((e) => e.action === 'split:abort' && e.outcome === 'failed')).toBe(true);
  });

  it('a leader killed during the sync: the next one carries the split on to the end', async () => {
    // Each leader sleeps 30 s after an attach: the first is killed there, the split's settings on.
    const { admin, done, master: sourceMaster } = await splitWithLeaderKilled('lead', 'attach', 'to sync', (s) => s.next === 'sync', {
      before: async ({ master }) => void (await redis.at(master.address).config('SET', 'repl-diskless-sync-delay', '4')),
      beforeKill: async ({ master }) => expect(await redis.at(master.address).config('GET', 'repl-diskless-sync-delay')).toEqual(['repl-diskless-sync-delay', '0']),
    });
    // The next leader put the source's own settings back, as the first one had recorded them.
    expect(done.syncSettings).toEqual({ source: { 'repl-diskless-sync-delay': '4', rdbcompression: 'yes' }, shard: { 'repl-diskless-load': 'swapdb' }, restored: true });
    expect(await redis.at(sourceMaster.address).config('GET', 'repl-diskless-sync-delay')).toEqual(['repl-diskless-sync-delay', '4']);
    expect(await redis.at(sourceMaster.address).config('GET', 'rdbcompression')).toEqual(['rdbcompression', 'yes']);
    expect((await admin.route('lead')).shards.map((s) => s.slots)).toEqual([[[0, 511]], [[512, 1023]]]);
  });

  it('a leader killed while the proxies hold the moving slots (after hold, before its barrier): the next one carries on, nothing lost', async () => {
    const { admin, done, traffic, master: sourceMaster } = await splitWithLeaderKilled('held', 'hold', 'to hold the moving slots', (s) => s.next === 'hold-barrier', {
      beforeKill: async ({ admin }) => expect((await admin.route('held')).migrating.length, 'the hold route is published').toBeGreaterThan(0),
    });
    expect(done.steps.map((s) => s.step)).toEqual(['attach', 'sync', 'hold', 'hold-barrier', 'catchup', 'commit', 'trim']);
    expect((await admin.route('held')).shards.map((s) => s.slots)).toEqual([[[0, 511]], [[512, 1023]]]);
    // A fence the first leader raised is put back by the next one at the cut-over.
    if (done.fenceRaise) {
      expect(done.fenceRaise.restored).toBe(true);
      expect(await redis.at(sourceMaster.address).config('GET', 'min-replicas-to-write')).toEqual(['min-replicas-to-write', String(done.fenceRaise.from)]);
    }
    console.log(`split with the leader killed while the slots were held: held ${done.holdMs} ms, ${traffic.errors} client errors, fence ${JSON.stringify(done.fenceRaise)}`);
  });

  it('a leader killed in the cut-over, its new master promoted and the route not yet committed: the next one commits, nothing lost', async () => {
    const { admin, done, traffic } = await splitWithLeaderKilled('cut', 'catchup', 'to promote its new master', (s) => s.next === 'commit');
    expect(done.steps.map((s) => s.step)).toEqual(['attach', 'sync', 'hold', 'hold-barrier', 'catchup', 'commit', 'trim']);
    const after = await admin.route('cut');
    const owners = slotOwners(after);
    for (const [counter, value] of traffic.acked) {
      const shard = after.shards[owners[keySlot(counter, after.slotCount)]!]!;
      expect(Number((await redis.at(shard.master).get(counter)) ?? 0), counter).toBeGreaterThanOrEqual(value);
    }
    console.log(`split with the leader killed in the cut-over: moving slots held ${done.holdMs} ms (a leader change), ${traffic.errors} client errors`);
  });
  it('pause: the sync goes on without a cut-over until resume; the trim stops unlinking; a cancel after the commit is refused with the reason', async () => {
    const { admin, apis, prefix, newMaster, newSlave, master: sourceMaster } = await setup('pause');
    // The full sync is slowed down (1 ms per key in the source's fork: about 7 s; the split sets
    // the sync delay to 0, so a delay cannot hold it back): the split is paused in its sync step.
    await redis.at(sourceMaster.address).config('SET', 'rdb-key-save-delay', '1000');
    // The new master reports its load every 2 MiB by default, more than this shard's RDB: every 4 KiB here.
    await redis.at(newMaster.address).config('SET', 'loading-process-events-interval-bytes', '4096');
    const asked = await admin.splits.split('pause', { shard: 's0', newShard: 's1', master: newMaster.address, slaves: [newSlave.address], trimRate: 500, requestedBy: 'test' });
    await splitWhen(admin, 'pause', 'to sync', (s) => s.next === 'sync');
    const paused = await cfgctl(world.etcd.endpoint, prefix, ['split', 'pause', 'pause']);
    expect(paused.code, paused.stderr).toBe(0);
    await splitWhen(admin, 'pause', 'to be paused in its sync', (s) => s.state === 'paused' && s.next === 'sync');
    // While the full sync runs (the link down), the record has the bytes loaded so far: no total, the RDB is streamed.
    const loading = await splitWhen(admin, 'pause', 'to record the bytes of its full sync', (s) => (s.sync?.fullSyncBytes ?? 0) > 0 || s.sync?.linkUp === true);
    expect(loading.sync).toMatchObject({ linkUp: false, fullSyncTotalBytes: null });
    expect(loading.sync!.fullSyncBytes).toBeGreaterThan(0);
    // The new master replicates the whole shard meanwhile, and the record shows it: yet no cut-over.
    const synced = await splitWhen(admin, 'pause', 'to show the new master in sync while paused', (s) => s.sync?.linkUp === true && s.sync.keys === 7000);
    expect(synced.sync!.fullSyncBytes, 'no full sync runs any more').toBeNull();
    await splitWhen(admin, 'pause', 'to write its progress again', (s) => s.sync !== null && s.sync.at !== synced.sync!.at && s.sync.linkUp);
    const whilePaused = await admin.route('pause');
    expect(whilePaused.shards.map((s) => s.id)).toEqual(['s0']);
    expect(whilePaused.migrating).toEqual([]);
    expect((await admin.splits.list('pause')).splits[0]).toMatchObject({ state: 'paused', next: 'sync' });

    const resumed = await fetch(`http://${apis[0]}/v1/clusters/pause/splits/${asked.id}/resume`, { method: 'POST' });
    expect(resumed.status).toBe(200);
    await splitWhen(admin, 'pause', 'to trim', (s) => s.next === 'trim' || splitFinished(s));
    await admin.splits.pause('pause', 'test');
    const trimPaused = await splitWhen(admin, 'pause', 'to be paused in its trim', (s) => (s.state === 'paused' && s.next === 'trim') || splitFinished(s));
    expect(trimPaused.state).toBe('paused');
    expect(trimPaused.trim.source.done && trimPaused.trim.shard.done).toBe(false);
    const sizes = async () => Promise.all([sourceMaster.address, newMaster.address].map((a) => redis.at(a).dbsize()));
    const atPause = await sizes();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await sizes(), 'keys unlinked while paused').toEqual(atPause);

    // After the commit both shards are ordinary: a cancel is refused with the reason, over HTTP and cfgctl.
    const late = await fetch(`http://${apis[0]}/v1/clusters/pause/splits/${asked.id}/cancel`, { method: 'POST' });
    const lateBody = (await late.json()) as { error: { message: string } };
    expect(late.status, lateBody.error.message).toBe(422);
    expect(lateBody.error.message).toMatch(/past its commit \(at step trim\): shards s0 and s1 are both ordinary shards now, and the trim must finish/);
    const lateCli = await cfgctl(world.etcd.endpoint, prefix, ['split', 'cancel', 'pause']);
    expect(lateCli.code).not.toBe(0);
    expect(lateCli.stderr).toMatch(/past its commit/);

    await admin.splits.resume('pause', 'test');
    const done = await splitWhen(admin, 'pause', 'to end', splitFinished);
    expect(done.state, done.error ?? '').toBe('done');
    expect(done.steps.map((s) => s.step)).toEqual(['attach', 'pause', 'resume', 'sync', 'hold', 'hold-barrier', 'catchup', 'commit', 'pause', 'resume', 'trim']);
    const holders = await keysOnTheirOwners(redis, admin, 'pause');
    for (let i = 0; i < 6000; i++) expect(holders.has(`k:${i}`), `k:${i}`).toBe(true);
    const history = (await admin.listHistory('pause', 200)).entries.filter((e) => e.action.startsWith('split:'));
    expect(history.map((e) => `${e.action} ${e.outcome}`)).toEqual(expect.arrayContaining(['split:pause info', 'split:resume info', 'split:cancel refused']));
    expect(history.find((e) => e.action === 'split:pause' && e.controller !== 'admin')?.reason).toMatch(/keeps replicating; no cut-over until resume/);
  });

  it('cancel during the sync leaves the cluster exactly as it was: the new instances detached, the route untouched', async () => {
    const { admin, apis, clients, newMaster, newSlave, master: sourceMaster } = await setup('cancel');
    // The full sync is slowed down (1 ms per key in the source's fork: about 7 s): the split stays
    // in its sync step meanwhile.
    await redis.at(sourceMaster.address).config('SET', 'rdb-key-save-delay', '1000');
    const before = await admin.route('cancel');
    const asked = await admin.splits.split('cancel', { shard: 's0', newShard: 's1', master: newMaster.address, slaves: [newSlave.address], requestedBy: 'test' });
    await splitWhen(admin, 'cancel', 'to sync', (s) => s.next === 'sync' && s.sync !== null);
    expect((await redis.replication(newMaster.address)).masterAddress).toBe(sourceMaster.address);
    const res = await fetch(`http://${apis[0]}/v1/clusters/cancel/splits/${asked.id}/cancel`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ by: 'ops' }) });
    expect(res.status).toBe(200);
    const ended = await splitWhen(admin, 'cancel', 'to be cancelled', splitFinished);
    expect(ended.state).toBe('cancelled');
    expect(ended.error).toBe('cancelled by ops');
    expect(ended.steps.map((s) => s.step)).toEqual(['attach', 'cancel']);
    expect(await admin.route('cancel')).toEqual(before);
    for (const a of [newMaster.address, newSlave.address]) expect((await redis.replication(a)).role, a).toBe('master');
    expect(await redis.at(sourceMaster.address).dbsize()).toBe(7000);
    expect(await clients[0]!.get('k:1')).toBe('v1');
    const history = (await admin.listHistory('cancel', 100)).entries.filter((e) => e.action === 'split:cancel');
    expect(history.map((e) => e.outcome)).toEqual(expect.arrayContaining(['info', 'cancelled']));
    expect(history.find((e) => e.outcome === 'cancelled')?.reason).toMatch(/cancelled by ops; .*detached \(REPLICAOF NO ONE\)/);
    // The cluster runs no split any more: another may be asked.
    expect(await admin.splits.store.active('cancel')).toBeNull();
  });
  it('cancel in the cut-over, the moving slots held by the proxies: the route as before, the held commands run on the source, nothing lost', async () => {
    // The leader sleeps 4 s after recording the hold (the proxies hold the moving slots meanwhile; their limit is 10 s).
    const { admin, clients, counters, newMaster, newSlave } = await setup('cutcancel', 1, { splitPauseAfter: { step: 'hold', ms: 4000 } });
    const traffic = load(clients, counters);
    await new Promise((r) => setTimeout(r, 200));
    const before = await admin.route('cutcancel');
    await admin.splits.split('cutcancel', { shard: 's0', newShard: 's1', master: newMaster.address, slaves: [newSlave.address], requestedBy: 'test' });
    await splitWhen(admin, 'cutcancel', 'to hold the moving slots', (s) => s.next === 'hold-barrier');
    expect((await admin.route('cutcancel')).migrating.length).toBeGreaterThan(0);
    const asked = await admin.splits.cancel('cutcancel', 'ops');
    expect(asked.cancel?.by).toBe('ops');
    const ended = await splitWhen(admin, 'cutcancel', 'to be cancelled', splitFinished, 30_000);
    await traffic.stop();
    expect(ended.state).toBe('cancelled');
    expect(ended.steps.map((s) => s.step)).toEqual(['attach', 'sync', 'hold', 'cancel']);
    const after = await admin.route('cutcancel');
    expect(after.shards).toEqual(before.shards);
    expect(after.migrating).toEqual([]);
    expect(after.epoch).toBeGreaterThan(before.epoch);
    expect((await redis.replication(newMaster.address)).role).toBe('master');
    expect(traffic.stale).toBe(0);
    const holders = await keysOnTheirOwners(redis, admin, 'cutcancel');
    expect(traffic.unique.filter((k) => !holders.has(k)), 'acknowledged writes missing').toEqual([]);
    // Every slot is the source's again: each counter is read there, not through a proxy.
    const source = after.shards[0]!.master;
    for (const [counter, value] of traffic.acked) expect(Number((await redis.at(source).get(counter)) ?? 0), counter).toBeGreaterThanOrEqual(value);
    console.log(`split cancelled in the cut-over: ${traffic.unique.length} unique writes, ${traffic.errors} client errors, the longest acknowledged write ${Math.round(traffic.longestWriteMs)} ms`);
  });
  it('a leader killed while the split is paused: the next one keeps it paused until resume, then carries it to the end', async () => {
    const { admin, procs, newMaster, newSlave, master: sourceMaster } = await setup('pausekill', 2);
    // The full sync is slowed down (1 ms per key in the source's fork: about 7 s).
    await redis.at(sourceMaster.address).config('SET', 'rdb-key-save-delay', '1000');
    await admin.splits.split('pausekill', { shard: 's0', newShard: 's1', master: newMaster.address, slaves: [newSlave.address], requestedBy: 'test' });
    await splitWhen(admin, 'pausekill', 'to sync', (s) => s.next === 'sync');
    await admin.splits.pause('pausekill', 'test');
    await splitWhen(admin, 'pausekill', 'to be paused in its sync', (s) => s.state === 'paused');
    const leader = (await admin.controllers.leader())!.controller;
    await procs.get(leader)!.kill9();
    // The full sync goes on: the next leader follows it, paused, and writes its progress.
    const followed = await splitWhen(admin, 'pausekill', 'to be followed by the next leader', (s) => s.controller !== leader && s.sync?.linkUp === true, 60_000);
    expect(followed).toMatchObject({ state: 'paused', next: 'sync' });
    expect((await admin.route('pausekill')).shards.map((s) => s.id)).toEqual(['s0']);
    await admin.splits.resume('pausekill', 'test');
    const done = await splitWhen(admin, 'pausekill', 'to end', splitFinished, 60_000);
    expect(done.state, done.error ?? '').toBe('done');
    expect(done.steps.map((s) => s.step)).toEqual(['attach', 'pause', 'resume', 'sync', 'hold', 'hold-barrier', 'catchup', 'commit', 'trim']);
    expect((await admin.route('pausekill')).shards.map((s) => s.slots)).toEqual([[[0, 511]], [[512, 1023]]]);
  });
});
