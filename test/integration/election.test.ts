import { describe, expect, it } from 'vitest';
import { Session } from '../../src/election/session.js';
import { NotLeaderError } from '../../src/model/errors.js';
import { nextRoute } from '../../src/model/route.js';
import { ClusterStore } from '../../src/store/cluster-store.js';
import { candidate } from '../helpers/election.js';
import { createEtcd } from '../../src/store/etcd.js';
import { HistoryStore } from '../../src/store/history-store.js';
import { Keys } from '../../src/store/keys.js';
import { waitFor } from '../../src/playground/processes.js';
import { log, randomPrefix, useWorld } from '../helpers/servers.js';
import { useRelays } from '../helpers/relay.js';

const world = useWorld();
const relay = useRelays();

describe('leader election and fencing on a real etcd', () => {
  it('elects exactly one leader; resigning hands over at once', async () => {
    const keys = new Keys(randomPrefix());
    const a = await candidate(world.etcd.endpoint, keys, 'a');
    const b = await candidate(world.etcd.endpoint, keys, 'b');
    try {
      await waitFor('a leader', async () => a.election.isLeader() || b.election.isLeader());
      expect([a.election.isLeader(), b.election.isLeader()].filter(Boolean)).toHaveLength(1);
      const [leader, follower] = a.election.isLeader() ? [a, b] : [b, a];
      const started = Date.now();
      await leader.election.resign();
      await follower.elected;
      expect(Date.now() - started).toBeLessThan(1000);
      expect(leader.election.isLeader()).toBe(false);
      expect(() => leader.election.requireFence()).toThrow(NotLeaderError);
    } finally {
      for (const c of [a, b]) await c.close();
    }
  });

  it("rejects a deposed leader's route and history writes, and stops it from acting", async () => {
    const prefix = randomPrefix();
    const keys = new Keys(prefix);
    const admin = world.admin(prefix);
    await admin.createCluster({ name: 'fenced', file: { shards: [{ master: '127.0.0.1:7000' }] } });
    const a = await candidate(world.etcd.endpoint, keys, 'a');
    const fenceA = await a.elected;
    const b = await candidate(world.etcd.endpoint, keys, 'b');
    const store = new ClusterStore(world.client, keys);
    const history = new HistoryStore(world.client, keys);
    try {
      // While a leads, its fenced writes land.
      const before = await store.get('fenced');
      await store.writeRoute(nextRoute(before.route, before.route.shards), before.routeRevision, fenceA);

      // a's lease disappears (as when a is partitioned away or paused past its TTL); b takes over.
      await world.client.leaseClient.leaseRevoke({ ID: a.session.leaseId });
      const fenceB = await b.elected;
      expect(fenceB.createRevision).not.toBe(fenceA.createRevision);

      // a still holds its old token, but every write with it is refused by etcd.
      const current = await store.get('fenced');
      const late = nextRoute(current.route, []);
      await expect(store.writeRoute(late, current.routeRevision, fenceA)).rejects.toBeInstanceOf(NotLeaderError);
      await expect(
        history.append({ at: new Date().toISOString(), cluster: 'fenced', controller: 'a', action: 'late', shard: null, target: null, reason: 'x', outcome: 'info', durationMs: null }, fenceA),
      ).rejects.toBeInstanceOf(NotLeaderError);
      const after = await store.get('fenced');
      expect(after.route).toEqual(current.route);
      expect(await history.list('fenced')).toEqual([]);

      // ...and a notices on its own, from its keep-alive, and stops acting.
      await waitFor('a to learn it lost its lease', async () => !a.session.isAlive(), 3000);
      expect(a.election.isLeader()).toBe(false);
      expect(() => a.election.requireFence()).toThrow(NotLeaderError);

      // The new leader's writes land.
      await store.writeRoute(late, current.routeRevision, fenceB);
      expect((await store.get('fenced')).route.shards).toEqual([]);
    } finally {
      for (const c of [a, b]) await c.close();
    }
  });

  it("a session's keep-alives leave the client's connection (and its watches) alone", async () => {
    // Each keep-alive opens a stream and cancels it. etcd3 used to take that cancel for a failed
    // host and close the client's connection every time, so every watch on it dropped and
    // reconnected every few seconds (a proxy's route watch among them).
    const link = await relay(world.etcd.endpoint.replace('http://', ''));
    const etcd = createEtcd({ endpoints: `http://${link.address}` });
    const session = await Session.open(etcd, 2, log); // keep-alives every third of a second
    const watch = await etcd.watch().key(`${randomPrefix()}/x`).create();
    let drops = 0;
    watch.on('disconnected', () => drops++);
    try {
      const before = link.accepted;
      await new Promise((r) => setTimeout(r, 3000));
      expect(session.isAlive()).toBe(true);
      expect(link.accepted - before, 'new connections to etcd while keep-alives ran').toBe(0);
      expect(drops).toBe(0);
    } finally {
      await watch.cancel();
      await session.close();
      etcd.close();
    }
  });

  it('a session that cannot reach etcd stops claiming its lease before the TTL runs out', async () => {
    const etcd = createEtcd({ endpoints: world.etcd.endpoint });
    const session = await Session.open(etcd, 2, log);
    const lost = new Promise<string>((resolve) => session.once('lost', resolve));
    const started = Date.now();
    etcd.close(); // every keep-alive now fails
    const reason = await lost;
    expect(reason).toMatch(/no keep-alive answered/);
    // It must give up no later than the lease can have expired in etcd.
    expect(Date.now() - started).toBeLessThanOrEqual(2000);
    expect(session.isAlive()).toBe(false);
  });
});
