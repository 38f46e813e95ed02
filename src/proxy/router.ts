/**
 * One route, ready for the hot path: slot → the pool of its shard's master. A route change
 * builds a new Router and swaps it in one assignment: commands already sent finish where they
 * went, new ones use the new route.
 */
import { countSlots, slotOwners } from '../model/route.js';
import type { Route } from '../model/schemas.js';
import type { BackendPool } from './backend.js';

export class Router {
  readonly epoch: number;
  readonly slotCount: number;
  readonly cluster: string;
  private readonly owners: Int32Array;
  /** Pool of each shard's master, by shard index. */
  private readonly pools: BackendPool[];
  readonly masterAddresses: string[];
  /** Shard ids, by shard index. */
  readonly shardIds: string[];
  /** Slots each shard owns, by shard index. */
  readonly slotsOwned: number[];

  constructor(route: Route, poolFor: (address: string) => BackendPool) {
    this.epoch = route.epoch;
    this.slotCount = route.slotCount;
    this.cluster = route.cluster;
    this.owners = slotOwners(route);
    this.masterAddresses = route.shards.map((s) => s.master);
    this.shardIds = route.shards.map((s) => s.id);
    this.slotsOwned = route.shards.map((s) => countSlots(s.slots));
    this.pools = this.masterAddresses.map(poolFor);
  }

  /** The pool of the master that owns `slot`, or null when no shard owns it. */
  poolForSlot(slot: number): BackendPool | null {
    const owner = this.owners[slot]!;
    return owner < 0 ? null : this.pools[owner]!;
  }

  /** A slot that some shard owns (for commands without a key), or null when none is owned. */
  firstSlot(): number | null {
    const i = this.owners.findIndex((o) => o >= 0);
    return i === -1 ? null : i;
  }

  /** Index of the shard that owns `slot` in the route, or -1. */
  ownerOf(slot: number): number {
    return this.owners[slot]!;
  }

  /** Every shard's master (DBSIZE, SCAN), in shard order. */
  masters(): BackendPool[] {
    return this.pools;
  }
}
