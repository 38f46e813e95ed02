/**
 * What clients see of a split's trim through the proxy (issue 14): until the trim is over both
 * masters hold the other side's keys, yet DBSIZE, KEYS, SCAN and RANDOMKEY count and return the
 * keys of owned slots only, each compared with the true owned keys read from the masters. Outside
 * that window DBSIZE stays one DBSIZE per master (no SCAN).
 */
import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { slotOwners } from '../../src/model/route.js';
import type { Route } from '../../src/model/schemas.js';
import { keySlot } from '../../src/model/slot.js';
import { splitFinished, type SplitRecord } from '../../src/model/split.js';
import { freePort, waitFor } from '../../src/playground/processes.js';
import { sample } from '../helpers/metrics-text.js';
import type { AdminService } from '../../src/service/admin-service.js';
import { makeCluster } from '../helpers/cluster.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { cfgctl, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

/** The keys on each master whose slot its shard owns, and every key each master holds. */
async function truth(route: Route): Promise<{ owned: Set<string>; held: number }> {
  const owners = slotOwners(route);
  const owned = new Set<string>();
  let held = 0;
  for (const [i, shard] of route.shards.entries()) {
    const keys = (await redis.at(shard.master).keys('*')) as string[];
    held += keys.length;
    for (const key of keys) if (owners[keySlot(key, route.slotCount)] === i) owned.add(key);
  }
  return { owned, held };
}

/** SCAN calls each master has served so far (INFO commandstats). */
async function scanCalls(route: Route): Promise<number> {
  let calls = 0;
  for (const shard of route.shards) {
    const info = await redis.at(shard.master).info('commandstats');
    calls += Number(/cmdstat_scan:calls=(\d+)/.exec(info)?.[1] ?? 0);
  }
  return calls;
}

async function scanAll(client: Redis): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, page] = await client.scan(cursor, 'COUNT', 300);
    keys.push(...page);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

async function latestSplit(admin: AdminService, cluster: string): Promise<SplitRecord | undefined> {
  const { splits } = await admin.splits.list(cluster);
  return splits[splits.length - 1];
}

/** Until the proxy has applied `epoch` (it registers the epoch it applied). */
function proxyAt(admin: AdminService, epoch: number): Promise<true> {
  return waitFor(`the proxy at epoch ${epoch}`, async () => {
    const { proxies: listed } = await admin.listProxies('counts');
    return listed.length > 0 && listed.every((p) => (p.epoch ?? 0) >= epoch);
  }, 10_000);
}

describe('counts through the proxy during a split', () => {
  it('DBSIZE, KEYS, SCAN and RANDOMKEY show owned keys only while the trim runs; DBSIZE is O(1) outside it', async () => {
    const { admin, prefix } = await makeCluster(world, 'counts', { shards: 2, slaves: 0 });
    const api = `127.0.0.1:${await freePort()}`;
    world.controller('counts-c0', prefix, ['--listen', api]);
    await waitFor('a leader', async () => (await admin.controllers.leader()) !== null, 15_000);
    const client = proxies.client(await proxies.start(world.etcd.endpoint, prefix, 'counts'));
    const fill = client.pipeline();
    for (let i = 0; i < 12_000; i++) fill.set(`k:${i}`, String(i));
    await fill.exec();

    // Before the split: exact, and counted with DBSIZE alone (no SCAN reaches a master).
    const before = await admin.route('counts');
    expect(before.trimming).toBeUndefined();
    const scansBefore = await scanCalls(before);
    expect(await client.dbsize()).toBe(12_000);
    expect(await scanCalls(before)).toBe(scansBefore);

    // A split whose trim goes at 200 keys/s a side: each side has thousands of foreign keys for seconds.
    const newMaster = await world.redis();
    await admin.splits.split('counts', { shard: 's0', newShard: 's2', master: newMaster.address, trimRate: 200, requestedBy: 'test' });
    const trimming = await waitFor('the split to reach its trim', async () => {
      const s = await latestSplit(admin, 'counts');
      return s && (s.next === 'trim' || splitFinished(s)) ? s : null;
    }, 40_000, 50);
    expect(trimming.state, trimming.error ?? '').toBe('running');
    const route = await admin.route('counts');
    expect(route.trimming?.sort()).toEqual(['s0', 's2']);
    const shown = await cfgctl(world.etcd.endpoint, prefix, ['route', 'counts']);
    expect(shown.stdout).toMatch(/trimming: s0, s2 \(a split's trim/);
    await proxyAt(admin, route.epoch);

    // Every owned key is unchanged by the trim, and nothing writes meanwhile: the truth is fixed.
    const { owned } = await truth(route);
    expect(owned.size).toBe(12_000);
    expect(await client.dbsize()).toBe(owned.size);
    const listed = (await client.keys('*')) as string[];
    expect(listed.length).toBe(owned.size);
    expect(new Set(listed)).toEqual(owned);
    const scanned = new Set(await scanAll(client));
    expect(scanned).toEqual(owned);
    for (let i = 0; i < 200; i++) {
      const key = await client.randomkey();
      expect(key !== null && owned.has(key), `RANDOMKEY ${key}`).toBe(true);
    }
    // A write in the window is counted once.
    await client.set('new-in-trim', 'x');
    expect(await client.dbsize()).toBe(owned.size + 1);
    // The masters still held foreign keys after all of the above: the window was real.
    const after = await truth(route);
    expect(after.held).toBeGreaterThan(after.owned.size);
    const during = await latestSplit(admin, 'counts');
    expect(during?.state).toBe('running');

    // The trim ends: the route no longer marks the shards, DBSIZE is DBSIZE again, still exact.
    const done = await waitFor('the split to end', async () => {
      const s = await latestSplit(admin, 'counts');
      return s && splitFinished(s) ? s : null;
    }, 60_000, 100);
    expect(done.state, done.error ?? '').toBe('done');
    const final = await admin.route('counts');
    expect(final.trimming).toBeUndefined();
    expect((await cfgctl(world.etcd.endpoint, prefix, ['route', 'counts'])).stdout).not.toMatch(/trimming/);
    expect(final.epoch).toBe(route.epoch + 1);
    expect(done.steps.at(-1)?.detail).toMatch(/no longer trimming/);
    await proxyAt(admin, final.epoch);
    const clean = await truth(final);
    expect(clean.held).toBe(clean.owned.size);
    expect(clean.owned.size).toBe(12_001);
    const scansDone = await scanCalls(final);
    expect(await client.dbsize()).toBe(12_001);
    expect(await scanCalls(final)).toBe(scansDone);

    // The leader's /metrics: one split done, its hold, the keys its trim removed, none running.
    const metrics = await (await fetch(`http://${api}/metrics`)).text();
    expect(sample(metrics, 'cfgserver_splits_total', { cluster: 'counts', outcome: 'done' })).toBe(1);
    expect(sample(metrics, 'cfgserver_splits_total', { cluster: 'counts', outcome: 'failed' })).toBe(0);
    expect(sample(metrics, 'cfgserver_split_hold_seconds_count', { cluster: 'counts' })).toBe(1);
    expect(sample(metrics, 'cfgserver_split_hold_seconds_sum', { cluster: 'counts' })).toBeCloseTo(done.holdMs! / 1000, 3);
    expect(sample(metrics, 'cfgserver_split_trimmed_keys_total', { cluster: 'counts' })).toBe(done.trim.source.removed + done.trim.shard.removed);
    expect(sample(metrics, 'cfgserver_split_synced_keys_total', { cluster: 'counts' })).toBe(done.sync!.keys);
    await waitFor('the running gauge at 0', async () => sample(await (await fetch(`http://${api}/metrics`)).text(), 'cfgserver_split_running', { cluster: 'counts' }) === 0, 5000);
  });
});
