import { describe, it, expect } from 'vitest';
import { planReplication, planWriteFence } from '../../src/controller/decide.js';
import type { Observation, Observations } from '../../src/model/observations.js';
import type { ReplicationInfo } from '../../src/model/replication-info.js';
import { routeSchema, type Route } from '../../src/model/schemas.js';

const M0 = '10.0.0.1:6379';
const S0a = '10.0.0.2:6379';
const S0b = '10.0.0.3:6379';
const M1 = '10.0.1.1:6379';
const S1 = '10.0.1.2:6379';

function route(): Route {
  return routeSchema.parse({
    format: 1,
    cluster: 'main',
    epoch: 4,
    slotCount: 1024,
    hash: 'crc16',
    shards: [
      { id: 's0', master: M0, slaves: [S0a, S0b], slots: [[0, 511]] },
      { id: 's1', master: M1, slaves: [S1], slots: [[512, 1023]] },
    ],
    updatedAt: '2024-01-01T00:00:00.000Z',
  });
}

const at = new Date('2024-01-01T00:00:00.000Z');

function master(address: string, connectedSlaves = 1): Observation {
  const info: ReplicationInfo = { role: 'master', masterAddress: null, linkUp: null, linkDownSinceSec: null, offset: 100, connectedSlaves, replId: 'x', replId2: null, secondReplOffset: null, masterReplOffset: 100, keys: 0, priority: null };
  return { address, at, latencyMs: 1, info, error: null };
}

function slave(address: string, of: string, linkUp = true): Observation {
  const info: ReplicationInfo = {
    role: 'slave',
    masterAddress: of,
    linkUp,
    linkDownSinceSec: linkUp ? null : 5,
    offset: 100,
    connectedSlaves: 0,
    replId: 'x',
    replId2: null,
    secondReplOffset: null,
    masterReplOffset: 100,
    keys: 0,
    priority: 100,
  };
  return { address, at, latencyMs: 1, info, error: null };
}

function down(address: string, error = 'connect ECONNREFUSED'): Observation {
  return { address, at, latencyMs: 500, info: null, error };
}

/** Everything as the route says. */
function healthy(): Observations {
  return new Map([
    [M0, master(M0, 2)],
    [S0a, slave(S0a, M0)],
    [S0b, slave(S0b, M0)],
    [M1, master(M1)],
    [S1, slave(S1, M1)],
  ]);
}

describe('planReplication', () => {
  it('plans nothing for healthy shards', () => {
    expect(planReplication(route(), healthy())).toEqual({ actions: [], notes: [], refusals: [] });
  });

  it('plans nothing for a cluster without shards', () => {
    expect(planReplication({ ...route(), shards: [] }, new Map())).toEqual({ actions: [], notes: [], refusals: [] });
  });

  it('makes a slave that is a master replicate from the route master', () => {
    const obs = healthy();
    obs.set(S0b, master(S0b, 0));
    const plan = planReplication(route(), obs);
    expect(plan.actions).toEqual([{ kind: 'replicaof', shard: 's0', instance: S0b, master: M0, reason: expect.any(String) }]);
    expect(plan.actions[0]!.reason).toContain(S0b);
    expect(plan.actions[0]!.reason).toMatch(/is a master/);
    expect(plan.notes).toEqual([]);
  });

  it('refuses to make a slave of a master that is ahead of the route master (it would lose data)', () => {
    const obs = healthy();
    const ahead = master(S0b, 0);
    ahead.info = { ...ahead.info!, offset: 5000 };
    obs.set(S0b, ahead);
    const plan = planReplication(route(), obs);
    expect(plan.actions).toEqual([]);
    expect(plan.refusals).toEqual([
      {
        shard: 's0',
        instance: S0b,
        kind: 'ahead',
        summary: 'holds writes the master lacks',
        reason: expect.stringMatching(/offset 5000, ahead of the route's master .* at 100: making it a slave would discard data/),
      },
    ]);
    expect(plan.refusals[0]!.reason).toContain(`redis-cli -h 10.0.0.3 -p 6379 replicaof 10.0.0.1 6379 && redis-cli -h 10.0.0.3 -p 6379 config rewrite`);
  });

  describe('a returning old master (the route names it a slave, it is a master)', () => {
    const A = 'e058e2f9b133640e932c70a92fc5e8509b220069';
    const B = '8294a81b5683cf970e0a31198dc06ec93a27872d';
    // S0a was promoted at offset 50 of history A, and has taken 1000 bytes since.
    function afterFailover(old: Partial<ReplicationInfo>): Observations {
      const obs = healthy();
      const m = master(M0, 1);
      m.info = { ...m.info!, replId: B, replId2: A, secondReplOffset: 51, offset: 1050, masterReplOffset: 1050, keys: 10 };
      obs.set(M0, m);
      const back = master(S0b, 0);
      back.info = { ...back.info!, ...old };
      obs.set(S0b, back);
      obs.set(S0a, slave(S0a, M0));
      return obs;
    }

    it('is made a slave when it is at or before the point the new master branched off', () => {
      const plan = planReplication(route(), afterFailover({ replId: A, offset: 50, keys: 10 }));
      expect(plan.refusals).toEqual([]);
      expect(plan.actions).toEqual([expect.objectContaining({ kind: 'replicaof', instance: S0b, master: M0 })]);
      expect(plan.actions[0]!.reason).toMatch(/branched from the history of 10\.0\.0\.3:6379 at offset 50/);
    });

    it('is refused when it took writes after the branch point, though its raw offset is lower', () => {
      const plan = planReplication(route(), afterFailover({ replId: A, offset: 90, keys: 11 }));
      expect(plan.actions).toEqual([]);
      expect(plan.refusals).toEqual([{ shard: 's0', instance: S0b, kind: 'branched', summary: 'holds writes the master lacks', reason: expect.stringContaining('40 bytes of writes after the branch') }]);
      expect(plan.refusals[0]!.reason).toMatch(/not done\. To discard its data and make it a slave: redis-cli -h 10\.0\.0\.3 -p 6379 replicaof 10\.0\.0\.1 6379/);
    });

    it('is refused when restarted from its files (new history, offset 0) with keys in it', () => {
      const plan = planReplication(route(), afterFailover({ replId: 'f'.repeat(40), offset: 0, keys: 3 }));
      expect(plan.actions).toEqual([]);
      expect(plan.refusals).toEqual([expect.objectContaining({ instance: S0b, kind: 'unrelated', summary: 'holds data from another replication history' })]);
    });

    it('is made a slave when restarted empty', () => {
      const plan = planReplication(route(), afterFailover({ replId: 'f'.repeat(40), offset: 0, keys: 0 }));
      expect(plan.refusals).toEqual([]);
      expect(plan.actions).toEqual([expect.objectContaining({ kind: 'replicaof', instance: S0b, master: M0, reason: expect.stringContaining('holds no key') })]);
    });
  });

  it('re-points a slave that replicates from the wrong master', () => {
    const obs = healthy();
    obs.set(S1, slave(S1, M0));
    const plan = planReplication(route(), obs);
    expect(plan.actions).toHaveLength(1);
    const action = plan.actions[0]!;
    expect(action).toMatchObject({ kind: 'replicaof', shard: 's1', instance: S1, master: M1 });
    expect(action.reason).toContain(M0);
    expect(action.reason).toContain(M1);
    expect(plan.notes).toEqual([]);
  });

  it('promotes a route master that is a slave', () => {
    const obs = healthy();
    obs.set(M1, slave(M1, S1));
    obs.set(S1, master(S1));
    const plan = planReplication(route(), obs);
    expect(plan.actions).toContainEqual({ kind: 'promote', shard: 's1', instance: M1, reason: expect.stringContaining(S1) });
    // Its slave, a master now, is pointed back at the route master.
    expect(plan.actions).toContainEqual(expect.objectContaining({ kind: 'replicaof', shard: 's1', instance: S1, master: M1 }));
    expect(plan.actions).toHaveLength(2);
    // The promotion comes first.
    expect(plan.actions[0]!.kind).toBe('promote');
    expect(plan.actions.every((a) => a.shard === 's1')).toBe(true);
  });

  it('leaves the slaves of an unreachable master alone, with a note', () => {
    const obs = healthy();
    obs.set(M0, down(M0, 'connect ECONNREFUSED 10.0.0.1:6379'));
    // Even a slave that looks wrong is left alone while its master is unreachable.
    obs.set(S0a, master(S0a, 0));
    const plan = planReplication(route(), obs);
    expect(plan.actions).toEqual([]);
    expect(plan.notes).toHaveLength(1);
    expect(plan.notes[0]).toContain('shard s0');
    expect(plan.notes[0]).toContain(M0);
    expect(plan.notes[0]).toContain('ECONNREFUSED');
  });

  it('treats a master that was not probed as unreachable', () => {
    const obs = healthy();
    obs.delete(M1);
    const plan = planReplication(route(), obs);
    expect(plan.actions).toEqual([]);
    expect(plan.notes).toEqual([expect.stringMatching(/shard s1: master 10\.0\.1\.1:6379 is unreachable \(not probed\)/)]);
  });

  it('only notes an unreachable slave', () => {
    const obs = healthy();
    obs.set(S0a, down(S0a, 'timeout'));
    const plan = planReplication(route(), obs);
    expect(plan.actions).toEqual([]);
    expect(plan.notes).toHaveLength(1);
    expect(plan.notes[0]).toContain(S0a);
    expect(plan.notes[0]).toContain('timeout');
    expect(plan.notes[0]).toContain('shard s0');
  });

  it('only notes a slave of the right master whose link is down', () => {
    const obs = healthy();
    obs.set(S1, slave(S1, M1, false));
    const plan = planReplication(route(), obs);
    expect(plan.actions).toEqual([]);
    expect(plan.notes).toEqual([expect.stringContaining(`slave ${S1} has its link to ${M1} down`)]);
  });

  it('handles several shards independently', () => {
    const obs = healthy();
    obs.set(M0, down(M0));
    obs.set(S1, master(S1));
    const plan = planReplication(route(), obs);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'replicaof', shard: 's1', instance: S1, master: M1 })]);
    expect(plan.notes).toEqual([expect.stringContaining('shard s0')]);
  });
});

describe('planWriteFence', () => {
  const policy = { writeFence: true, writeFenceLagSeconds: 2 };
  const none = new Map<string, number>();
  /** A master whose connected slaves are all online, each `lag` seconds since its last ack. */
  function synced(address: string, connectedSlaves = 1, lag = 0): Observation {
    const obs = master(address, connectedSlaves);
    return { ...obs, info: { ...obs.info!, onlineSlaveLagsSec: Array<number>(connectedSlaves).fill(lag) } };
  }
  /** A master's observation with the fence on (INFO shows min_slaves_good_slaves). */
  function fenced(address: string, connectedSlaves = 1, goodSlaves = connectedSlaves): Observation {
    const obs = synced(address, connectedSlaves);
    return { ...obs, info: { ...obs.info!, goodSlaves } };
  }
  function syncedEverywhere(): Observations {
    const obs = healthy();
    obs.set(M0, synced(M0, 2));
    obs.set(M1, synced(M1));
    return obs;
  }
  function fencedEverywhere(): Observations {
    const obs = healthy();
    obs.set(M0, fenced(M0, 2));
    obs.set(M1, fenced(M1));
    return obs;
  }
  const confirmedAt2 = new Map([[M0, 2], [M1, 2]]);

  it('fences every master that has a live slave', () => {
    const actions = planWriteFence(route(), syncedEverywhere(), policy, none);
    expect(actions).toEqual([
      { kind: 'fence', shard: 's0', instance: M0, on: true, minReplicas: 1, maxLagSeconds: 2, reason: expect.stringContaining(`${S0a}, ${S0b} replicate from ${M0} with the link up`) },
      { kind: 'fence', shard: 's1', instance: M1, on: true, minReplicas: 1, maxLagSeconds: 2, reason: expect.stringContaining('stops acknowledging writes after 2 s') },
    ]);
  });

  it('plans nothing where the fence is on with the lag this leader confirmed', () => {
    expect(planWriteFence(route(), fencedEverywhere(), policy, confirmedAt2)).toEqual([]);
  });

  it('asks once per leader to confirm the lag of a master it finds fenced, and again when the policy changes it', () => {
    const unknown = planWriteFence(route(), fencedEverywhere(), policy, new Map([[M0, 2]]));
    expect(unknown).toEqual([expect.objectContaining({ instance: M1, on: true, reason: expect.stringContaining('has not confirmed its lag bound') })]);
    const changed = planWriteFence(route(), fencedEverywhere(), { ...policy, writeFenceLagSeconds: 5 }, confirmedAt2);
    expect(changed.map((a) => [a.instance, a.kind === 'fence' && a.maxLagSeconds])).toEqual([[M0, 5], [M1, 5]]);
    expect(changed[0]!.reason).toBe('the fence lag bound is now 5 s (was 2 s)');
  });

  it("unfences a master whose only slave is dead, and says why", () => {
    const obs = fencedEverywhere();
    obs.set(S1, down(S1));
    obs.set(M1, fenced(M1, 0));
    expect(planWriteFence(route(), obs, policy, confirmedAt2)).toEqual([
      { kind: 'fence', shard: 's1', instance: M1, on: false, minReplicas: 0, maxLagSeconds: 2, reason: `${M1} has no live slave (${S1} unreachable; the master counts 0 connected): fenced, it would refuse every write` },
    ]);
  });

  it("sets a split's raised count where it fences, confirms or changes the lag, and leaves it alone where nothing is to do", () => {
    const raised = new Map([[M0, 2]]);
    expect(planWriteFence(route(), syncedEverywhere(), policy, none, raised).map((a) => [a.instance, a.kind === 'fence' && a.minReplicas])).toEqual([[M0, 2], [M1, 1]]);
    expect(planWriteFence(route(), fencedEverywhere(), policy, new Map([[M1, 2]]), raised).map((a) => [a.instance, a.kind === 'fence' && a.minReplicas])).toEqual([[M0, 2]]);
    expect(planWriteFence(route(), fencedEverywhere(), policy, confirmedAt2, raised)).toEqual([]);
    // Turned on only once as many slaves acknowledge as the raised fence asks for: M1 has one.
    expect(planWriteFence(route(), syncedEverywhere(), policy, none, new Map([[M1, 2]])).map((a) => a.instance)).toEqual([M0]);
  });

  it('keeps the fence while one slave of several is live', () => {
    const obs = fencedEverywhere();
    obs.set(S0a, down(S0a));
    obs.set(M0, fenced(M0, 1));
    expect(planWriteFence(route(), obs, policy, confirmedAt2)).toEqual([]);
  });

  it('unfences when the slave is alive but its link is down, or it follows another master', () => {
    const obs = fencedEverywhere();
    obs.set(S1, slave(S1, M1, false));
    expect(planWriteFence(route(), obs, policy, confirmedAt2)).toEqual([expect.objectContaining({ instance: M1, on: false, reason: expect.stringContaining(`${S1} has its link down`) })]);
    obs.set(S1, slave(S1, M0));
    expect(planWriteFence(route(), obs, policy, confirmedAt2)).toEqual([expect.objectContaining({ instance: M1, on: false, reason: expect.stringContaining(`${S1} does not replicate from it`) })]);
  });

  it('unfences when the master counts no connected slave, whatever the slave says', () => {
    const obs = fencedEverywhere();
    obs.set(M1, fenced(M1, 0));
    expect(planWriteFence(route(), obs, policy, confirmedAt2)).toEqual([expect.objectContaining({ instance: M1, on: false, reason: expect.stringContaining(`${S1} linked; the master counts 0 connected`) })]);
  });

  it('does not fence a master whose slave is still in its first sync or has not acknowledged within the bound', () => {
    const obs = syncedEverywhere();
    obs.set(M0, master(M0, 2)); // connected, none online yet
    obs.set(M1, synced(M1, 1, 2)); // online, but 2 s since its last ack with a 2 s bound
    expect(planWriteFence(route(), obs, policy, none)).toEqual([]);
    obs.set(M1, synced(M1, 1, 1));
    expect(planWriteFence(route(), obs, policy, none).map((a) => a.instance)).toEqual([M1]);
  });

  it('does not fence a master with no live slave, and unfences one with no slave in the route', () => {
    const obs = syncedEverywhere();
    obs.set(S1, down(S1));
    obs.set(M1, synced(M1, 0));
    expect(planWriteFence(route(), obs, policy, none).map((a) => a.instance)).toEqual([M0]);
    const alone = { ...route(), shards: [{ ...route().shards[1]!, slaves: [] }] };
    expect(planWriteFence(alone, new Map([[M1, fenced(M1, 0)]]), policy, confirmedAt2)).toEqual([expect.objectContaining({ instance: M1, on: false, reason: expect.stringContaining('none in the route') })]);
  });

  it('keeps a fenced master fenced while its slaves are linked but none acknowledged within the lag', () => {
    const obs = fencedEverywhere();
    obs.set(M1, fenced(M1, 1, 0));
    expect(planWriteFence(route(), obs, policy, confirmedAt2)).toEqual([]);
  });

  it('leaves alone a master it cannot reach and one that is still a slave, and never touches route slaves', () => {
    const obs = syncedEverywhere();
    obs.set(M0, down(M0));
    obs.set(M1, slave(M1, S1));
    // S1 is a master with the fence on, but the route names it a slave: not the fence's business.
    obs.set(S1, fenced(S1, 1));
    expect(planWriteFence(route(), obs, policy, none)).toEqual([]);
  });

  it('with writeFence off, unfences where it is on and fences nothing', () => {
    const obs = fencedEverywhere();
    obs.set(M1, synced(M1));
    expect(planWriteFence(route(), obs, { ...policy, writeFence: false }, confirmedAt2)).toEqual([
      expect.objectContaining({ instance: M0, on: false, reason: "the cluster's failover policy has writeFence off" }),
    ]);
  });
});
