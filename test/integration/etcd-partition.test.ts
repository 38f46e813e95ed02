/**
 * An etcd member cut off from its peers (a network partition, test/helpers/etcd-partition.ts), not
 * stopped: it keeps running and answering on its client port, without a Raft leader. Calls that
 * require a leader (hasleader, src/store/etcd.ts) are refused there at once and move to another
 * member; a proxy that reaches etcd only through it is cut off from etcd, and follows the route
 * through a controller. Real 3-member etcd, controllers, redis-servers and proxy.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, memberStatus, waitFor } from '../../src/playground/processes.js';
import { createEtcd } from '../../src/store/etcd.js';
import { makeCluster, streaming } from '../helpers/cluster.js';
import { EtcdPartitions } from '../helpers/etcd-partition.js';
import { useProxies } from '../helpers/proxy.js';
import { useRawClients } from '../helpers/raw-client.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';
import { missingWrites, taskEnded, writeThrough } from '../helpers/tasks.js';

const world = useWorld({ etcdMembers: 3, etcdAsUsers: true });
const partitions = new EtcdPartitions();
afterAll(() => partitions.remove());
const redis = useRedisClients();
const proxies = useProxies();
const raw = useRawClients();

describe('an etcd member cut off from its peers', () => {
  it('the controllers keep their leader; a proxy that reached etcd only through it follows a failover through a controller; nothing acknowledged is lost', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'cut', { slaves: 1 });
    for (const id of ['k1', 'k2']) world.controller(id, prefix, ['--listen', `127.0.0.1:${await freePort()}`]);
    await waitFor('two controllers', async () => (await admin.listControllers()).controllers.length === 2, 30_000);
    const leader = await waitFor('a leader', async () => admin.controllers.leader(), 15_000);
    await streaming(redis, slaves, master.address);
    // A follower of the Raft leader: the cut then costs etcd no election, and the partition is the subject.
    const members = world.etcdCluster!.members;
    const raftLeader = await world.etcdCluster!.leader();
    const index = members.findIndex((m) => m !== raftLeader);
    const cut = members[index]!;
    const proxy = await proxies.start(cut.endpoint, prefix, 'cut');
    await waitFor('the proxy knows the controllers', async () => proxy.knownControllers().length === 2, 15_000);
    const client = proxies.client(proxy, { commandTimeout: 15_000 });

    const writer = writeThrough(client);
    const { acked } = writer;
    await waitFor('some writes', async () => acked.length > 200);

    partitions.cut(members, index);
    try {
      // The partition is real: the member runs and answers, without a leader.
      await waitFor('the cut member to lose its Raft leader', async () => leaderless(cut.endpoint), 20_000, 200);

      // A failover while it lasts: decided and published by the controllers on the majority side;
      // the proxy, which cannot hear etcd, applies the new route from a controller.
      await master.process.kill9();
      const route = await waitFor('the failover', async () => {
        const r = await admin.route('cut');
        return r.shards[0]!.master !== master.address ? r : null;
      }, 30_000);
      await waitFor('the cut-off proxy on the new route', async () => proxy.metrics.counters.epoch >= route.epoch, 20_000);
      const countAfter = acked.length;
      await waitFor('writes through the proxy after the failover, the member still cut off', async () => acked.length > countAfter + 200, 20_000);
      expect(await leaderless(cut.endpoint), 'still cut off').toBe(true);
      // The controllers' sessions moved their calls to the other members: the same leader throughout.
      expect(await admin.controllers.leader()).toEqual(leader);
    } finally {
      partitions.heal();
    }

    // Healed: the member catches up, the proxy registers through it again with the route's epoch.
    await waitFor('the member to answer again', () => createEtcdAnswers(cut.endpoint), 20_000, 200);
    const now = await admin.route('cut');
    await waitFor('the proxy registered again, on the current epoch', async () => (await admin.listProxies('cut')).proxies.some((p) => p.epoch === now.epoch), 20_000);
    const countHealed = acked.length;
    await waitFor('writes after the heal', async () => acked.length > countHealed + 200, 20_000);
    // Nor did the heal cost one: the member asks before it campaigns (--pre-vote, as etcd 3.5
    // does by default; without it its higher term forces an election of the whole etcd).
    expect(await admin.controllers.leader()).toEqual(leader);
    await writer.stop();

    const missing = await missingWrites(redis.at(now.shards[0]!.master), acked);
    expect(missing.length, `acknowledged writes missing on the new master (of ${acked.length}; ${writer.errors} errors)`).toBe(0);
  });

  it('the Raft leader cut off: etcd elects another; a switchover asked meanwhile completes, nothing acknowledged is lost', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'lead', { slaves: 1 });
    for (const id of ['r1', 'r2']) world.controller(id, prefix, ['--listen', `127.0.0.1:${await freePort()}`]);
    await waitFor('a leader', async () => admin.controllers.leader(), 15_000);
    await streaming(redis, slaves, master.address);
    const proxy = await proxies.start(world.etcd.endpoint, prefix, 'lead');
    const writer = writeThrough(proxies.client(proxy, { commandTimeout: 15_000 }));
    await waitFor('some writes', async () => writer.acked.length > 200);

    const members = world.etcdCluster!.members;
    const cutLeader = (await world.etcdCluster!.leader())!;
    partitions.cut(members, members.indexOf(cutLeader));
    try {
      await waitFor('another Raft leader', async () => {
        const now = await world.etcdCluster!.leader();
        return now !== null && now !== cutLeader;
      }, 20_000, 200);
      const task = await admin.requestSwitchover('lead', { shard: 's0', requestedBy: 'test' });
      const done = await taskEnded(admin, 'lead', task.id, 40_000);
      expect(done.state, done.error ?? '').toBe('done');
      const route = await admin.route('lead');
      expect(route.shards[0]!.master).toBe(slaves[0]!.address);
      await waitFor('the proxy on the new route', async () => proxy.metrics.counters.epoch >= route.epoch, 20_000);
      const countAfter = writer.acked.length;
      await waitFor('writes through the proxy after the switchover, the old Raft leader still cut off', async () => writer.acked.length > countAfter + 200, 20_000);
    } finally {
      partitions.heal();
    }
    await writer.stop();
    const missing = await missingWrites(redis.at(slaves[0]!.address), writer.acked);
    expect(missing.length, `acknowledged writes missing on the new master (of ${writer.acked.length}; ${writer.errors} errors)`).toBe(0);
  });

  it('controllers without an HTTP API: the cut-off proxy cannot confirm its route, and acknowledges nothing a stalled, failed-over master runs on resuming', async () => {
    const { prefix, admin, master, slaves } = await makeCluster(world, 'noapi', { slaves: 1 });
    // No --listen: the controllers register, but a proxy cannot ask them for the route.
    for (const id of ['n1', 'n2']) world.controller(id, prefix);
    await waitFor('two controllers', async () => (await admin.listControllers()).controllers.length === 2, 30_000);
    await waitFor('a leader', async () => admin.controllers.leader(), 15_000);
    await streaming(redis, slaves, master.address);
    const members = world.etcdCluster!.members;
    const raftLeader = await world.etcdCluster!.leader();
    const index = members.findIndex((m) => m !== raftLeader);
    const proxy = await proxies.start(members[index]!.endpoint, prefix, 'noapi');
    const writer = writeThrough(proxies.client(proxy, { commandTimeout: 15_000 }));
    await waitFor('some writes', async () => writer.acked.length > 200);
    expect(proxy.knownControllers()).toEqual([]);

    // Issue 8's two faults at once: the proxy's only etcd member cut off, the master stalled. The
    // controllers fail it over; it resumes, and runs the write that waited in its socket.
    // A transaction queued before: its EXEC goes out once the master stalls, and is answered by
    // its own callback, not the forwarded commands' path: it must pass the same checks.
    const tx = await raw(proxy.listenAddress);
    expect(await tx.call('MULTI')).toBe('+OK\r\n');
    expect(await tx.call('SET', 'tx:k', '1')).toBe('+QUEUED\r\n');
    partitions.cut(members, index);
    master.process.signal('SIGSTOP');
    const exec = tx.call('EXEC');
    let route;
    try {
      route = await waitFor('the failover', async () => {
        const r = await admin.route('noapi');
        return r.shards[0]!.master !== master.address ? r : null;
      }, 30_000);
      await sleep(1000);
      expect(proxy.guard.blocked, 'past its lease, the proxy must not confirm its route by itself').toBe(true);
    } finally {
      master.process.signal('SIGCONT');
    }
    // The resumed old master runs it with its pre-stall slave count (a success the proxy must not
    // pass on: "may have run") or, having noticed already, refuses it (EXECABORT): never a success.
    expect(await exec, 'the EXEC the resumed old master ran').toMatch(/^-(ERR proxy: cut off from etcd and from every controller, .* may have run|EXECABORT)/);
    await sleep(2000);
    partitions.heal();
    await waitFor('the proxy on the new route', async () => proxy.metrics.counters.epoch >= route.epoch, 30_000);
    const countAfter = writer.acked.length;
    await waitFor('writes after the heal', async () => writer.acked.length > countAfter + 200, 20_000);
    await writer.stop();
    expect(writer.errors, 'refused or answered "may have run" while cut off').toBeGreaterThan(0);
    const missing = await missingWrites(redis.at(route.shards[0]!.master), writer.acked);
    expect(missing.length, `acknowledged writes missing on the new master (of ${writer.acked.length}; ${writer.errors} errors)`).toBe(0);
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether the member answers its status with no Raft leader (through its own JSON gateway, not cfgserver's client). */
async function leaderless(endpoint: string): Promise<boolean> {
  const status = await memberStatus(endpoint);
  return status !== null && (status.leader ?? '0') === '0';
}

/** Whether a fresh client on `endpoint` gets an answer (the member has a leader again). */
async function createEtcdAnswers(endpoint: string): Promise<boolean> {
  const etcd = createEtcd({ endpoints: endpoint, retries: 0 });
  try {
    return await etcd.get('x').string().then(() => true, () => false);
  } finally {
    etcd.close();
  }
}
