import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextRoute } from '../../src/model/route.js';
import type { Route } from '../../src/model/schemas.js';
import { startEtcd, waitFor, type EtcdServer } from '../../src/playground/processes.js';
import { AdminService } from '../../src/service/admin-service.js';
import { createEtcd } from '../../src/store/etcd.js';
import { Keys } from '../../src/store/keys.js';
import { RouteWatcher } from '../../src/store/route-watcher.js';
import { randomPrefix } from '../helpers/servers.js';

// This file stops and restarts etcd, so it has an etcd of its own.
let dir: string;
let etcd: EtcdServer;
let port: number;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cfgserver-watch-'));
  etcd = await startEtcd(dir);
  port = Number(new URL(etcd.endpoint).port);
});
afterAll(async () => {
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
});

function setup(prefix: string) {
  const client = createEtcd({ endpoints: etcd.endpoint });
  return { client, keys: new Keys(prefix), admin: new AdminService(client, new Keys(prefix)) };
}

function collect(watcher: RouteWatcher) {
  const seen = { changes: [] as number[], invalid: [] as string[], unreachable: 0, deleted: 0 };
  watcher.on('change', (r) => seen.changes.push(r.epoch));
  watcher.on('invalid', (e) => seen.invalid.push(e.message));
  watcher.on('unreachable', () => seen.unreachable++);
  watcher.on('deleted', () => seen.deleted++);
  return seen;
}

describe('RouteWatcher on a real etcd', () => {
  it('reads the route at start, follows every newer epoch, ignores older ones and malformed values', async () => {
    const prefix = randomPrefix();
    const { client, keys, admin } = setup(prefix);
    const created = await admin.createCluster({ name: 'w', file: { shards: [{ master: '127.0.0.1:7000' }] } });
    const watcher = new RouteWatcher({ cluster: 'w', etcd: { endpoints: etcd.endpoint }, prefix });
    const seen = collect(watcher);
    try {
      expect((await watcher.start())?.epoch).toBe(created.epoch);
      expect(seen.changes).toEqual([created.epoch]);

      await admin.addShard('w', { master: '127.0.0.1:7002' });
      await waitFor('the new epoch', async () => watcher.current()?.epoch === created.epoch + 1);
      expect(watcher.current()?.shards).toHaveLength(2);

      // Someone writes an older epoch: it is not applied.
      const older: Route = { ...watcher.current()!, epoch: created.epoch, shards: [] };
      await client.put(keys.route('w')).value(JSON.stringify(older));
      // A malformed value: not applied either, and reported.
      await client.put(keys.route('w')).value('{"format":1,"epoch":"nine"');
      await client.put(keys.route('w')).value(JSON.stringify({ ...older, epoch: created.epoch + 5, shards: [{ id: 'x', master: 'nope', slaves: [], slots: [] }] }));
      await waitFor('three rejections', async () => seen.invalid.length === 3);
      expect(seen.invalid[0]).toMatch(/older than the applied epoch/);
      expect(seen.invalid[1]).toMatch(/not JSON/);
      expect(seen.invalid[2]).toMatch(/HOST:PORT/);
      expect(watcher.current()?.epoch).toBe(created.epoch + 1);
      expect(watcher.current()?.shards).toHaveLength(2);

      // A good, newer route after all that is applied.
      const good = nextRoute(watcher.current()!, watcher.current()!.shards);
      good.epoch = created.epoch + 10;
      await client.put(keys.route('w')).value(JSON.stringify(good));
      await waitFor('the good route', async () => watcher.current()?.epoch === created.epoch + 10);
      expect(seen.changes).toEqual([created.epoch, created.epoch + 1, created.epoch + 10]);

      await admin.deleteCluster('w');
      await waitFor('the delete event', async () => seen.deleted === 1);
      expect(watcher.current()?.epoch).toBe(created.epoch + 10);
    } finally {
      await watcher.stop();
      client.close();
    }
  });

  it('keeps its last good route while etcd is down, and catches up when it is back', async () => {
    const prefix = randomPrefix();
    const { client, admin } = setup(prefix);
    const created = await admin.createCluster({ name: 'outage', file: { shards: [{ master: '127.0.0.1:7000' }] } });
    const watcher = new RouteWatcher({ cluster: 'outage', etcd: { endpoints: etcd.endpoint }, prefix, retryMs: 200 });
    const seen = collect(watcher);
    try {
      await watcher.start();
      await etcd.stop();
      await waitFor('the watcher to notice', async () => seen.unreachable > 0, 10_000);
      expect(watcher.current()?.epoch).toBe(created.epoch);

      etcd = await startEtcd(dir, port); // same port and data folder: the same etcd, restarted
      await admin.addShard('outage', { master: '127.0.0.1:7002' });
      await waitFor('the change made after the outage', async () => watcher.current()?.epoch === created.epoch + 1, 15_000);
      expect(seen.changes).toEqual([created.epoch, created.epoch + 1]);
    } finally {
      await watcher.stop();
      client.close();
    }
  });

  it('starts even when etcd is unreachable at first, and reports it', async () => {
    const prefix = randomPrefix();
    const { client, admin } = setup(prefix);
    await admin.createCluster({ name: 'late' });
    await etcd.stop();
    const watcher = new RouteWatcher({ cluster: 'late', etcd: { endpoints: etcd.endpoint, callTimeoutMs: 500 }, prefix, retryMs: 200 });
    const seen = collect(watcher);
    try {
      const starting = watcher.start();
      await waitFor('a reported failure', async () => seen.unreachable > 0, 10_000);
      expect(watcher.current()).toBeNull();
      etcd = await startEtcd(dir, port);
      const route = await starting;
      expect(route?.cluster).toBe('late');
    } finally {
      await watcher.stop();
      client.close();
    }
  });
});
