import { describe, it, expect } from 'vitest';
import { chooseSlave, stalenessBoundMs, type Choice, type ChooseOptions } from '../../src/controller/choose.js';
import type { Observation, Observations } from '../../src/model/observations.js';
import type { ReplicationInfo } from '../../src/model/replication-info.js';
import { failoverPolicy, shardSchema, type FailoverPolicy, type Shard } from '../../src/model/schemas.js';

const M = '10.0.0.1:6379';
const A = '10.0.0.2:6379';
const B = '10.0.0.3:6379';
const C = '10.0.0.4:6379';
const OTHER_MASTER = '10.9.9.9:6379';

const at = new Date('2024-01-01T00:00:00.000Z');

function shard(slaves: string[] = [A, B, C], master = M): Shard {
  return shardSchema.parse({ id: 's0', master, slaves, slots: [[0, 1023]] });
}

interface SlaveOpts {
  of?: string;
  offset?: number;
  priority?: number | null;
  linkUp?: boolean;
  linkDownSinceSec?: number | null;
}

function slave(address: string, o: SlaveOpts = {}): Observation {
  const linkUp = o.linkUp ?? true;
  const info: ReplicationInfo = {
    role: 'slave',
    masterAddress: o.of ?? M,
    linkUp,
    linkDownSinceSec: o.linkDownSinceSec !== undefined ? o.linkDownSinceSec : linkUp ? null : 1,
    offset: o.offset ?? 1000,
    connectedSlaves: 0,
    replId: 'repl-a',
    replId2: null,
    secondReplOffset: null,
    masterReplOffset: o.offset ?? 1000,
    keys: 0,
    priority: o.priority !== undefined ? o.priority : 100,
  };
  return { address, at, latencyMs: 1, info, error: null };
}

function master(address: string, offset = 1000): Observation {
  const info: ReplicationInfo = { role: 'master', masterAddress: null, linkUp: null, linkDownSinceSec: null, offset, connectedSlaves: 0, replId: 'repl-b', replId2: null, secondReplOffset: null, masterReplOffset: offset, keys: 0, priority: null };
  return { address, at, latencyMs: 1, info, error: null };
}

function unreachable(address: string, error = 'connect ECONNREFUSED'): Observation {
  return { address, at, latencyMs: 500, info: null, error };
}

function obs(...list: Observation[]): Observations {
  return new Map(list.map((o) => [o.address, o]));
}

function policy(overrides: Partial<FailoverPolicy> = {}): FailoverPolicy {
  return failoverPolicy.parse(overrides);
}

/** downAfterMs 3 s and a master down for 2 s: the default bound is 10 × 3 + 2 = 32 s. */
function opts(overrides: Partial<ChooseOptions> = {}): ChooseOptions {
  return { policy: policy(), downAfterMs: 3000, masterDownForMs: 2000, ...overrides };
}

function chosen(choice: Choice): { target: string; why: string } {
  if (!choice.ok) throw new Error(`expected a choice, got reasons: ${choice.reasons.join('; ')}`);
  return choice;
}

function refused(choice: Choice): string[] {
  if (choice.ok) throw new Error(`expected a refusal, got ${choice.target} (${choice.why})`);
  return choice.reasons;
}

describe('stalenessBoundMs', () => {
  it('defaults to 10 × the down window + the time the master has been down', () => {
    expect(stalenessBoundMs({ policy: policy(), downAfterMs: 3000, masterDownForMs: 2000 })).toBe(32_000);
    expect(stalenessBoundMs({ policy: policy(), downAfterMs: 500, masterDownForMs: 0 })).toBe(5_000);
    expect(stalenessBoundMs({ policy: policy({ maxLinkDownMs: null }), downAfterMs: 1000, masterDownForMs: 7000 })).toBe(17_000);
  });

  it('uses the policy bound when one is set, even 0', () => {
    expect(stalenessBoundMs({ policy: policy({ maxLinkDownMs: 4500 }), downAfterMs: 3000, masterDownForMs: 2000 })).toBe(4500);
    expect(stalenessBoundMs({ policy: policy({ maxLinkDownMs: 0 }), downAfterMs: 3000, masterDownForMs: 2000 })).toBe(0);
  });

  it('the default policy leaves the bound to the Sentinel rule', () => {
    expect(failoverPolicy.parse({}).maxLinkDownMs).toBeNull();
  });
});

describe('chooseSlave', () => {
  it('picks the slave with the highest offset', () => {
    const c = chosen(chooseSlave(shard(), obs(slave(A, { offset: 100 }), slave(B, { offset: 300 }), slave(C, { offset: 200 })), opts()));
    expect(c.target).toBe(B);
    expect(c.why).toContain(`${B} has priority 100 and offset 300`);
  });

  it('a lower replica-priority wins over a higher offset', () => {
    const c = chosen(chooseSlave(shard(), obs(slave(A, { offset: 900, priority: 100 }), slave(B, { offset: 100, priority: 10 }), slave(C, { offset: 500, priority: 50 })), opts()));
    expect(c.target).toBe(B);
    expect(c.why).toContain(`${B} has priority 10 and offset 100`);
  });

  it('among equal priority and offset, the smallest address wins, whatever the order of the slaves', () => {
    const observations = obs(slave(A, { offset: 500 }), slave(B, { offset: 500 }), slave(C, { offset: 500 }));
    expect(chosen(chooseSlave(shard([C, B, A]), observations, opts())).target).toBe(A);
    expect(chosen(chooseSlave(shard([B, C, A]), observations, opts())).target).toBe(A);
    expect(chosen(chooseSlave(shard([C, B]), observations, opts())).target).toBe(B);
  });

  it('a slave without a reported priority counts as priority 100', () => {
    const c = chosen(chooseSlave(shard([A, B]), obs(slave(A, { priority: null, offset: 10 }), slave(B, { priority: 101, offset: 999 })), opts()));
    expect(c.target).toBe(A);
    expect(c.why).toContain(`${A} has priority 100 and offset 10`);
    expect(chosen(chooseSlave(shard([A, B]), obs(slave(A, { priority: null, offset: 999 }), slave(B, { priority: 99, offset: 10 })), opts())).target).toBe(B);
  });

  it('never promotes a slave with replica-priority 0, and says why', () => {
    const c = chosen(chooseSlave(shard([A, B]), obs(slave(A, { priority: 0, offset: 999 }), slave(B, { offset: 1 })), opts()));
    expect(c.target).toBe(B);
    expect(c.why).toContain(`${A} has replica-priority 0`);

    const reasons = refused(chooseSlave(shard([A]), obs(slave(A, { priority: 0 })), opts()));
    expect(reasons).toEqual([`${A} has replica-priority 0: never promoted`]);
  });

  it('excludes an unreachable slave, with the probe error', () => {
    const c = chosen(chooseSlave(shard([A, B]), obs(unreachable(A, 'connect ETIMEDOUT'), slave(B, { offset: 1 })), opts()));
    expect(c.target).toBe(B);
    const reasons = refused(chooseSlave(shard([A]), obs(unreachable(A, 'connect ETIMEDOUT')), opts()));
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toContain(`${A} is unreachable`);
    expect(reasons[0]).toContain('connect ETIMEDOUT');
  });

  it('excludes a slave that was never probed', () => {
    const reasons = refused(chooseSlave(shard([A]), obs(), opts()));
    expect(reasons).toEqual([`${A} is unreachable (not probed)`]);
  });

  it('excludes an instance that answers as a master', () => {
    const c = chosen(chooseSlave(shard([A, B]), obs(master(A, 5000), slave(B, { offset: 1 })), opts()));
    expect(c.target).toBe(B);
    const reasons = refused(chooseSlave(shard([A]), obs(master(A)), opts()));
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toContain(`${A} is a master`);
  });

  it('excludes a slave of another master: another replication history', () => {
    const c = chosen(chooseSlave(shard([A, B]), obs(slave(A, { of: OTHER_MASTER, offset: 9999 }), slave(B, { offset: 1 })), opts()));
    expect(c.target).toBe(B);
    const reasons = refused(chooseSlave(shard([A]), obs(slave(A, { of: OTHER_MASTER })), opts()));
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toContain(`replicates from ${OTHER_MASTER}`);
    expect(reasons[0]).toContain('another replication history');
  });

  it('excludes a slave whose link has been down longer than the bound; accepts one down for less', () => {
    // Bound: 10 × 3000 + 2000 = 32 s.
    const reasons = refused(chooseSlave(shard([A]), obs(slave(A, { linkUp: false, linkDownSinceSec: 33 })), opts()));
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toContain(`${A} is too stale`);
    expect(reasons[0]).toContain('33 s');
    expect(reasons[0]).toContain('32 s');

    expect(chosen(chooseSlave(shard([A]), obs(slave(A, { linkUp: false, linkDownSinceSec: 31 })), opts())).target).toBe(A);
    expect(chosen(chooseSlave(shard([A]), obs(slave(A, { linkUp: false, linkDownSinceSec: 32 })), opts())).target).toBe(A);
  });

  it('the staleness bound grows with the time the master has been down', () => {
    const stale = obs(slave(A, { linkUp: false, linkDownSinceSec: 40 }));
    expect(chooseSlave(shard([A]), stale, opts({ masterDownForMs: 2000 })).ok).toBe(false);
    expect(chosen(chooseSlave(shard([A]), stale, opts({ masterDownForMs: 15_000 }))).target).toBe(A);
  });

  it('a policy bound overrides the Sentinel rule', () => {
    const o = obs(slave(A, { linkUp: false, linkDownSinceSec: 5 }));
    const reasons = refused(chooseSlave(shard([A]), o, opts({ policy: policy({ maxLinkDownMs: 4000 }) })));
    expect(reasons[0]).toMatch(/too stale/);
    expect(chosen(chooseSlave(shard([A]), o, opts({ policy: policy({ maxLinkDownMs: 6000 }) }))).target).toBe(A);
  });

  it('prefers a fresh slave to a stale one with a higher offset', () => {
    const c = chosen(chooseSlave(shard([A, B]), obs(slave(A, { linkUp: false, linkDownSinceSec: 100, offset: 9999 }), slave(B, { offset: 1 })), opts()));
    expect(c.target).toBe(B);
    expect(c.why).toMatch(/too stale/);
  });

  it('excludes a slave that never completed a sync (link down since -1)', () => {
    const reasons = refused(chooseSlave(shard([A]), obs(slave(A, { linkUp: false, linkDownSinceSec: -1 })), opts()));
    expect(reasons).toEqual([`${A} never completed a sync with ${M}`]);
  });

  it('force skips the staleness rule', () => {
    const o = obs(slave(A, { linkUp: false, linkDownSinceSec: 3600 }));
    expect(chooseSlave(shard([A]), o, opts()).ok).toBe(false);
    expect(chosen(chooseSlave(shard([A]), o, opts({ force: true }))).target).toBe(A);
  });

  it('force does not skip the other rules', () => {
    const reasons = refused(
      chooseSlave(shard([A, B, C]), obs(slave(A, { priority: 0 }), slave(B, { of: OTHER_MASTER }), unreachable(C)), opts({ force: true })),
    );
    expect(reasons).toHaveLength(3);
    expect(reasons[0]).toContain('replica-priority 0');
    expect(reasons[1]).toContain('another replication history');
    expect(reasons[2]).toContain('unreachable');
  });

  it('`only` restricts the choice to that slave', () => {
    const o = obs(slave(A, { offset: 9999 }), slave(B, { offset: 1 }));
    const c = chosen(chooseSlave(shard([A, B]), o, opts({ only: B })));
    expect(c.target).toBe(B);
    expect(c.why).not.toContain(A);

    // ...and refuses when that slave is not eligible, rather than falling back to another.
    const reasons = refused(chooseSlave(shard([A, B]), obs(slave(A), slave(B, { priority: 0 })), opts({ only: B })));
    expect(reasons).toEqual([`${B} has replica-priority 0: never promoted`]);
  });

  it('`only` rejects an instance that is not a slave of the shard', () => {
    const reasons = refused(chooseSlave(shard([A, B]), obs(slave(A), slave(B), slave(C)), opts({ only: C })));
    expect(reasons).toEqual([`${C} is not a slave of shard s0`]);
    const reasons2 = refused(chooseSlave(shard([A, B]), obs(slave(A), slave(B), master(M)), opts({ only: M })));
    expect(reasons2).toEqual([`${M} is not a slave of shard s0`]);
  });

  it('refuses a shard without slaves', () => {
    const reasons = refused(chooseSlave(shard([]), obs(master(M)), opts()));
    expect(reasons).toEqual(['shard s0 has no slave']);
  });

  it('lists every reason when no slave is eligible', () => {
    const reasons = refused(chooseSlave(shard([A, B, C]), obs(unreachable(A), master(B), slave(C, { linkUp: false, linkDownSinceSec: -1 })), opts()));
    expect(reasons).toHaveLength(3);
    expect(reasons[0]).toContain(A);
    expect(reasons[1]).toContain(B);
    expect(reasons[2]).toContain(C);
  });

  it('the why text names the other eligible slaves with their offsets, and the excluded ones', () => {
    const c = chosen(chooseSlave(shard([A, B, C]), obs(slave(A, { offset: 300 }), slave(B, { offset: 200 }), slave(C, { priority: 0 })), opts()));
    expect(c.target).toBe(A);
    expect(c.why).toBe(`${A} has priority 100 and offset 300; also eligible: ${B} at offset 200; excluded: ${C} has replica-priority 0: never promoted`);
  });

  it('the why text of a lone eligible slave names no other', () => {
    const c = chosen(chooseSlave(shard([A]), obs(slave(A, { offset: 7 })), opts()));
    expect(c.why).toBe(`${A} has priority 100 and offset 7`);
  });

  it('never promotes a slave that a majority of the replicas cannot reach, however far ahead', () => {
    const exclude = new Map([[A, `${A} is unreachable from 2 replicas (c2, c3), a majority`]]);
    const c = chosen(chooseSlave(shard([A, B]), obs(slave(A, { offset: 900 }), slave(B, { offset: 10 })), opts({ exclude })));
    expect(c.target).toBe(B);
    expect(c.why).toMatch(/excluded: 10.0.0.2:6379 is unreachable from 2 replicas/);
    const none = chooseSlave(shard([A]), obs(slave(A)), opts({ exclude }));
    expect(none.ok).toBe(false);
  });
});
