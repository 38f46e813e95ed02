import { describe, expect, it } from 'vitest';
import type { MasterVerdict } from '../../src/controller/detect.js';
import { REFUSED_RETRY_MS, RefusalMemory, describeVotes, gateFailover, recentFailovers, type GateInput } from '../../src/controller/failover-gate.js';
import { failoverPolicy, taskSchema, type Task } from '../../src/model/schemas.js';

const NOW = Date.parse('2026-06-01T12:00:00.000Z');

const verdict: MasterVerdict = { shard: 's1', master: '10.0.1.1:6379', down: true, votes: ['a', 'b'], needed: 2, replicas: 3, lastOkAt: NOW - 5000 };

/** A dead master that nothing holds back: every check of the gate passes. */
function input(patch: Partial<GateInput> = {}): GateInput {
  return {
    verdict,
    isolated: null,
    ownProbe: null,
    busy: false,
    refusedAt: undefined,
    spec: { paused: false, failover: failoverPolicy.parse({ maxPerWindow: 2, windowMs: 600_000 }) },
    recentFailovers: 0,
    now: NOW,
    ...patch,
  };
}

function task(kind: Task['kind'], state: Task['state'], createdAgoMs: number): Task {
  const createdAt = new Date(NOW - createdAgoMs).toISOString();
  return taskSchema.parse({
    id: `t${createdAgoMs}`, cluster: 'c', kind, shard: 's0', state, next: '-', oldMaster: '127.0.0.1:1', target: null,
    reason: 'r', requestedBy: 'x', controller: null, createdAt, updatedAt: createdAt,
  });
}

describe('the failover gate', () => {
  it('lets a dead master fail over when nothing holds it back, with who voted as the reason', () => {
    const gate = gateFailover(input());
    expect(gate).toEqual({ decision: 'fail over', votes: describeVotes(verdict) });
    expect(describeVotes(verdict)).toBe('2 of 2 needed replicas (a, b) judge 10.0.1.1:6379 down, a majority of 3 replicas');
  });

  it('waits, saying nothing new, while a task it may not supersede holds the shard', () => {
    const gate = gateFailover(input({ busy: true, isolated: 'cut off' }));
    expect(gate.decision).toBe('wait');
    expect(gate).toMatchObject({ reason: 'shard s1 has a task in flight' });
  });

  it('refuses when this replica looks cut off, before any other check', () => {
    const gate = gateFailover(input({ isolated: 'sees 3 masters down that others see up', ownProbe: { role: 'master' }, spec: { paused: true, failover: failoverPolicy.parse({}) } }));
    expect(gate).toEqual({ decision: 'refuse', reason: 'no failover: this replica looks cut off' });
  });

  it("refuses when the master answered this leader's own probe, whatever the votes say", () => {
    const gate = gateFailover(input({ ownProbe: { role: 'master' }, refusedAt: NOW - 1000 }));
    expect(gate.decision).toBe('refuse');
    expect(gate).toMatchObject({ reason: expect.stringMatching(/judge 10\.0\.1\.1:6379 down, .*but it answered this leader's probe just now \(role master\): no failover$/) });
  });

  it('waits after a refused failover until the retry delay has passed, then lets it through again', () => {
    const recent = gateFailover(input({ refusedAt: NOW - REFUSED_RETRY_MS + 1 }));
    expect(recent.decision).toBe('wait');
    expect(recent).toMatchObject({ reason: expect.stringMatching(/refused 30 s ago/) });
    expect(gateFailover(input({ refusedAt: NOW - REFUSED_RETRY_MS })).decision).toBe('fail over');
  });

  it('refuses while the cluster is paused', () => {
    const gate = gateFailover(input({ spec: { paused: true, failover: failoverPolicy.parse({}) } }));
    expect(gate).toEqual({ decision: 'refuse', reason: `${describeVotes(verdict)}; the cluster is paused: no failover` });
  });

  it('refuses when automatic failover is off', () => {
    const gate = gateFailover(input({ spec: { paused: false, failover: failoverPolicy.parse({ auto: false }) } }));
    expect(gate).toEqual({ decision: 'refuse', reason: `${describeVotes(verdict)}; automatic failover is off for this cluster` });
  });

  it('refuses once the failover budget of the window is spent, and not before', () => {
    expect(gateFailover(input({ recentFailovers: 1 })).decision).toBe('fail over');
    const gate = gateFailover(input({ recentFailovers: 2 }));
    expect(gate).toEqual({ decision: 'refuse', reason: `${describeVotes(verdict)}; 2 failovers in the last 10 min already (limit 2): no automatic failover` });
  });
});

describe('the failovers that count against the budget', () => {
  it('are failovers created within the window that were not refused', () => {
    const tasks = [
      task('failover', 'done', 1000),
      task('failover', 'running', 59_999),
      task('failover', 'refused', 1000), // no slave fit: nothing happened
      task('failover', 'failed', 60_000), // out of the window
      task('switchover', 'done', 1000),
    ];
    expect(recentFailovers(tasks, 60_000, NOW)).toBe(2);
    expect(recentFailovers([], 60_000, NOW)).toBe(0);
  });
});

describe('the refusal memory of a cluster', () => {
  it('says a refusal once per kind per scope; digits (vote counts) do not make it news', () => {
    const m = new RefusalMemory();
    expect(m.isNews({ shard: 's1' }, '2 of 2 replicas judge it down; paused')).toBe(true);
    expect(m.isNews({ shard: 's1' }, '3 of 2 replicas judge it down; paused')).toBe(false);
    expect(m.isNews({ shard: 's1' }, '3 of 2 replicas judge it down; automatic failover is off')).toBe(true);
    // Other scopes are other episodes, even with the same sentence.
    expect(m.isNews({ shard: 's2' }, '2 of 2 replicas judge it down; paused')).toBe(true);
    expect(m.isNews({ shard: 's1', instance: '10.0.1.2:6379' }, '2 of 2 replicas judge it down; paused')).toBe(true);
    expect(m.isNews({ cluster: 'isolated' }, 'cut off')).toBe(true);
    expect(m.isNews({ cluster: 'aside' }, 'cut off')).toBe(true);
    expect(m.isNews({ cluster: 'isolated' }, 'cut off')).toBe(false);
    m.forget({ cluster: 'isolated' });
    expect(m.isNews({ cluster: 'isolated' }, 'cut off')).toBe(true);
    expect(m.isNews({ cluster: 'aside' }, 'cut off')).toBe(false);
  });

  it('ends the episodes of shards no longer down, keeping instance and cluster-wide ones', () => {
    const m = new RefusalMemory();
    m.isNews({ shard: 's1' }, 'refused');
    m.isNews({ shard: 's2' }, 'refused');
    m.isNews({ shard: 's1', instance: 'i' }, 'refused');
    m.isNews({ cluster: 'isolated' }, 'refused');
    m.failoverEnded('s1', { why: 'no slave' }, NOW);
    m.failoverEnded('s2', { why: 'no slave' }, NOW);
    m.endShardEpisodes(new Set(['s2']));
    expect(m.refusedAt('s1')).toBeUndefined();
    expect(m.refusedAt('s2')).toBe(NOW);
    expect(m.isNews({ shard: 's1' }, 'refused')).toBe(true);
    expect(m.isNews({ shard: 's2' }, 'refused')).toBe(false);
    expect(m.isNews({ shard: 's1', instance: 'i' }, 'refused')).toBe(false);
    expect(m.isNews({ cluster: 'isolated' }, 'refused')).toBe(false);
  });

  it('ends the episodes of instances no longer refused, keeping shard ones', () => {
    const m = new RefusalMemory();
    m.isNews({ shard: 's1', instance: 'a' }, 'refused');
    m.isNews({ shard: 's1', instance: 'b' }, 'refused');
    m.isNews({ shard: 's2', instance: 'a' }, 'refused');
    m.isNews({ shard: 's1' }, 'refused');
    m.endInstanceEpisodes([{ shard: 's1', instance: 'b' }]);
    expect(m.isNews({ shard: 's1', instance: 'a' }, 'refused')).toBe(true);
    expect(m.isNews({ shard: 's1', instance: 'b' }, 'refused')).toBe(false);
    expect(m.isNews({ shard: 's2', instance: 'a' }, 'refused')).toBe(true);
    expect(m.isNews({ shard: 's1' }, 'refused')).toBe(false);
  });

  it('remembers a refused failover for its retry delay, and forgets it when one starts', () => {
    const m = new RefusalMemory();
    m.failoverEnded('s1', { why: 'no slave can be promoted: 10.0.0.2:6379 is unreachable' }, NOW);
    expect(m.refusedAt('s1')).toBe(NOW);
    m.failoverEnded('s1', null, NOW + 1);
    expect(m.refusedAt('s1')).toBeUndefined();
  });

  it('knows a retry refused for the same reasons (numbers aside), until the episode ends', () => {
    const m = new RefusalMemory();
    m.failoverEnded('s1', { why: 'no slave can be promoted: 10.0.0.2:6379 is too stale: down 41 s' }, NOW);
    expect(m.sameRefusal('s1', 'no slave can be promoted: 10.0.0.2:6379 is too stale: down 75 s')).toBe(true);
    expect(m.sameRefusal('s1', 'no slave can be promoted: 10.0.0.2:6379 has replica-priority 0: never promoted')).toBe(false);
    expect(m.sameRefusal('s2', 'no slave can be promoted: 10.0.0.2:6379 is too stale: down 75 s')).toBe(false);
    m.endShardEpisodes(new Set());
    expect(m.sameRefusal('s1', 'no slave can be promoted: 10.0.0.2:6379 is too stale: down 75 s')).toBe(false);
  });

  it('steps aside only once the reason has held for a whole down window, and starts over after', () => {
    const m = new RefusalMemory();
    expect(m.stepAsideDue('sees less', 1000, NOW)).toBeNull();
    expect(m.stepAsideDue('sees less', 1000, NOW + 999)).toBeNull();
    expect(m.stepAsideDue('sees less', 1000, NOW + 1000)).toBe('sees less');
    // Once due, a new window begins.
    expect(m.stepAsideDue('sees less', 1000, NOW + 1001)).toBeNull();
    expect(m.stepAsideDue('sees less', 1000, NOW + 2001)).toBe('sees less');
  });

  it('ends the step-aside episode (its window and its note) when the reason goes away', () => {
    const m = new RefusalMemory();
    expect(m.stepAsideDue('sees less', 1000, NOW)).toBeNull();
    m.isNews({ cluster: 'aside' }, 'sees less');
    expect(m.stepAsideDue(null, 1000, NOW + 500)).toBeNull();
    expect(m.stepAsideDue('sees less', 1000, NOW + 1000)).toBeNull(); // a new window from here
    expect(m.stepAsideDue('sees less', 1000, NOW + 1999)).toBeNull();
    expect(m.stepAsideDue('sees less', 1000, NOW + 2000)).toBe('sees less');
    expect(m.isNews({ cluster: 'aside' }, 'sees less')).toBe(true);
  });
});
