/**
 * The controller's etcd copy (src/store/etcd-mirror.ts) against a real etcd: what it loads and
 * leaves out, that it follows puts and deletes, waits for a write of its own, and — when its
 * watch breaks on a hung link — reads etcd directly until it has loaded everything again.
 */
import { describe, expect, it } from 'vitest';
import { createEtcd } from '../../src/store/etcd.js';
import { EtcdMirror } from '../../src/store/etcd-mirror.js';
import { Keys } from '../../src/store/keys.js';
import { waitFor } from '../../src/playground/processes.js';
import { useRelays } from '../helpers/relay.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const relays = useRelays();

async function seed(keys: Keys): Promise<void> {
  const c = world.client;
  await c.put(keys.clusterIndexEntry('a')).value('').exec();
  await c.put(keys.spec('a')).value('{"spec":1}').exec();
  await c.put(keys.route('a')).value('{"route":1}').exec();
  await c.put(keys.healthOf('a', 'c1', '127.0.0.1:1')).value('{"h":1}').exec();
  await c.put(keys.historyEntry('a', '0001')).value('{"entry":1}').exec();
  await c.put(keys.controller('c1')).value('{"id":"c1"}').exec();
}

const values = (kvs: { value: Buffer }[]) => kvs.map((kv) => kv.value.toString());

describe('the etcd copy of a controller', () => {
  it('holds every key but history, follows puts and deletes in order, and waits for a write of its own', async () => {
    const keys = new Keys(randomPrefix());
    await seed(keys);
    const mirror = new EtcdMirror(world.client, keys);
    mirror.start();
    try {
      await waitFor('the copy to load', async () => mirror.isSynced(), 10_000);
      expect(values(await mirror.prefix(keys.cluster('a'), 'read'))).toEqual(['{"h":1}', '{"route":1}', '{"spec":1}']);
      expect(await mirror.prefix(keys.history('a'), 'read')).toEqual([]);
      expect((await mirror.get(keys.controller('c1'), 'read'))?.value.toString()).toBe('{"id":"c1"}');
      expect(mirror.has(keys.activeMigration('a'))).toBe(false);

      const changed: string[] = [];
      mirror.on('change', (key) => changed.push(key));
      const put = await world.client.put(keys.route('a')).value('{"route":2}').exec();
      expect(await mirror.reach(put.header.revision, 5000)).toBe(true);
      expect((await mirror.get(keys.route('a'), 'read'))?.value.toString()).toBe('{"route":2}');
      const del = await world.client.delete().key(keys.healthOf('a', 'c1', '127.0.0.1:1')).exec();
      await world.client.put(keys.historyEntry('a', '0002')).value('{"entry":2}').exec();
      const created = await world.client.put(keys.activeMigration('a')).value('m1').exec();
      expect(await mirror.reach(created.header.revision, 5000)).toBe(true);
      expect(BigInt(created.header.revision)).toBeGreaterThan(BigInt(del.header.revision));
      expect(await mirror.get(keys.healthOf('a', 'c1', '127.0.0.1:1'), 'read')).toBeUndefined();
      expect(mirror.has(keys.activeMigration('a'))).toBe(true);
      // History entries are neither held nor announced.
      expect(changed).toEqual([keys.route('a'), keys.healthOf('a', 'c1', '127.0.0.1:1'), keys.activeMigration('a')]);
      // A cluster created after the load is followed like the others.
      await world.client.put(keys.clusterIndexEntry('b')).value('').exec();
      const spec = await world.client.put(keys.spec('b')).value('{"spec":"b"}').exec();
      expect(await mirror.reach(spec.header.revision, 5000)).toBe(true);
      expect(values(await mirror.prefix(keys.clusterIndex(), 'read'))).toHaveLength(2);
      expect((await mirror.get(keys.spec('b'), 'read'))?.value.toString()).toBe('{"spec":"b"}');
      expect(mirror.loads).toBe(1);
    } finally {
      await mirror.stop();
    }
  });

  it('a watch broken by a hung link: reads go to etcd until the copy is loaded again, with what changed meanwhile', async () => {
    const keys = new Keys(randomPrefix());
    await seed(keys);
    const relay = await relays(world.etcd.endpoint.replace(/^https?:\/\//, ''));
    const client = createEtcd({ endpoints: relay.address, callTimeoutMs: 1000 });
    const mirror = new EtcdMirror(client, keys, undefined, 200);
    mirror.start();
    try {
      await waitFor('the copy to load', async () => mirror.isSynced(), 10_000);
      relay.hang();
      // gRPC keep-alive pings find the hung link within seconds; the copy then stops serving.
      await waitFor('the copy to stop serving', async () => !mirror.isSynced(), 20_000);
      expect(mirror.has(keys.spec('a'))).toBeUndefined();
      await expect(mirror.get(keys.spec('a'), 'read spec')).rejects.toThrow(/read spec/);
      await world.client.put(keys.route('a')).value('{"route":3}').exec();
      await world.client.delete().key(keys.controller('c1')).exec();
      relay.heal();
      await waitFor('the copy to load again', async () => mirror.isSynced(), 20_000);
      expect(mirror.loads).toBe(2);
      expect((await mirror.get(keys.route('a'), 'read'))?.value.toString()).toBe('{"route":3}');
      expect(await mirror.get(keys.controller('c1'), 'read')).toBeUndefined();
    } finally {
      await mirror.stop();
      client.close();
    }
  });
});
