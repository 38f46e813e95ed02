/**
 * One route, ready for the hot path: slot → the pool of its shard's master. A route change
 * builds a new Router and swaps it in one assignment: commands already sent finish where they
 * went, new ones use the new route.
 *
 * A migrating slot (docs/migration.md) is served where its keys are going: in phase `prepare` its
 * commands are held, in phase `moving` each command first moves its keys from the source master
 * (`moveSource`) to the master that `poolForSlot` names, then runs there.
 */
import { countSlots, slotOwners } from '../model/route.js';
import type { Route } from '../model/schemas.js';
import type { BackendPool } from './backend.js';

/** What the proxy does with a slot's commands. */
export const SLOT_SERVED = 0;
export const SLOT_HELD = 1;
export const SLOT_MOVING = 2;

/** Bytes of key names a router remembers as gone from their source, at most (then it starts over). */
const GONE_FROM_SOURCE_BYTES = 32 << 20;

/** A set of key names bounded in bytes: past the bound it is emptied, which costs only MIGRATEs answered NOKEY. */
export class KeySet {
  private readonly keys = new Set<string>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  has(key: Buffer): boolean {
    return this.keys.size > 0 && this.keys.has(key.toString('latin1'));
  }

  add(key: Buffer): void {
    if (this.bytes + key.length > this.maxBytes) {
      this.keys.clear();
      this.bytes = 0;
      if (key.length > this.maxBytes) return;
    }
    const name = key.toString('latin1');
    if (this.keys.has(name)) return;
    this.keys.add(name);
    this.bytes += key.length;
  }

  get size(): number {
    return this.keys.size;
  }
}

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
  /** Whether each shard's master may hold keys of slots it does not own (a split's trim), by shard index. */
  readonly trimming: boolean[];
  /** Whether each shard's master feeds a split's new master (one replica WAIT must not count), by shard index. */
  readonly feedingSplit: boolean[];
  /** Whether any slot migrates (the hot path checks `phaseOf` only then). */
  readonly migrating: boolean;
  /** SLOT_SERVED, SLOT_HELD or SLOT_MOVING, by slot. */
  private readonly phases: Uint8Array;
  /** The shard a moving slot's keys come from (-1 when the slot is not moving), by slot. */
  private readonly sources: Int32Array;
  /** The shard that serves each slot: its owner, or where a moving slot's keys go. */
  private readonly servers: Int32Array;

  /**
   * Keys of moving slots this proxy knows are no longer on their source under this route: it
   * moved them, or the source answered NOKEY. Nothing writes a moving slot's key at the source
   * while this route holds (every proxy holds or moves first; the leader's mover only takes keys
   * away), so such a key is served at the target at once, without another MIGRATE. A new route
   * (a cancel, a failover of the source) is a new Router, and starts with none.
   */
  readonly goneFromSource = new KeySet(GONE_FROM_SOURCE_BYTES);

  constructor(route: Route, poolFor: (address: string) => BackendPool) {
    this.epoch = route.epoch;
    this.slotCount = route.slotCount;
    this.cluster = route.cluster;
    this.owners = slotOwners(route);
    this.masterAddresses = route.shards.map((s) => s.master);
    this.shardIds = route.shards.map((s) => s.id);
    this.slotsOwned = route.shards.map((s) => countSlots(s.slots));
    this.trimming = route.shards.map((s) => route.trimming?.includes(s.id) ?? false);
    this.feedingSplit = route.shards.map((s) => route.feedingSplit?.includes(s.id) ?? false);
    this.pools = this.masterAddresses.map(poolFor);
    this.phases = new Uint8Array(route.slotCount);
    this.sources = new Int32Array(route.slotCount).fill(-1);
    this.servers = Int32Array.from(this.owners);
    this.migrating = route.migrating.length > 0;
    for (const m of route.migrating) {
      if (m.phase === 'prepare') {
        this.phases[m.slot] = SLOT_HELD;
        continue;
      }
      this.phases[m.slot] = SLOT_MOVING;
      this.sources[m.slot] = this.shardIds.indexOf(m.from);
      this.servers[m.slot] = this.shardIds.indexOf(m.to);
    }
  }

  /** The pool of the master that serves `slot` (see the class comment), or null when no shard owns it. */
  poolForSlot(slot: number): BackendPool | null {
    const server = this.servers[slot]!;
    return server < 0 ? null : this.pools[server]!;
  }

  /** SLOT_SERVED, SLOT_HELD or SLOT_MOVING. */
  phaseOf(slot: number): number {
    return this.phases[slot]!;
  }

  /** The master a moving slot's keys come from (null when the slot is not moving). */
  moveSource(slot: number): BackendPool | null {
    const source = this.sources[slot]!;
    return source < 0 ? null : this.pools[source]!;
  }

  /** Whether the master of shard `shard` may hold keys of `slot`: it owns it, or the slot moves to or from it. */
  mayHold(shard: number, slot: number): boolean {
    return this.owners[slot] === shard || this.servers[slot] === shard || this.sources[slot] === shard;
  }

  /** Whether the master of shard `shard` may hold keys at all (for DBSIZE, SCAN, KEYS). */
  holdsAny(shard: number): boolean {
    return this.slotsOwned[shard]! > 0 || this.servers.includes(shard);
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
