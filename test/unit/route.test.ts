import { describe, it, expect } from 'vitest';
import {
  assignUnownedEvenly,
  countSlots,
  findShard,
  instancesOf,
  newRoute,
  nextRoute,
  nextShardId,
  slotOwners,
  toRanges,
  unassignedSlots,
  type SlotRange,
} from '../../src/model/route.js';
import { RefusedError } from '../../src/model/errors.js';
import { routeProblems, routeSchema, type Shard } from '../../src/model/schemas.js';

function shard(id: string, port: number, slots: SlotRange[] = [], slaves: string[] = []): Shard {
  return { id, master: `127.0.0.1:${port}`, slaves, slots };
}

function sizes(shards: Shard[]): number[] {
  return shards.map((s) => countSlots(s.slots));
}

/** Every slot owned exactly once, and the route structurally valid. */
function expectFullyAssigned(slotCount: number, shards: Shard[]): void {
  expect(routeProblems({ slotCount, shards })).toEqual([]);
  expect(unassignedSlots({ slotCount, shards })).toEqual([]);
  expect(sizes(shards).reduce((a, b) => a + b, 0)).toBe(slotCount);
}

describe('toRanges', () => {
  it('is empty for no slots', () => {
    expect(toRanges([])).toEqual([]);
  });

  it('joins consecutive slots and splits at gaps', () => {
    expect(toRanges([1, 2, 3, 5, 7, 8])).toEqual([
      [1, 3],
      [5, 5],
      [7, 8],
    ]);
    expect(toRanges([0])).toEqual([[0, 0]]);
    expect(toRanges([0, 1, 2, 3])).toEqual([[0, 3]]);
  });

  it('accepts any iterable', () => {
    expect(toRanges(new Set([4, 5, 9]))).toEqual([
      [4, 5],
      [9, 9],
    ]);
  });
});

describe('countSlots', () => {
  it('counts inclusive ranges', () => {
    expect(countSlots([])).toBe(0);
    expect(countSlots([[0, 0]])).toBe(1);
    expect(
      countSlots([
        [0, 9],
        [20, 20],
        [100, 1023],
      ]),
    ).toBe(10 + 1 + 924);
  });

  it('is the inverse of toRanges on sizes', () => {
    const slots = [0, 1, 2, 10, 11, 500, 1023];
    expect(countSlots(toRanges(slots))).toBe(slots.length);
  });
});

describe('slotOwners and unassignedSlots', () => {
  const route = {
    slotCount: 8,
    shards: [shard('s0', 7000, [[0, 1]]), shard('s1', 7001, [[4, 5], [7, 7]])],
  };

  it('maps each slot to the index of its owner, -1 when unowned', () => {
    const owners = slotOwners(route);
    expect(owners).toBeInstanceOf(Int32Array);
    expect(Array.from(owners)).toEqual([0, 0, -1, -1, 1, 1, -1, 1]);
  });

  it('lists the unowned slots in order', () => {
    expect(unassignedSlots(route)).toEqual([2, 3, 6]);
  });

  it('every slot is unowned in a cluster without shards', () => {
    expect(Array.from(slotOwners({ slotCount: 4, shards: [] }))).toEqual([-1, -1, -1, -1]);
    expect(unassignedSlots({ slotCount: 4, shards: [] })).toEqual([0, 1, 2, 3]);
  });

  it('no slot is unowned in a full cluster', () => {
    expect(unassignedSlots({ slotCount: 4, shards: [shard('a', 1, [[0, 1]]), shard('b', 2, [[2, 3]])] })).toEqual([]);
  });
});

describe('assignUnownedEvenly', () => {
  it('splits an empty 1024-slot cluster over 3 shards as 342/341/341 contiguous ranges', () => {
    const shards = [shard('s0', 7000), shard('s1', 7001), shard('s2', 7002)];
    const result = assignUnownedEvenly({ slotCount: 1024, shards });
    expect(result.map((s) => s.slots)).toEqual([[[0, 341]], [[342, 682]], [[683, 1023]]]);
    expect(sizes(result)).toEqual([342, 341, 341]);
    expectFullyAssigned(1024, result);
    // The input is not modified, and everything but the slots is kept.
    expect(shards.every((s) => s.slots.length === 0)).toBe(true);
    expect(result.map((s) => [s.id, s.master])).toEqual(shards.map((s) => [s.id, s.master]));
  });

  it('gives a single shard every slot', () => {
    const result = assignUnownedEvenly({ slotCount: 16384, shards: [shard('s0', 7000)] });
    expect(result[0]!.slots).toEqual([[0, 16383]]);
  });

  it('spreads a remainder over the first shards', () => {
    const result = assignUnownedEvenly({ slotCount: 10, shards: [shard('a', 1), shard('b', 2), shard('c', 3), shard('d', 4)] });
    expect(sizes(result)).toEqual([3, 3, 2, 2]);
    expectFullyAssigned(10, result);
  });

  it('leaves shards without slots when there are more shards than slots', () => {
    const result = assignUnownedEvenly({ slotCount: 2, shards: [shard('a', 1), shard('b', 2), shard('c', 3)] });
    expect(sizes(result)).toEqual([1, 1, 0]);
    expectFullyAssigned(2, result);
  });

  it('never moves owned slots, and fills the gaps evenly', () => {
    const shards = [shard('s0', 7000, [[100, 199]]), shard('s1', 7001, [[500, 500]]), shard('s2', 7002)];
    const before = slotOwners({ slotCount: 1024, shards });
    const result = assignUnownedEvenly({ slotCount: 1024, shards });
    const after = slotOwners({ slotCount: 1024, shards: result });
    for (let slot = 0; slot < 1024; slot++) if (before[slot] !== -1) expect(after[slot]).toBe(before[slot]);
    expectFullyAssigned(1024, result);
    expect(sizes(result)).toEqual([342, 341, 341]);
    // Gained slots are merged with the owned ones into sorted, non-adjacent ranges.
    for (const s of result) {
      for (let i = 1; i < s.slots.length; i++) expect(s.slots[i]![0]).toBeGreaterThan(s.slots[i - 1]![1] + 1);
    }
    expect(result[0]!.slots[0]![0]).toBe(0);
  });

  it('gives nothing more to a shard already over its share, and never moves its slots', () => {
    const shards = [shard('s0', 7000, [[0, 599]]), shard('s1', 7001), shard('s2', 7002)];
    const result = assignUnownedEvenly({ slotCount: 1024, shards });
    expect(result[0]!.slots).toEqual([[0, 599]]);
    expectFullyAssigned(1024, result);
    expect(sizes(result)[1]! + sizes(result)[2]!).toBe(424);
  });

  it('splits the rest evenly between the other shards when one is over its share', () => {
    // s0 owns 600 of 1024 slots; the 424 unowned ones should go 212/212 to s1 and s2,
    // which is what "shard sizes end as even as possible" means (owned slots cannot move).
    const shards = [shard('s0', 7000, [[0, 599]]), shard('s1', 7001), shard('s2', 7002)];
    const result = assignUnownedEvenly({ slotCount: 1024, shards });
    expect(sizes(result)).toEqual([600, 212, 212]);
  });

  it('does not starve a later shard when an earlier one is over its share', () => {
    // 10 slots, 3 shards; c already owns 6. The 4 free slots should be split 2/2 between a and b.
    const shards = [shard('a', 1), shard('b', 2), shard('c', 3, [[0, 5]])];
    const result = assignUnownedEvenly({ slotCount: 10, shards });
    expectFullyAssigned(10, result);
    const [a, b] = sizes(result);
    expect(Math.abs(a! - b!)).toBeLessThanOrEqual(1);
  });

  it('gives nothing to a new empty shard when the cluster is already full', () => {
    const s0 = shard('s0', 7000, [[0, 511]]);
    const s1 = shard('s1', 7001, [[512, 1023]]);
    const s2 = shard('s2', 7002);
    const result = assignUnownedEvenly({ slotCount: 1024, shards: [s0, s1, s2] });
    expect(result[2]!.slots).toEqual([]);
    expect(result[0]).toBe(s0);
    expect(result[1]).toBe(s1);
    expect(sizes(result)).toEqual([512, 512, 0]);
  });

  it('refuses a cluster without shards', () => {
    expect(() => assignUnownedEvenly({ slotCount: 1024, shards: [] })).toThrow(RefusedError);
    try {
      assignUnownedEvenly({ slotCount: 1024, shards: [] });
    } catch (err) {
      expect((err as RefusedError).code).toBe('REFUSED');
    }
  });
});

describe('nextShardId', () => {
  it('starts at s0', () => {
    expect(nextShardId({ shards: [] })).toBe('s0');
  });

  it('takes the first unused s<N>', () => {
    expect(nextShardId({ shards: [shard('s0', 1), shard('s1', 2)] })).toBe('s2');
    expect(nextShardId({ shards: [shard('s0', 1), shard('s2', 2)] })).toBe('s1');
    expect(nextShardId({ shards: [shard('alpha', 1), shard('s1', 2)] })).toBe('s0');
  });
});

describe('instancesOf and findShard', () => {
  const route = { shards: [shard('s0', 7000, [], ['127.0.0.1:7100']), shard('s1', 7001)] };

  it('lists masters and slaves', () => {
    expect(instancesOf(route)).toEqual(['127.0.0.1:7000', '127.0.0.1:7100', '127.0.0.1:7001']);
  });

  it('finds a shard by id', () => {
    expect(findShard(route, 's1')?.master).toBe('127.0.0.1:7001');
    expect(findShard(route, 's9')).toBeUndefined();
  });
});

describe('newRoute and nextRoute', () => {
  it('newRoute builds a route that passes the schema', () => {
    const route = newRoute('main', 1024, [shard('s0', 7000, [[0, 1023]])], 1);
    expect(routeSchema.safeParse(route).success).toBe(true);
    expect(route.epoch).toBe(1);
    expect(route.hash).toBe('crc16');
    expect(route.migrating).toEqual([]);
  });

  it('nextRoute bumps the epoch, replaces the shards and keeps the rest', () => {
    const route = { ...newRoute('main', 1024, [shard('s0', 7000, [[0, 1023]])], 7), updatedAt: '2000-01-01T00:00:00.000Z' };
    const shards = [shard('s0', 7000, [[0, 511]]), shard('s1', 7001, [[512, 1023]])];
    const next = nextRoute(route, shards);
    expect(next.epoch).toBe(8);
    expect(next.shards).toBe(shards);
    expect(next.cluster).toBe('main');
    expect(next.slotCount).toBe(1024);
    expect(next.updatedAt).not.toBe('2000-01-01T00:00:00.000Z');
    expect(new Date(next.updatedAt).toISOString()).toBe(next.updatedAt);
    // The original is untouched.
    expect(route.epoch).toBe(7);
    expect(route.shards).toHaveLength(1);
    expect(nextRoute(next, shards).epoch).toBe(9);
  });
});
