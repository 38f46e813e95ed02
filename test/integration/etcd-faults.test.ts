/**
 * etcd member faults under real etcd processes: a hung member, a killed Raft leader, etcd
 * unreachable at start, a lease lost the moment it is granted. The elections run in this process
 * (the same Elector the controller uses), each on its own etcd client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Elector } from '../../src/election/elector.js';
import { Session } from '../../src/election/session.js';
import { freePort, startEtcd, startEtcdCluster, waitFor, type EtcdCluster, type EtcdMember } from '../../src/playground/processes.js';
import { createEtcd } from '../../src/store/etcd.js';
import { Keys } from '../../src/store/keys.js';
import { log, randomPrefix } from '../helpers/servers.js';

/** The controllers' default TTL: what the timing must survive in production. */
const TTL = 3;

interface Candidate {
  elector: Elector;
  elected: number;
  deposed: string[];
  sessions: number;
  close(): Promise<void>;
}

function candidate(endpoints: string[], keys: Keys, id: string): Candidate {
  const etcd = createEtcd({ endpoints });
  const elector = new Elector({ etcd, keys, id, ttlSeconds: TTL, log, backoff: { initialMs: 100, maxMs: 1000 } });
  const c: Candidate = {
    elector,
    elected: 0,
    deposed: [],
    sessions: 0,
    async close() {
      await elector.stop();
      etcd.close();
    },
  };
  elector.on('elected', () => c.elected++);
  elector.on('deposed', (reason) => c.deposed.push(reason));
  elector.on('session', () => c.sessions++);
  elector.start();
  return c;
}

describe('etcd member faults (3 members on loopback)', () => {
  let dir: string;
  let cluster: EtcdCluster;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cfgserver-etcd-faults-'));
    cluster = await startEtcdCluster(dir, 3);
  }, 30_000);

  afterAll(async () => {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The members in an order that puts `first` first: a session starts its keep-alives there. */
  function endpointsFrom(first: EtcdMember): string[] {
    return [first, ...cluster.members.filter((m) => m !== first)].map((m) => m.endpoint);
  }

  it('a leader whose keep-alives go to a member hung for 10 s keeps its lease and its leadership', async () => {
    const etcdLeader = await waitFor('an etcd leader', () => cluster.leader());
    const hung = cluster.members.find((m) => m !== etcdLeader)!;
    const keys = new Keys(randomPrefix());
    const a = candidate(endpointsFrom(hung), keys, 'a');
    await waitFor('a to lead', async () => a.elector.isLeader(), 10_000);
    const b = candidate(endpointsFrom(etcdLeader), keys, 'b');
    try {
      await waitFor('b to campaign', async () => b.sessions === 1, 10_000);
      expect(a.elector.currentSession()?.endpoint).toBe(hung.endpoint);
      // A follower, not the Raft leader: etcd itself stays available, so any loss would be ours.
      hung.signal('SIGSTOP');
      const until = Date.now() + 10_000;
      try {
        while (Date.now() < until) {
          expect(a.elector.isLeader(), `a lost leadership while ${hung.name} was stopped: ${a.deposed.join('; ')}`).toBe(true);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        hung.signal('SIGCONT');
      }
      // Its keep-alives moved to a member that answers, and never missed the deadline.
      expect(a.elector.currentSession()?.endpoint).not.toBe(hung.endpoint);
      expect(a.deposed).toEqual([]);
      expect(a.sessions).toBe(1);
      expect(b.elected).toBe(0);
    } finally {
      await b.close();
      await a.close();
    }
  }, 40_000);

  it('kill -9 of the etcd leader: at most one leader change, and a leader again within TTL + 3 s', async () => {
    const keys = new Keys(randomPrefix());
    const endpoints = cluster.members.map((m) => m.endpoint);
    const a = candidate(endpoints, keys, 'a');
    await waitFor('a to lead', async () => a.elector.isLeader(), 10_000);
    const b = candidate(endpoints, keys, 'b');
    try {
      await waitFor('b to campaign', async () => b.sessions === 1, 10_000);
      const etcdLeader = await waitFor('an etcd leader', () => cluster.leader());
      const electedBefore = a.elected + b.elected;
      const killedAt = Date.now();
      await etcdLeader.kill9();
      // etcd elects a new leader in about 1.2 s and extends every lease on promotion; a keep-alive
      // round spans the gap unless the 2.5 s budget after the last answered send runs out first.
      await waitFor('a leader after the etcd leader died', async () => a.elector.isLeader() || b.elector.isLeader(), (TTL + 3) * 1000);
      // Watch a little longer: a leader that is about to lose its lease would do so within the TTL.
      const settle = Date.now() + TTL * 1000;
      while (Date.now() < settle) {
        expect([a.elector.isLeader(), b.elector.isLeader()].filter(Boolean).length).toBeLessThanOrEqual(1);
        await new Promise((r) => setTimeout(r, 100));
      }
      await waitFor('a leader', async () => a.elector.isLeader() || b.elector.isLeader(), (TTL + 3) * 1000);
      const changes = a.elected + b.elected - electedBefore;
      expect(changes, `leader changes after the kill (a deposed: ${a.deposed.join('; ')}; b deposed: ${b.deposed.join('; ')})`).toBeLessThanOrEqual(1);
      expect(Date.now() - killedAt).toBeLessThan(30_000);
    } finally {
      await b.close();
      await a.close();
      // The member comes back on its data directory, for whatever runs next on this cluster.
      for (const m of cluster.members) if (!m.process.running()) await m.restart();
    }
  }, 60_000);
});

describe('elections and sessions that start or end badly (one etcd)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cfgserver-etcd-faults-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('an election whose etcd is unreachable at start, or whose lease is lost, campaigns again by itself', async () => {
    const port = await freePort();
    const keys = new Keys(randomPrefix());
    const a = candidate([`127.0.0.1:${port}`], keys, 'a');
    const etcdStarted: { stop(): Promise<void> }[] = [];
    const admin = createEtcd({ endpoints: `127.0.0.1:${port}` });
    try {
      await waitFor('a to have failed twice with etcd down', async () => a.elector.failedAttempts >= 2, 15_000);
      expect(a.elector.isLeader()).toBe(false);
      etcdStarted.push(await startEtcd(dir, port));
      await waitFor('a to lead once etcd is up', async () => a.elector.isLeader(), 10_000);

      // The lease disappears under it (revoked, as if it had expired while a was paused).
      const lease = a.elector.currentSession()!.leaseId;
      await admin.leaseClient.leaseRevoke({ ID: lease });
      await waitFor('a to notice and step down', async () => a.deposed.length === 1, 5_000);
      await waitFor('a to lead again under a new lease', async () => a.elector.isLeader() && a.elector.currentSession()?.leaseId !== lease, 10_000);
      expect(a.sessions).toBe(2);
    } finally {
      await a.close();
      admin.close();
      for (const e of etcdStarted) await e.stop();
    }
  }, 60_000);

  it("a session's loss is observed even when the lease is gone right after it opens", async () => {
    const etcdServer = await startEtcd(dir);
    const etcd = createEtcd({ endpoints: etcdServer.endpoint });
    try {
      // A listener given to open() is in place before the lease exists.
      let fromOpen: string | null = null;
      const s1 = await Session.open(etcd, 2, log, { onLost: (r) => (fromOpen = r) });
      await etcd.leaseClient.leaseRevoke({ ID: s1.leaseId });
      await waitFor('the loss, through the listener given to open()', async () => fromOpen, 3_000);
      expect(fromOpen).toMatch(/expired/);

      // A listener attached only after the loss (as after an await) still hears of it.
      const s2 = await Session.open(etcd, 2, log);
      await etcd.leaseClient.leaseRevoke({ ID: s2.leaseId });
      await waitFor('s2 to know its lease is gone', async () => s2.lost !== null, 3_000);
      const late = await new Promise<string>((resolve) => s2.onLost(resolve));
      expect(late).toMatch(/expired/);
      expect(s2.isAlive()).toBe(false);
    } finally {
      etcd.close();
      await etcdServer.stop();
    }
  }, 30_000);
});

describe('require-leader (etcd hasleader metadata)', () => {
  it('a member that has lost its Raft leader refuses at once instead of letting the call wait', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfgserver-etcd-faults-'));
    const cluster = await startEtcdCluster(dir, 3);
    const [a, b, alone] = cluster.members as [EtcdMember, EtcdMember, EtcdMember];
    const etcd = createEtcd({ endpoints: alone.endpoint, retries: 0 });
    try {
      await a.kill9();
      await b.kill9();
      // The survivor keeps its old leader until its election timeout passes; then it has none.
      const error = await waitFor('the lone member to answer "no leader"', async () => {
        const started = Date.now();
        const err = await etcd.get('x').string().then(() => null, (e: unknown) => e as Error);
        return err && /no leader/.test(err.message) ? { err, tookMs: Date.now() - started } : null;
      }, 20_000, 200);
      // Without hasleader the same read waits out its whole deadline (3 s here) on every attempt.
      expect(error.tookMs).toBeLessThan(1000);
    } finally {
      etcd.close();
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});
