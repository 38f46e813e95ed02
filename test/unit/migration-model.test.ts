import { describe, expect, it } from 'vitest';
import { RefusedError, ValidationError } from '../../src/model/errors.js';
import {
  drainMoves,
  keysMayHaveMoved,
  migrationSlots,
  parseSlotList,
  planMoves,
  rebalanceMoves,
  routeCommitted,
  routeReversed,
  routeWithPhase,
  routeWithoutMigration,
  targetsDown,
} from '../../src/model/migration.js';
import type { InstanceHealth } from '../../src/model/schemas.js';
import { countSlots, newRoute } from '../../src/model/route.js';
import { routeProblems, routeSchema, type Route } from '../../src/model/schemas.js';

function route(): Route {
  return newRoute('c', 16, [
    { id: 's0', master: 'h:1', slaves: [], slots: [[0, 7]] },
    { id: 's1', master: 'h:2', slaves: [], slots: [[8, 15]] },
    { id: 's2', master: 'h:3', slaves: [], slots: [] },
  ], 5);
}

describe('parseSlotList', () => {
  it('reads ranges and single slots, sorted', () => {
    expect(parseSlotList('9-11, 3,5-5', 16)).toEqual([3, 5, 9, 10, 11]);
  });
  it.each(['', '1,,2', 'a-b', '5-3', '0-16', '1-3,2'])('refuses %j', (text) => {
    expect(() => parseSlotList(text, 16)).toThrow(ValidationError);
  });
});

describe('planMoves', () => {
  it('groups the slots by the shard they come from', () => {
    expect(planMoves(route(), [6, 7, 8], 's2')).toEqual([
      { from: 's0', to: 's2', slots: [[6, 7]] },
      { from: 's1', to: 's2', slots: [[8, 8]] },
    ]);
  });
  it('refuses an unknown shard, slots it already owns, unowned slots and a second migration', () => {
    expect(() => planMoves(route(), [1], 's9')).toThrow(/no shard s9/);
    expect(() => planMoves(route(), [1, 2], 's0')).toThrow(/already owned by s0/);
    const r = route();
    r.shards[1]!.slots = [[8, 14]];
    expect(() => planMoves(r, [15], 's2')).toThrow(/have no owner/);
    const moving = routeWithPhase(route(), { moves: [{ from: 's0', to: 's2', slots: [[0, 0]] }] }, 'prepare');
    expect(() => planMoves(moving, [9], 's2')).toThrow(RefusedError);
  });
});

describe('route changes of a migration', () => {
  const m = { moves: [{ from: 's0', to: 's2', slots: [[6, 7]] as [number, number][] }, { from: 's1', to: 's2', slots: [[8, 8]] as [number, number][] }] };
  it('marks the slots, moves them on commit, and every route is valid with a new epoch', () => {
    const prepared = routeWithPhase(route(), m, 'prepare');
    expect(prepared.epoch).toBe(6);
    expect(prepared.migrating).toEqual([
      { slot: 6, from: 's0', to: 's2', phase: 'prepare' },
      { slot: 7, from: 's0', to: 's2', phase: 'prepare' },
      { slot: 8, from: 's1', to: 's2', phase: 'prepare' },
    ]);
    const moving = routeWithPhase(prepared, m, 'moving');
    const committed = routeCommitted(moving, m);
    expect(committed.epoch).toBe(8);
    expect(committed.migrating).toEqual([]);
    expect(committed.shards.map((s) => s.slots)).toEqual([[[0, 5]], [[9, 15]], [[6, 8]]]);
    for (const r of [prepared, moving, committed, routeReversed(moving, m), routeWithoutMigration(moving)]) {
      expect(routeProblems(r)).toEqual([]);
      expect(() => routeSchema.parse(r)).not.toThrow();
    }
    expect(migrationSlots(m)).toEqual([6, 7, 8]);
  });
  it('a reversed move goes back to the owner', () => {
    const reversed = routeReversed(routeWithPhase(route(), m, 'moving'), m);
    expect(reversed.migrating[0]).toEqual({ slot: 6, from: 's2', to: 's0', phase: 'moving' });
  });
  it('route validation refuses a migrating slot owned by neither side, or twice', () => {
    const r = route();
    expect(routeProblems({ ...r, migrating: [{ slot: 9, from: 's0', to: 's2' }] })).toEqual(['slot 9 migrates s0 -> s2 but is owned by s1']);
    expect(routeProblems({ ...r, migrating: [{ slot: 1, from: 's0', to: 's2' }, { slot: 1, from: 's0', to: 's2' }] })).toEqual(['slot 1 is migrating twice']);
    expect(routeProblems({ ...r, migrating: [{ slot: 1, from: 's0', to: 's0' }] })).toEqual(['slot 1 migrates from s0 to itself']);
  });
});

describe('rebalance and drain plans', () => {
  it('evens the slots out, giving the highest slots of the fullest shards', () => {
    const plan = rebalanceMoves(route());
    expect(plan).toEqual([
      { from: 's0', to: 's2', slots: [[6, 7]] },
      { from: 's1', to: 's2', slots: [[13, 15]] },
    ]);
    expect(rebalanceMoves(routeCommitted(route(), { moves: plan }))).toEqual([]);
  });
  it('drains a shard to the smallest others, and refuses to drain the last one', () => {
    const three = routeCommitted(route(), { moves: [{ from: 's1', to: 's2', slots: [[12, 15]] }] });
    const plan = drainMoves(three, 's0');
    expect(plan).toEqual([
      { from: 's0', to: 's1', slots: [[0, 3]] },
      { from: 's0', to: 's2', slots: [[4, 7]] },
    ]);
    const drained = routeCommitted(three, { moves: plan });
    expect(drained.shards.map((s) => countSlots(s.slots))).toEqual([0, 8, 8]);
    expect(() => drainMoves(drained, 's0')).toThrow(/owns no slot/);
    const one = newRoute('c', 16, [{ id: 's0', master: 'h:1', slaves: [], slots: [[0, 15]] }], 1);
    expect(() => drainMoves(one, 's0')).toThrow(/only shard/);
  });
});

describe('keysMayHaveMoved', () => {
  it('is false until the slots move or big keys are copied', () => {
    for (const next of ['survey', 'prepare', 'hold-barrier']) expect(keysMayHaveMoved({ next, bigKeys: [] })).toBe(false);
    expect(keysMayHaveMoved({ next: 'moving', bigKeys: [] })).toBe(false);
    const big = [{ key: 'aw==', from: 's0', to: 's2', type: 'hash' as const, elements: 1e6 }];
    expect(keysMayHaveMoved({ next: 'moving', bigKeys: big })).toBe(true);
    expect(keysMayHaveMoved({ next: 'big-keys', bigKeys: big })).toBe(true);
    expect(keysMayHaveMoved({ next: 'move', bigKeys: [] })).toBe(true);
  });
});

describe('targetsDown', () => {
  const view = (address: string, down: boolean): InstanceHealth => ({ address, reachable: !down, down, role: 'master', masterAddress: null, linkUp: null, linkDownSinceSec: null, offset: 0, connectedSlaves: 0, priority: null } as InstanceHealth);
  it('names a target whose master most replicas that see it judge down; a minority, or no view, refuses nothing', () => {
    const moves = planMoves(route(), [0, 1], 's2');
    // controller id -> instance address -> what it saw
    const views = (verdicts: boolean[]) => new Map(verdicts.map((d, i) => [`c${i}`, new Map([['h:3', view('h:3', d)]])]));
    expect(targetsDown(route(), moves, views([true, true, false]))).toEqual([{ shard: 's2', master: 'h:3', down: 2, of: 3 }]);
    expect(targetsDown(route(), moves, views([true, false, false]))).toEqual([]);
    expect(targetsDown(route(), moves, new Map())).toEqual([]);
    // Only targets count: a source that is down is the mover's to wait for.
    expect(targetsDown(route(), moves, new Map([['c0', new Map([['h:1', view('h:1', true)]])]]))).toEqual([]);
  });
});
