import { describe, expect, it } from 'vitest';
import { AlreadyExistsError, ConflictError, NotFoundError, RefusedError, ValidationError } from '../../src/model/errors.js';
import { nextRoute } from '../../src/model/route.js';
import { Keys } from '../../src/store/keys.js';
import { HistoryStore } from '../../src/store/history-store.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();

const twoShards = {
  shards: [
    { master: '127.0.0.1:7000', slaves: ['127.0.0.1:7001'] },
    { master: '127.0.0.1:7002', slaves: ['127.0.0.1:7003'] },
  ],
};

describe('cluster store on a real etcd', () => {
  it('creates a cluster with slots spread evenly and refuses to create it twice', async () => {
    const admin = world.admin(randomPrefix());
    const route = await admin.createCluster({ name: 'alpha', file: twoShards });
    expect(route.shards.map((s) => s.slots)).toEqual([[[0, 511]], [[512, 1023]]]);
    await expect(admin.createCluster({ name: 'alpha' })).rejects.toBeInstanceOf(AlreadyExistsError);
    const stored = await admin.getCluster('alpha');
    expect(stored.route).toEqual(route);
  });

  it('gives the loser of two racing admins a conflict error, and keeps the winner', async () => {
    const admin = world.admin(randomPrefix());
    await admin.createCluster({ name: 'race', file: twoShards });
    const first = await admin.getCluster('race');
    const second = await admin.getCluster('race');
    const winner = nextRoute(first.route, [...first.route.shards, { id: 's9', master: '127.0.0.1:7100', slaves: [], slots: [] }]);
    await admin.clusters.writeRoute(winner, first.routeRevision);
    const loser = nextRoute(second.route, first.route.shards.slice(0, 1));
    await expect(admin.clusters.writeRoute(loser, second.routeRevision)).rejects.toBeInstanceOf(ConflictError);
    expect((await admin.route('race')).shards.map((s) => s.id)).toEqual(['s0', 's1', 's9']);
  });

  it('adds and removes shards, refusing to remove one that owns slots', async () => {
    const admin = world.admin(randomPrefix());
    const created = await admin.createCluster({ name: 'grow', file: twoShards });
    const shard = await admin.addShard('grow', { master: '127.0.0.1:7004', slaves: ['127.0.0.1:7005'] });
    expect(shard).toMatchObject({ id: 's2', slots: [] });
    const afterAdd = await admin.route('grow');
    expect(afterAdd.epoch).toBe(created.epoch + 1);
    await expect(admin.removeShard('grow', 's0')).rejects.toBeInstanceOf(RefusedError);
    await admin.removeShard('grow', 's2');
    const afterRemove = await admin.route('grow');
    expect(afterRemove.shards.map((s) => s.id)).toEqual(['s0', 's1']);
    expect(afterRemove.epoch).toBe(created.epoch + 2);
  });

  it('refuses an instance that another cluster already uses, and writes nothing', async () => {
    const admin = world.admin(randomPrefix());
    await admin.createCluster({ name: 'one', file: twoShards });
    await expect(admin.createCluster({ name: 'two', file: { shards: [{ master: '127.0.0.1:7001' }] } })).rejects.toThrow(/already serves shard s0 of cluster one/);
    await expect(admin.getCluster('two')).rejects.toBeInstanceOf(NotFoundError);
    await expect(admin.addShard('one', { master: '127.0.0.1:7000' })).rejects.toBeInstanceOf(AlreadyExistsError);
  });

  it('assigns only unowned slots, evenly, and each assignment bumps the epoch', async () => {
    const admin = world.admin(randomPrefix());
    const created = await admin.createCluster({ name: 'empty', slots: 16 });
    expect(created.shards).toEqual([]);
    await admin.addShard('empty', { master: '127.0.0.1:7000' });
    await admin.addShard('empty', { master: '127.0.0.1:7002' });
    const { assigned, route } = await admin.assignSlotsEvenly('empty');
    expect(assigned).toBe(16);
    expect(route.shards.map((s) => s.slots)).toEqual([[[0, 7]], [[8, 15]]]);
    expect(route.epoch).toBe(created.epoch + 3);
    const again = await admin.assignSlotsEvenly('empty');
    expect(again.assigned).toBe(0);
    expect(again.route.epoch).toBe(route.epoch);
  });

  it('starts the epoch of a re-created cluster above every epoch it had before', async () => {
    const admin = world.admin(randomPrefix());
    await admin.createCluster({ name: 'phoenix', file: twoShards });
    for (let i = 0; i < 3; i++) await admin.addShard('phoenix', { master: `127.0.0.1:${7100 + i}` });
    const old = await admin.route('phoenix');
    await admin.deleteCluster('phoenix');
    await expect(admin.deleteCluster('phoenix')).rejects.toBeInstanceOf(NotFoundError);
    const reborn = await admin.createCluster({ name: 'phoenix' });
    expect(reborn.epoch).toBeGreaterThan(old.epoch);
  });

  it('rejects bad input with a ValidationError and writes nothing', async () => {
    const prefix = randomPrefix();
    const admin = world.admin(prefix);
    await expect(admin.createCluster({ name: 'Bad_Name' })).rejects.toBeInstanceOf(ValidationError);
    await expect(admin.createCluster({ name: 'ok', slots: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(admin.createCluster({ name: 'ok', slots: 16385 })).rejects.toBeInstanceOf(ValidationError);
    await expect(admin.createCluster({ name: 'ok', file: { shards: [{ master: 'nohost' }] } })).rejects.toThrow(/HOST:PORT/);
    await expect(admin.createCluster({ name: 'ok', file: { shards: [{ master: '127.0.0.1:1', colour: 'red' }] } })).rejects.toBeInstanceOf(ValidationError);
    await expect(admin.createCluster({ name: 'ok', file: { name: 'other' } })).rejects.toThrow(/names cluster other/);
    const keys = await world.client.getAll().prefix(`${prefix}/`).keys();
    expect(keys).toEqual([]);
  });

  it('lists clusters, reporting and skipping a malformed one', async () => {
    const prefix = randomPrefix();
    const admin = world.admin(prefix);
    await admin.createCluster({ name: 'good', file: twoShards });
    const keys = new Keys(prefix);
    await world.client.put(keys.spec('broken')).value('{"name": "broken", "slotCount": "many"');
    await world.client.put(keys.route('broken')).value('{}');
    await world.client.put(keys.clusterIndexEntry('broken')).value('');
    const { clusters, problems } = await admin.listClusters();
    expect(clusters.map((c) => c.name)).toEqual(['good']);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/malformed value at .*broken\/spec/);
  });

  it('keeps history bounded, newest last', async () => {
    const prefix = randomPrefix();
    const history = new HistoryStore(world.client, new Keys(prefix), 5);
    for (let i = 0; i < 8; i++) {
      await history.append({ at: new Date(Date.now() + i).toISOString(), cluster: 'h', controller: 'c1', action: `step-${i}`, shard: null, target: null, reason: 'test', outcome: 'info', durationMs: null });
    }
    const entries = await history.list('h', 100);
    expect(entries.map((e) => e.action)).toEqual(['step-3', 'step-4', 'step-5', 'step-6', 'step-7']);
  });
});
