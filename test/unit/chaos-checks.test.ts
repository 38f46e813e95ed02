import { describe, it, expect } from 'vitest';
import { epochsGrow, finishedTasks, lostWrites, writesFenced, type Acknowledged } from '../../bench/chaos/checks.js';
import type { EtcdHistory, LeaderTerm, TaskWrite } from '../../bench/chaos/history.js';
import type { FaultRun } from '../../bench/chaos/faults.js';
import { windowKind } from '../../bench/chaos/report.js';
import { seededRandom, shuffled, FAULT_KINDS } from '../../bench/chaos/profile.js';
import { taskSchema, type Route } from '../../src/model/schemas.js';

function acknowledged(seq: Record<string, { lastAcked: number; mayHaveRun?: number[] }>, unique: string[]): Acknowledged {
  const keys = new Map(Object.entries(seq).map(([k, s]) => [k, { lastAcked: s.lastAcked, lastAckedAt: 1000, mayHaveRun: new Set(s.mayHaveRun ?? []) }]));
  return { seq: [{ keys }], unique: [{ acked: new Map(unique.map((k) => [k, 2000])) }] };
}

describe('chaos checks: lost writes', () => {
  const load = acknowledged({ 'k:s1:0': { lastAcked: 10, mayHaveRun: [7] }, 'k:s1:1': { lastAcked: 5 }, 'k:s1:2': { lastAcked: 0, mayHaveRun: [3] } }, ['u:u1:0', 'u:u1:1']);

  it('passes when every acknowledged write is there, newer values included', () => {
    const values = new Map<string, string | null>([['k:s1:0', '12'], ['k:s1:1', '5'], ['k:s1:2', null], ['u:u1:0', '1'], ['u:u1:1', '1']]);
    expect(lostWrites(load, values)).toEqual({ lost: [], lateLandings: 0 });
  });

  it('reports a missing unique key and a missing sequence key', () => {
    const values = new Map<string, string | null>([['k:s1:0', null], ['k:s1:1', '5'], ['u:u1:0', '1'], ['u:u1:1', null]]);
    const { lost } = lostWrites(load, values);
    expect(lost.map((l) => l.key).sort()).toEqual(['k:s1:0', 'u:u1:1']);
  });

  it('reports a key older than its last acknowledged write, unless the older value is one whose outcome was unknown', () => {
    const older = lostWrites(load, new Map<string, string | null>([['k:s1:0', '9'], ['k:s1:1', '4'], ['u:u1:0', '1'], ['u:u1:1', '1']]));
    expect(older.lost.map((l) => l.what)).toEqual(['older: 9 < last acknowledged 10', 'older: 4 < last acknowledged 5']);
    const late = lostWrites(load, new Map<string, string | null>([['k:s1:0', '7'], ['k:s1:1', '5'], ['u:u1:0', '1'], ['u:u1:1', '1']]));
    expect(late).toEqual({ lost: [], lateLandings: 1 });
  });
});

const route = (epoch: number) => ({ epoch }) as Route;
const task = (id: string, controller: string | null, state: string, kind = 'failover') =>
  taskSchema.parse({ id, cluster: 'c', kind, shard: 's0', state, next: '-', oldMaster: '127.0.0.1:1', target: null, reason: 'r', requestedBy: 'x', controller, createdAt: 'a', updatedAt: 'a' });

function history(terms: LeaderTerm[], routes: [number, number][], tasks: TaskWrite[] = []): EtcdHistory {
  return { terms, routes: routes.map(([revision, epoch]) => ({ revision, epoch, route: route(epoch) })), tasks, undecodable: [] };
}

describe('chaos checks: etcd history', () => {
  const terms: LeaderTerm[] = [
    { holder: 'c1', from: 10, to: 20 },
    { holder: 'c2', from: 25, to: Infinity },
  ];

  it('epochs must strictly grow in the order of writes', () => {
    expect(epochsGrow(history(terms, [[11, 5], [26, 7]])).pass).toBe(true);
    expect(epochsGrow(history(terms, [[11, 5], [26, 5]])).pass).toBe(false);
    expect(epochsGrow(history(terms, [[11, 5], [26, 4]])).detail).toContain('epoch 4 after 5');
  });

  it('a route write needs a leader; a task write needs the leader it names', () => {
    expect(writesFenced(history(terms, [[11, 5], [30, 6]], [{ revision: 12, task: task('t1', 'c1', 'running') }, { revision: 26, task: task('t1', 'c2', 'done') }])).pass).toBe(true);
    // No term holds revision 22 (between c1's lease expiry and c2's election).
    expect(writesFenced(history(terms, [[22, 6]])).pass).toBe(false);
    // c1 writes a task after c2 took over.
    const late = writesFenced(history(terms, [], [{ revision: 27, task: task('t1', 'c1', 'running') }]));
    expect(late.pass).toBe(false);
    expect(late.detail).toContain('leader then: c2');
    // An admin's request names no controller: not a leader write.
    expect(writesFenced(history(terms, [], [{ revision: 22, task: task('t2', null, 'pending') }])).pass).toBe(true);
  });

  it('counts each task once, when it is done', () => {
    const h = history(terms, [], [
      { revision: 12, task: task('t1', 'c1', 'running') },
      { revision: 13, task: task('t1', 'c1', 'done') },
      { revision: 30, task: task('t2', 'c2', 'done', 'switchover') },
    ]);
    expect(finishedTasks(h)).toEqual([{ id: 't1', kind: 'failover', revision: 13 }, { id: 't2', kind: 'switchover', revision: 30 }]);
  });
});

describe('chaos report and plan', () => {
  it('charges a time to the fault whose window holds it, starting a second before the fault', () => {
    const faults = [
      { kind: 'kill -9 master', startedAt: 10_000 },
      { kind: 'switchover', startedAt: 20_000 },
    ] as FaultRun[];
    expect(windowKind(faults, 5_000)).toBe('(no fault: warm-up)');
    expect(windowKind(faults, 9_500)).toBe('kill -9 master');
    expect(windowKind(faults, 18_999)).toBe('kill -9 master');
    expect(windowKind(faults, 19_000)).toBe('switchover');
  });

  it('a seed replays the same fault order', () => {
    const order = (seed: number) => shuffled(seededRandom(seed), FAULT_KINDS);
    expect(order(42)).toEqual(order(42));
    expect(order(42)).not.toEqual(order(43));
    expect([...order(42)].sort()).toEqual([...FAULT_KINDS].sort());
  });
});
