/**
 * Pure operations on a route document. Nothing here does I/O; the store and the services
 * read a route, call these, and write the result with a compare on the revision they read.
 */
import { RefusedError } from './errors.js';
import { ROUTE_FORMAT, type Route, type Shard } from './schemas.js';
import { keySlot } from './slot.js';

export type SlotRange = [number, number];

/** Turns a sorted list of slots into inclusive ranges. */
export function toRanges(slots: Iterable<number>): SlotRange[] {
  const ranges: SlotRange[] = [];
  for (const s of slots) {
    const last = ranges[ranges.length - 1];
    if (last && s === last[1] + 1) last[1] = s;
    else ranges.push([s, s]);
  }
  return ranges;
}

/** "0-99,200,300-310": ranges as operators type them (`--slots`). */
export function rangesText(ranges: readonly SlotRange[]): string {
  return ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
}

export function countSlots(ranges: readonly SlotRange[]): number {
  return ranges.reduce((n, [a, b]) => n + b - a + 1, 0);
}

/** owners[slot] = index of the owning shard in route.shards, or -1. */
export function slotOwners(route: Pick<Route, 'slotCount' | 'shards'>): Int32Array {
  const owners = new Int32Array(route.slotCount).fill(-1);
  route.shards.forEach((shard, index) => {
    for (const [a, b] of shard.slots) owners.fill(index, a, b + 1);
  });
  return owners;
}

/** Where a key lives under a route: its slot, the owning shard and its master, and a migration of that slot. */
export interface KeyPlace {
  cluster: string;
  key: string;
  slot: number;
  shard: string | null;
  master: string | null;
  epoch: number;
  migrating: { from: string; to: string; phase: string } | null;
}

export function keyPlace(route: Route, key: string): KeyPlace {
  const slot = keySlot(key, route.slotCount);
  const owner = route.shards[slotOwners(route)[slot]!] ?? null;
  const m = route.migrating.find((x) => x.slot === slot) ?? null;
  return { cluster: route.cluster, key, slot, shard: owner?.id ?? null, master: owner?.master ?? null, epoch: route.epoch, migrating: m ? { from: m.from, to: m.to, phase: m.phase } : null };
}

export function unassignedSlots(route: Pick<Route, 'slotCount' | 'shards'>): number[] {
  const owners = slotOwners(route);
  const free: number[] = [];
  owners.forEach((owner, slot) => owner === -1 && free.push(slot));
  return free;
}

/**
 * Gives every slot without an owner to a shard, so that shard sizes end as even as possible.
 * Owned slots never move (that is migration's job). Returns the new shard list.
 */
export function assignUnownedEvenly(route: Pick<Route, 'slotCount' | 'shards'>): Shard[] {
  if (route.shards.length === 0) throw new RefusedError('the cluster has no shard to assign slots to');
  const sizes = route.shards.map((s) => countSlots(s.slots));
  const free = unassignedSlots(route);
  // Water-filling: each free slot raises the smallest shard (the first one on ties). Owned
  // slots never move, so a shard already over its share simply gets nothing.
  const gains = route.shards.map(() => 0);
  for (let k = 0; k < free.length; k++) {
    const smallest = sizes.indexOf(Math.min(...sizes));
    sizes[smallest]!++;
    gains[smallest]!++;
  }
  // Hand the free slots out in contiguous blocks, in shard order, so that routes stay short.
  let next = 0;
  return route.shards.map((shard, i) => {
    const gained = free.slice(next, (next += gains[i]!));
    if (gained.length === 0) return shard;
    return { ...shard, slots: toRanges([...expand(shard.slots), ...gained].sort((a, b) => a - b)) };
  });
}

function* expand(ranges: readonly SlotRange[]): Iterable<number> {
  for (const [a, b] of ranges) for (let s = a; s <= b; s++) yield s;
}

/** The next free shard id of the form s<N>. */
export function nextShardId(route: Pick<Route, 'shards'>): string {
  const used = new Set(route.shards.map((s) => s.id));
  for (let i = 0; ; i++) if (!used.has(`s${i}`)) return `s${i}`;
}

export function instancesOf(route: Pick<Route, 'shards'>): string[] {
  return route.shards.flatMap((s) => [s.master, ...s.slaves]);
}

export function findShard(route: Pick<Route, 'shards'>, id: string): Shard | undefined {
  return route.shards.find((s) => s.id === id);
}

export function newRoute(cluster: string, slotCount: number, shards: Shard[], epoch: number): Route {
  return { format: ROUTE_FORMAT, cluster, epoch, slotCount, hash: 'crc16', shards, migrating: [], updatedAt: new Date().toISOString() };
}

/** The route's optional lists of shard ids: absent when they list none. */
type ShardMarks = 'trimming' | 'feedingSplit';

/**
 * The route with `add` joined to the shards of one of its marks and `remove` left out of it; the
 * field is absent when it lists none, so a route without the mark reads as before. The epoch is the
 * caller's to change.
 */
function withMark(route: Route, mark: ShardMarks, add: readonly string[], remove: readonly string[]): Route {
  const ids = [...new Set([...(route[mark] ?? []), ...add])].filter((id) => !remove.includes(id));
  const { [mark]: _, updatedAt, ...rest } = route;
  return ids.length ? { ...rest, [mark]: ids, updatedAt } : { ...rest, updatedAt };
}

/** The shards that may hold foreign keys (`trimming`): a split's two, from its hold to the end of its trim. */
export function withTrimming(route: Route, add: readonly string[], remove: readonly string[] = []): Route {
  return withMark(route, 'trimming', add, remove);
}

/**
 * The shards whose master feeds a split's new master (`feedingSplit`): one replica that is not
 * one of its slaves, which a proxy's WAIT must not count (docs/split.md).
 */
export function withFeedingSplit(route: Route, add: readonly string[], remove: readonly string[] = []): Route {
  return withMark(route, 'feedingSplit', add, remove);
}

/** The same route with changed shards and the next epoch: every published change bumps the epoch. */
export function nextRoute(route: Route, shards: Shard[]): Route {
  return { ...route, shards, epoch: route.epoch + 1, updatedAt: new Date().toISOString() };
}
