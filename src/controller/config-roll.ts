/**
 * Pure: which setting changes make Redis work hard, and which instance of each shard may take its
 * heavy changes now. A heavy change goes to one instance per shard at a time, the slaves first (by
 * address) and the master last, and only when every instance of the shard answers and has settled
 * (no AOF rewrite, RDB save, load or full sync under way, no eviction burst, links up): so the
 * shard always has instances that are not busy, and a setting that hurts stops the roll on its
 * first slave, before it reaches the master.
 *
 * The roll keeps no state: each pass derives where it stands from what the instances report (their
 * settings and their work), so a new leader resumes it exactly where it is, and a pass run twice
 * does nothing twice.
 *
 * Shards roll side by side, except that two instances on one host never take heavy work together:
 * a fork and a full write of the data set cost the host's memory and disk, which instances on one
 * host share (on loopback, as in the playground, the roll is therefore one instance at a time).
 */
import { splitAddress } from '../model/address.js';
import { busyReason, type InstanceFacts } from '../model/instance-facts.js';
import { memoryBytes, type ConfigRole } from '../model/redis-config.js';
import type { ConfigChange } from './config-plan.js';

/** Keys whose change may be heavy: the instance's facts are read before deciding. */
export const HEAVY_CANDIDATES: ReadonlySet<string> = new Set(['appendonly', 'maxmemory', 'save']);

/** A change that makes Redis work hard, with why. */
export interface HeavyChange extends ConfigChange {
  heavy: string;
}

/**
 * Why this change makes the instance work hard, or null when it does not. Without facts (the
 * instance did not answer) a candidate counts as heavy: the roll then waits for it anyway.
 */
export function heavyReason(change: Pick<ConfigChange, 'key' | 'from' | 'to'>, facts: InstanceFacts | null): string | null {
  const to = change.to.trim().toLowerCase();
  switch (change.key) {
    case 'appendonly':
      return to === 'yes' && change.from.trim().toLowerCase() !== 'yes' ? 'turning the AOF on makes Redis fork and write its whole data set to disk' : null;
    case 'maxmemory': {
      const bytes = memoryBytes(to);
      if (bytes === null || bytes === 0) return null;
      // Raising a limit frees Redis from evicting; only a new or lower one can start it.
      const before = memoryBytes(change.from) ?? 0;
      if (before !== 0 && bytes >= before) return null;
      if (!facts) return 'maxmemory lowered where the memory in use is not known';
      return bytes < facts.usedMemory ? `maxmemory ${change.to} is below the ${facts.usedMemory} bytes in use: Redis evicts the difference at once` : null;
    }
    case 'save':
      if (to === '') return null;
      if (!facts) return 'a save schedule where the unsaved changes are not known';
      return facts.unsavedChanges > 0 ? `a save schedule on an instance with ${facts.unsavedChanges} unsaved changes can start a BGSAVE (a fork) at once` : null;
    default:
      return null;
  }
}

/**
 * One instance of a shard: its role in the route, what it reports (null: no answer), and the heavy
 * changes it still needs (null: its settings were not compared this pass, so that is not known).
 */
export interface RollInstance {
  instance: string;
  role: ConfigRole;
  facts: InstanceFacts | null;
  heavy: HeavyChange[] | null;
}

export interface RollShard {
  shard: string;
  /** Every instance of the shard, also those without a change: a busy one holds the roll. */
  instances: RollInstance[];
}

export interface RollStep {
  shard: string;
  instance: string;
  role: ConfigRole;
  changes: HeavyChange[];
  /** The instances of the shard that still wait for their turn after this one, in order. */
  after: string[];
}

export interface RollWait {
  shard: string;
  reason: string;
  /** True when the wait ends by itself (a rewrite under way); false when it needs somebody. */
  settling: boolean;
}

/** Slaves by address, then the master: the order heavy changes go through a shard. */
export function rollOrder<T extends Pick<RollInstance, 'instance' | 'role'>>(instances: T[]): T[] {
  const slaves = instances.filter((i) => i.role === 'slave').sort((a, b) => a.instance.localeCompare(b.instance));
  return [...slaves, ...instances.filter((i) => i.role === 'master')];
}

/** At most one step per shard and per host this pass, and why each other shard with heavy changes waits. */
export function planRoll(shards: RollShard[]): { steps: RollStep[]; waits: RollWait[] } {
  const hostBusy = new Map<string, string>();
  for (const s of shards) for (const i of s.instances) if (i.facts && busyReason(i.facts)) hostBusy.set(splitAddress(i.instance).host, i.instance);
  const steps: RollStep[] = [];
  const waits: RollWait[] = [];
  for (const s of [...shards].sort((a, b) => a.shard.localeCompare(b.shard))) {
    const order = rollOrder(s.instances);
    const pending = order.filter((i) => i.heavy?.length);
    if (pending.length === 0) continue;
    const wait = shardWait(order);
    if (wait) {
      waits.push({ shard: s.shard, ...wait });
      continue;
    }
    const next = pending[0]!;
    const host = splitAddress(next.instance).host;
    const other = hostBusy.get(host);
    if (other) {
      waits.push({ shard: s.shard, reason: `${other} on the same host works first`, settling: true });
      continue;
    }
    hostBusy.set(host, next.instance);
    steps.push({ shard: s.shard, instance: next.instance, role: next.role, changes: next.heavy!, after: pending.slice(1).map((i) => i.instance) });
  }
  return { steps, waits };
}

/**
 * Why the shard cannot take heavy work now: an instance that does not answer, one not compared yet
 * (it would be skipped as if done), one not in the role the route gives it (a restarted slave the
 * leader has not made a slave again), or one that is busy.
 */
function shardWait(order: RollInstance[]): { reason: string; settling: boolean } | null {
  for (const i of order) {
    if (!i.facts) return { reason: `${i.instance} does not answer`, settling: false };
    if (i.heavy === null) return { reason: `${i.instance} was not compared with the desired config this pass`, settling: true };
    if (i.facts.role !== i.role) return { reason: `${i.instance} is a ${i.facts.role}, the route says ${i.role}`, settling: true };
    const busy = busyReason(i.facts);
    if (busy) return { reason: `${i.instance} ${busy.reason}`, settling: busy.settling };
  }
  return null;
}
