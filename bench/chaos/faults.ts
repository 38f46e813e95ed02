/**
 * The faults, one at a time. Each picks its target with the run's seeded generator, does its
 * damage, undoes what a machine would (a restart, a SIGCONT), and returns what it did. Durations
 * follow the cluster's settings: a stall outlasts the down window (or the lease), so that the
 * cluster has to act on it.
 */
import { follow } from '../../src/cli/commands/failover.js';
import { errorMessage } from '../../src/model/errors.js';
import { isTerminal } from '../../src/model/schemas.js';
import { waitFor } from '../../src/playground/processes.js';
import type { RevisionClock } from './history.js';
import { pick, type FaultKind } from './profile.js';
import { CLUSTER, LEASE_TTL_SECONDS, PROBE, type ChaosSetup } from './setup.js';

export interface FaultRun {
  kind: FaultKind;
  target: string;
  startedAt: number;
  /** When the damage was undone (restart or SIGCONT done, switchover ended). */
  endedAt: number;
  /** What happened worth saying: the switchover's outcome, a failover that did not come. */
  note: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A master stays stopped this long past the down window, so that the controllers fail it over. */
const STALL_BEYOND_DOWN_MS = 2000;
/** A killed master is restarted this long after the route names another (or after giving up waiting). */
const MASTER_RESTART_AFTER_MS = 2000;
const ETCD_DOWN_MS = 4000;
/** How long the proxy stays cut off from etcd after the stalled master resumed. */
const PROXY_CUT_AFTER_MASTER_MS = 2000;
const PROXY_STOP_MS = 3000;

export async function injectFault(kind: FaultKind, setup: ChaosSetup, clock: RevisionClock, random: () => number): Promise<FaultRun> {
  const startedAt = Date.now();
  const done = (target: string, note = ''): FaultRun => ({ kind, target, startedAt, endedAt: Date.now(), note });
  switch (kind) {
    case 'kill -9 master': {
      const { shard, master } = await randomMaster(setup, random);
      await setup.redis.get(master)!.process.kill9();
      const note = await failedOver(setup, shard, master);
      await sleep(MASTER_RESTART_AFTER_MS);
      await setup.restartRedis(master);
      return done(`${shard} ${master}`, note);
    }
    case 'SIGSTOP master': {
      const { shard, master } = await randomMaster(setup, random);
      const server = setup.redis.get(master)!;
      server.process.signal('SIGSTOP');
      await sleep(PROBE.downAfterMs + STALL_BEYOND_DOWN_MS);
      const note = (await setup.admin.route(CLUSTER)).shards.find((s) => s.id === shard)?.master === master ? 'not failed over during the stall' : '';
      server.process.signal('SIGCONT');
      return done(`${shard} ${master}`, note);
    }
    case 'kill -9 leader controller': {
      const id = await currentLeader(clock);
      const term = await leaderTerm(setup);
      await setup.controllers.get(id)!.kill9();
      await sleep(1000);
      setup.startController(id);
      return done(id, await newTerm(setup, term));
    }
    case 'SIGSTOP leader controller': {
      const id = await currentLeader(clock);
      const term = await leaderTerm(setup);
      const p = setup.controllers.get(id)!;
      p.signal('SIGSTOP');
      await sleep(LEASE_TTL_SECONDS * 1000 + 2000);
      p.signal('SIGCONT');
      return done(id, await newTerm(setup, term));
    }
    case 'kill -9 proxy': {
      const proxy = pick(random, setup.proxies);
      await proxy.process.kill9();
      await sleep(1000);
      setup.startProxy(proxy);
      return done(proxy.id);
    }
    case 'SIGSTOP proxy': {
      const proxy = pick(random, setup.proxies);
      proxy.process.signal('SIGSTOP');
      await sleep(PROXY_STOP_MS);
      proxy.process.signal('SIGCONT');
      return done(proxy.id);
    }
    case 'kill -9 etcd member': {
      const member = pick(random, setup.etcd.members);
      const leader = (await setup.etcd.leader()) === member ? ' (Raft leader)' : '';
      await member.kill9();
      await sleep(ETCD_DOWN_MS);
      await member.restart();
      return done(`${member.name}${leader}`);
    }
    case 'SIGSTOP etcd member': {
      const member = pick(random, setup.etcd.members);
      const leader = (await setup.etcd.leader()) === member ? ' (Raft leader)' : '';
      member.signal('SIGSTOP');
      await sleep(ETCD_DOWN_MS);
      member.signal('SIGCONT');
      return done(`${member.name}${leader}`);
    }
    case 'cut etcd member': {
      // A partition, not a stop: the member runs and answers its clients without a Raft leader
      // (a proxy whose only endpoint it is is cut off from etcd), its peer links drop everything.
      const member = pick(random, setup.etcd.members);
      const leader = (await setup.etcd.leader()) === member ? ' (Raft leader)' : '';
      setup.partitions.cut(setup.etcd.members, setup.etcd.members.indexOf(member));
      try {
        await sleep(ETCD_DOWN_MS);
      } finally {
        setup.partitions.heal();
      }
      return done(`${member.name}${leader}`);
    }
    case 'SIGSTOP master, proxy cut off': {
      // Two faults at once, issue 8's: a master stalls while a proxy cannot hear etcd (its only
      // member cut off). The controllers fail the master over; the old master resumes while the
      // proxy still learns routes only from the controllers.
      const { shard, master } = await randomMaster(setup, random);
      const proxy = pick(random, setup.proxies);
      const members = setup.etcd.members;
      const index = members.findIndex((m) => m.endpoint === proxy.etcdEndpoint);
      const server = setup.redis.get(master)!;
      setup.partitions.cut(members, index);
      let note = '';
      try {
        server.process.signal('SIGSTOP');
        try {
          note = await failedOver(setup, shard, master);
          await sleep(STALL_BEYOND_DOWN_MS);
        } finally {
          server.process.signal('SIGCONT');
        }
        await sleep(PROXY_CUT_AFTER_MASTER_MS);
      } finally {
        setup.partitions.heal();
      }
      return done(`${shard} ${master}, ${proxy.id} (${members[index]!.name})`, note);
    }
    case 'switchover': {
      const { shard, master } = await randomMaster(setup, random);
      try {
        const task = await setup.admin.requestSwitchover(CLUSTER, { shard, requestedBy: 'chaos' });
        const final = await follow(setup.admin, task, 30_000, () => undefined);
        const note = isTerminal(final) ? (final.state === 'done' ? '' : `switchover ${final.state}: ${final.error}`) : `switchover still ${final.state} after 30 s`;
        return done(`${shard} ${master}`, note);
      } catch (err) {
        return done(`${shard} ${master}`, `switchover not started: ${errorMessage(err)}`);
      }
    }
  }
}

async function randomMaster(setup: ChaosSetup, random: () => number): Promise<{ shard: string; master: string }> {
  const shard = pick(random, (await setup.admin.route(CLUSTER)).shards);
  return { shard: shard.id, master: shard.master };
}

/** The leader key's create revision: one per leadership term. */
async function leaderTerm(setup: ChaosSetup): Promise<string | null> {
  return (await setup.client.get(setup.keys.leader()).exec()).kvs[0]?.create_revision ?? null;
}

/** '' once another term holds the leader key (so that the change is charged to this fault); a note if none in 15 s. */
async function newTerm(setup: ChaosSetup, before: string | null): Promise<string> {
  try {
    await waitFor('a new leadership term', async () => {
      const now = await leaderTerm(setup);
      return now !== null && now !== before;
    }, 15_000, 100);
    return '';
  } catch {
    return 'no new leader within 15 s';
  }
}

async function currentLeader(clock: RevisionClock): Promise<string> {
  return waitFor('a leader controller', async () => clock.leader, 15_000, 100);
}

/** '' once the route names another master for `shard`; a note if that did not happen in 20 s. */
async function failedOver(setup: ChaosSetup, shard: string, old: string): Promise<string> {
  try {
    await waitFor(`a failover of ${shard}`, async () => (await setup.admin.route(CLUSTER)).shards.find((s) => s.id === shard)?.master !== old, 20_000, 200);
    return '';
  } catch {
    return 'not failed over within 20 s';
  }
}
