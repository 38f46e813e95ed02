import { describe, expect, it } from 'vitest';
import { RefusedError, ValidationError } from '../../src/model/errors.js';
import { newRoute } from '../../src/model/route.js';
import { routeProblems, type Route } from '../../src/model/schemas.js';
import { majorVersion, roomProblem, routeFeedingSplit, routeHolding, routeSplit, routeTrimmed, routeWithoutSplit, splitCancelRefusal, splitFinished, splitSlots, splitText, versionProblem, splitRecordSchema, type SplitRecord } from '../../src/model/split.js';
import { routeTable, splitSyncText } from '../../src/cli/tables.js';

function route(): Route {
  return newRoute('c', 16, [
    { id: 's0', master: 'h:1', slaves: ['h:2'], slots: [[0, 6]] },
    { id: 's1', master: 'h:3', slaves: [], slots: [[7, 15]] },
  ], 5);
}

function record(slots: [number, number][]): SplitRecord {
  const at = '2026-12-03T00:00:00.000Z';
  return {
    id: 'x-split-1', cluster: 'c', source: 's0', sourceMaster: 'h:1', shard: { id: 's2', master: 'h:9', slaves: ['h:10'] }, slots,
    state: 'running', next: 'hold', reason: 'test', requestedBy: 'test', controller: null, createdAt: at, updatedAt: at, sync: null, syncSettings: null, fenceRaise: null, holdMs: null,
    epochBefore: null, epochAfter: null, trim: { source: { scanned: 0, removed: 0, done: false }, shard: { scanned: 0, removed: 0, done: false } }, trimRate: null, steps: [], error: null, pause: false, cancel: null,
  };
}

describe('splitSlots', () => {
  const r = route();
  const s0 = r.shards[0]!;
  it('takes the upper half of the shard by default (the smaller half when odd)', () => {
    expect(splitSlots(r, s0, undefined)).toEqual([4, 5, 6]);
    expect(splitSlots(r, r.shards[1]!, '')).toEqual([12, 13, 14, 15]);
  });
  it('takes the slots given when the shard owns them', () => {
    expect(splitSlots(r, s0, '0-1,5')).toEqual([0, 1, 5]);
  });
  it('refuses foreign slots, every slot, a shard of one slot, and bad text', () => {
    expect(() => splitSlots(r, s0, '5-8')).toThrow(/slots 7-8 are not owned by shard s0/);
    expect(() => splitSlots(r, s0, '0-6')).toThrow(RefusedError);
    expect(() => splitSlots(r, { ...s0, slots: [[3, 3]] }, undefined)).toThrow(/owns 1 slot: a split needs at least 2/);
    expect(() => splitSlots(r, s0, 'a-b')).toThrow(ValidationError);
  });
});

describe('the route changes of a split', () => {
  it('holds the slots with the new shard in the route, then gives them to it; each a valid route, a new epoch', () => {
    const s = record([[4, 6]]);
    const held = routeHolding(route(), s);
    expect(held.epoch).toBe(6);
    expect(held.shards.map((x) => [x.id, x.slots])).toEqual([['s0', [[0, 6]]], ['s1', [[7, 15]]], ['s2', []]]);
    expect(held.migrating).toEqual([4, 5, 6].map((slot) => ({ slot, from: 's0', to: 's2', phase: 'prepare' })));
    expect(routeProblems(held)).toEqual([]);
    // Holding again (a resumed step) does not add the shard twice.
    expect(routeHolding(held, s).shards).toHaveLength(3);
    const split = routeSplit(held, s);
    expect(split.epoch).toBe(7);
    expect(split.migrating).toEqual([]);
    expect(split.shards.map((x) => [x.id, x.slots])).toEqual([['s0', [[0, 3]]], ['s1', [[7, 15]]], ['s2', [[4, 6]]]]);
    expect(routeProblems(split)).toEqual([]);
  });
  it('refuses to hold when another shard of the new id joined the route meanwhile', () => {
    const r = route();
    const other = { ...r, shards: [...r.shards, { id: 's2', master: 'h:7', slaves: [], slots: [] }] };
    expect(() => routeHolding(other, record([[4, 6]]))).toThrow(/has another shard s2 now \(master h:7\)/);
    // The abort then leaves that shard where it is.
    expect(routeWithoutSplit(other, record([[4, 6]])).shards.map((x) => x.id)).toEqual(['s0', 's1', 's2']);
  });
  it('is undone to the route as before (new epoch), from the hold', () => {
    const s = record([[4, 6]]);
    const undone = routeWithoutSplit(routeHolding(route(), s), s);
    expect(undone.epoch).toBe(7);
    expect({ ...undone, epoch: 5, updatedAt: '' }).toEqual({ ...route(), updatedAt: '' });
    expect(splitText(s)).toBe('s0 -> s2, slots 4-6');
  });
  it('marks both shards trimming from the hold to the end of the trim, then unmarks them (a new epoch, once)', () => {
    const s = record([[4, 6]]);
    const held = routeHolding(route(), s);
    expect(held.trimming).toEqual(['s0', 's2']);
    const split = routeSplit(held, s);
    expect(split.trimming).toEqual(['s0', 's2']);
    const trimmed = routeTrimmed(split, s);
    expect(trimmed.epoch).toBe(split.epoch + 1);
    expect('trimming' in trimmed).toBe(false);
    expect(routeProblems(trimmed)).toEqual([]);
    // A resumed trim step finds nothing to unmark: the same route, no write.
    expect(routeTrimmed(trimmed, s)).toBe(trimmed);
    // Another split's mark stays.
    expect(routeTrimmed({ ...split, trimming: ['s0', 's2', 's1'] }, s).trimming).toEqual(['s1']);
  });
  it('refuses a route whose trimming or feedingSplit names an unknown shard or one twice', () => {
    expect(routeProblems({ ...route(), trimming: ['s7'] })).toEqual(['trimming names unknown shard s7']);
    expect(routeProblems({ ...route(), trimming: ['s0', 's0'] })).toEqual(['shard s0 is listed twice in trimming']);
    expect(routeProblems({ ...route(), feedingSplit: ['s7'] })).toEqual(['feedingSplit names unknown shard s7']);
    expect(routeProblems({ ...route(), feedingSplit: ['s1', 's1'] })).toEqual(['shard s1 is listed twice in feedingSplit']);
  });
  it('marks the source as feeding the split from its link up (a new epoch, once) to the commit or the undo', () => {
    const s = record([[4, 6]]);
    const feeding = routeFeedingSplit(route(), s);
    expect(feeding.feedingSplit).toEqual(['s0']);
    expect(feeding.epoch).toBe(6);
    expect(routeProblems(feeding)).toEqual([]);
    // A new leader's sync finds it marked: the same route, no write.
    expect(routeFeedingSplit(feeding, s)).toBe(feeding);
    // Kept through the hold (the new master still replicates until the catch-up promotes it).
    const held = routeHolding(feeding, s);
    expect(held.feedingSplit).toEqual(['s0']);
    const split = routeSplit(held, s);
    expect('feedingSplit' in split).toBe(false);
    expect(split.trimming).toEqual(['s0', 's2']);
    // Undone from the hold or from the sync: gone with the split, the route as before.
    for (const from of [held, feeding]) {
      const undone = routeWithoutSplit(from, s);
      expect('feedingSplit' in undone).toBe(false);
      expect({ ...undone, epoch: 5, updatedAt: '' }).toEqual({ ...route(), updatedAt: '' });
    }
    // Another shard's mark stays at the commit.
    expect(routeSplit({ ...held, feedingSplit: ['s0', 's1'] }, s).feedingSplit).toEqual(['s1']);
    expect(routeTable(held)).toMatch(/\ntrimming: s0, s2 .*\nfeeding a split: s0 \(their masters replicate to a split's new master; proxies do not count it for WAIT\)$/);
    expect(routeTable(route())).not.toMatch(/feeding|trimming/);
  });
});

describe('the checks and controls of a split', () => {
  it('accepts a new instance of the same Redis major version or newer, refuses an older one', () => {
    expect(majorVersion('7.0.15')).toBe(7);
    expect(majorVersion('unknown')).toBeNull();
    expect(versionProblem('h:9', '7.2.4', 'h:1', '7.0.15')).toBeNull();
    expect(versionProblem('h:9', '8.0.0', 'h:1', '7.0.15')).toBeNull();
    expect(versionProblem('h:9', '6.2.14', 'h:1', '7.0.15')).toMatch(/h:9 runs Redis 6.2.14, older than the source master's 7.0.15 \(h:1\)/);
    expect(versionProblem('h:9', 'x', 'h:1', '7.0.15')).toMatch(/cannot be compared/);
  });
  it("refuses a maxmemory below the source's used memory, and without one a host too small for it, with the numbers", () => {
    const facts = (maxmemory: number, systemMemory: number, usedMemory = 1_000_000) => ({ maxmemory, systemMemory, usedMemory });
    expect(roomProblem('h:9', facts(10_000_000, 0), 'h:1', 5_000_000)).toBeNull();
    expect(roomProblem('h:9', facts(1_000_000, 64_000_000), 'h:1', 5_000_000)).toMatch(/h:9 has maxmemory 1000000 bytes, below the 5000000 bytes h:1 uses/);
    // No maxmemory: the host's memory less what the instance uses bounds it; unknown (0) is no limit.
    expect(roomProblem('h:9', facts(0, 0), 'h:1', 5_000_000)).toBeNull();
    expect(roomProblem('h:9', facts(0, 6_000_000), 'h:1', 5_000_000)).toBeNull();
    expect(roomProblem('h:9', facts(0, 5_500_000), 'h:1', 5_000_000)).toMatch(/h:9 has no maxmemory and its host has 5500000 bytes of memory \(1000000 used by it\): less than the 5000000 bytes h:1 uses/);
  });
  it('lets a cancel undo the split up to the commit, and refuses it from the commit on with the reason', () => {
    for (const next of ['attach', 'sync', 'hold', 'hold-barrier', 'catchup']) expect(splitCancelRefusal({ ...record([[4, 6]]), next })).toBeNull();
    expect(splitCancelRefusal({ ...record([[4, 6]]), next: 'commit' })).toMatch(/past its commit .* both ordinary shards now, and the trim must finish/);
    expect(splitCancelRefusal({ ...record([[4, 6]]), next: 'trim', state: 'paused' })).toMatch(/past its commit/);
    expect(splitCancelRefusal({ ...record([[4, 6]]), next: '-', state: 'done' })).toMatch(/already ended: done/);
  });
  it('counts a paused split as unfinished, a cancelled one as finished', () => {
    expect(splitFinished({ state: 'paused' })).toBe(false);
    expect(splitFinished({ state: 'cancelled' })).toBe(true);
    expect(splitFinished({ state: 'running' })).toBe(false);
  });
});

describe("a split's sync progress", () => {
  const at = '2026-12-03T00:00:00.000Z';
  it('decodes a record written before the bytes of the full sync were kept: null, not an error', () => {
    const old = { ...record([[4, 6]]), sync: { linkUp: false, offset: 1, sourceOffset: 80, lagBytes: 79, keys: 2071, at } };
    expect(splitRecordSchema.parse(old).sync).toEqual({ ...old.sync, fullSyncBytes: null, fullSyncTotalBytes: null });
  });
  it('shows the bytes of a full sync under way, with its total when Redis knows it', () => {
    const sync = { linkUp: false, offset: 1, sourceOffset: 80, lagBytes: 79, keys: 2071, fullSyncBytes: 2097014, fullSyncTotalBytes: null, at };
    expect(splitSyncText(sync)).toBe('link down, full sync 2097014 B of ?, 79 B behind, 2071 keys');
    expect(splitSyncText({ ...sync, fullSyncTotalBytes: 4000000 })).toBe('link down, full sync 2097014 B of 4000000 B, 79 B behind, 2071 keys');
    expect(splitSyncText({ ...sync, linkUp: true, fullSyncBytes: null, lagBytes: 0, keys: null })).toBe('link up, 0 B behind');
  });
});
