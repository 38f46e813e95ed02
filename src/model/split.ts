/**
 * Shard split by replication as data (docs/split.md): the persisted record the leader carries out,
 * the default choice of slots, and the pure route changes of the cut-over. Nothing here does I/O.
 *
 *   attach -> sync -> hold -> hold-barrier -> catchup -> commit -> trim -> done
 *
 * Until `commit` the split can be abandoned (`abort`: the route as before, the new master detached);
 * from `commit` on both shards are ordinary shards and only the trim is left.
 */
import { z } from 'zod';
import { RefusedError } from './errors.js';
import type { InstanceFacts } from './instance-facts.js';
import { expandRanges, leaderRunFields, parseSlotList, routeCommitted, routeWithPhase, type Moves } from './migration.js';
import { rangesText, toRanges, withFeedingSplit, withTrimming } from './route.js';
import { address, clusterName, shardId, slotRange, taskStepSchema, type Route, type Shard } from './schemas.js';

export const SPLIT_STATES = ['running', 'paused', 'done', 'failed', 'cancelled'] as const;
export const FINISHED_SPLIT_STATES: ReadonlySet<string> = new Set(['done', 'failed', 'cancelled']);

/** Steps after which nothing is undone: the new shard owns its slots. */
export const CUT_OVER_STEPS: ReadonlySet<string> = new Set(['hold', 'hold-barrier', 'catchup', 'commit']);

/**
 * Steps (as `next`) at which a cancel still undoes the split: up to the commit, the source owns
 * every slot and holds every key. From `commit` on both shards are ordinary and the trim must end.
 */
export const CANCELLABLE_SPLIT_STEPS: ReadonlySet<string> = new Set(['attach', 'sync', 'hold', 'hold-barrier', 'catchup']);

/**
 * Steps inside the cut-over: a pause asked meanwhile waits for it to end (at `trim`), so that the
 * proxies never hold the moving slots longer than the cut-over takes.
 */
export const UNPAUSABLE_SPLIT_STEPS: ReadonlySet<string> = new Set(['hold-barrier', 'catchup', 'commit']);

const trimSide = z.strictObject({ scanned: z.number().int().min(0).default(0), removed: z.number().int().min(0).default(0), done: z.boolean().default(false) });

export const splitRecordSchema = z.strictObject({
  id: z.string(),
  cluster: clusterName,
  /** The shard that gives slots, and its master when the split was asked (a failover of it aborts the split). */
  source: shardId,
  sourceMaster: address,
  /** The shard the split makes: its master replicates from the source's master until the cut-over. */
  shard: z.strictObject({ id: shardId, master: address, slaves: z.array(address).default([]) }),
  slots: z.array(slotRange).min(1),
  state: z.enum(SPLIT_STATES),
  ...leaderRunFields,
  /**
   * Replication progress of the new master, as last read (the sync step). `fullSyncBytes`: bytes of
   * the RDB received or loaded so far while its full sync runs, `fullSyncTotalBytes` its size when
   * Redis knows it (model/full-sync-progress.ts); null otherwise, and in records written before them.
   */
  sync: z
    .strictObject({
      linkUp: z.boolean(),
      offset: z.number(),
      sourceOffset: z.number(),
      lagBytes: z.number(),
      keys: z.number().nullable(),
      fullSyncBytes: z.number().nullable().default(null),
      fullSyncTotalBytes: z.number().nullable().default(null),
      at: z.string(),
    })
    .nullable()
    .default(null),
  /**
   * Replication settings the split changed for its full sync (controller/splits/split-sync-settings.ts):
   * each changed parameter with the value it had, per side, to be put back after the sync or an abort.
   */
  syncSettings: z
    .strictObject({ source: z.record(z.string(), z.string()), shard: z.record(z.string(), z.string()), restored: z.boolean() })
    .nullable()
    .default(null),
  /**
   * The source's `min-replicas-to-write` raised by one while the new master streams from it
   * (controller/splits/split-fence.ts): what it was, what it became, and whether it was put back.
   */
  fenceRaise: z
    .strictObject({ instance: address, from: z.number().int().min(1), to: z.number().int().min(2), restored: z.boolean() })
    .nullable()
    .default(null),
  /** From the hold route published to the commit route published: how long the moved slots' commands waited. */
  holdMs: z.number().nullable().default(null),
  epochBefore: z.number().nullable().default(null),
  epochAfter: z.number().nullable().default(null),
  /** What the trim removed: on the source, the keys of the moved slots; on the new shard, every other key. */
  trim: z.strictObject({ source: trimSide, shard: trimSide }).default({ source: { scanned: 0, removed: 0, done: false }, shard: { scanned: 0, removed: 0, done: false } }),
  /** Keys per second the trim may UNLINK on each side (null: as fast as it goes). */
  trimRate: z.number().int().min(1).nullable().default(null),
  steps: z.array(taskStepSchema).default([]),
  error: z.string().nullable().default(null),
});
export type SplitRecord = z.infer<typeof splitRecordSchema>;
export type SplitSyncProgress = NonNullable<SplitRecord['sync']>;

export function splitFinished(s: Pick<SplitRecord, 'state'>): boolean {
  return FINISHED_SPLIT_STATES.has(s.state);
}

/** Why a cancel is refused now, or null when it would undo the split. */
export function splitCancelRefusal(s: Pick<SplitRecord, 'id' | 'state' | 'next' | 'shard' | 'source'>): string | null {
  if (splitFinished(s)) return `split ${s.id} has already ended: ${s.state}`;
  if (CANCELLABLE_SPLIT_STEPS.has(s.next)) return null;
  return `split ${s.id} is past its commit (at step ${s.next}): shards ${s.source} and ${s.shard.id} are both ordinary shards now, and the trim must finish; to undo it, migrate the slots back (cfgctl migrate)`;
}

/** The major version of a Redis version string ("7.0.15" -> 7), or null when it names none. */
export function majorVersion(version: string): number | null {
  const m = /^(\d+)\./.exec(version);
  return m ? Number(m[1]) : null;
}

/**
 * Why a new instance cannot replicate the source, by version: a replica must be of the same major
 * version as its master or newer (an older one cannot read a newer RDB), or null.
 */
export function versionProblem(instance: string, version: string, sourceMaster: string, sourceVersion: string): string | null {
  const mine = majorVersion(version);
  const theirs = majorVersion(sourceVersion);
  if (mine === null || theirs === null) return `${instance} runs Redis ${version} and ${sourceMaster} ${sourceVersion}: the versions cannot be compared`;
  if (mine < theirs) return `${instance} runs Redis ${version}, older than the source master's ${sourceVersion} (${sourceMaster}): it cannot load its data; use Redis ${theirs} or newer`;
  return null;
}

/**
 * Whether `instance` has room for the source's whole data set, which the full sync copies (both
 * halves) before the trim: its `maxmemory` when set; without one, its host's memory
 * (`total_system_memory`) less what it already uses. The host's other tenants are not known to
 * Redis: the second check catches a shard that could never fit, not a host that is merely busy.
 */
export function roomProblem(instance: string, facts: Pick<InstanceFacts, 'maxmemory' | 'systemMemory' | 'usedMemory'>, sourceMaster: string, sourceUsed: number): string | null {
  if (facts.maxmemory > 0) {
    if (facts.maxmemory >= sourceUsed) return null;
    return `${instance} has maxmemory ${facts.maxmemory} bytes, below the ${sourceUsed} bytes ${sourceMaster} uses: the full sync copies the whole data set before the trim (raise its maxmemory, or use an instance with room)`;
  }
  const room = facts.systemMemory - facts.usedMemory;
  if (facts.systemMemory <= 0 || room >= sourceUsed) return null;
  return `${instance} has no maxmemory and its host has ${facts.systemMemory} bytes of memory (${facts.usedMemory} used by it): less than the ${sourceUsed} bytes ${sourceMaster} uses, which the full sync copies whole before the trim (use an instance on a host with room)`;
}

/** The split as the one move the route's migration phases speak of. */
export function splitMoves(s: Pick<SplitRecord, 'source' | 'shard' | 'slots'>): Moves {
  return [{ from: s.source, to: s.shard.id, slots: s.slots }];
}

/**
 * The slots a split moves: those given (each must be the shard's), or the upper half of the
 * shard's slots. Refused with the reason otherwise; nothing changes.
 */
export function splitSlots(route: Route, source: Shard, text: string | undefined): number[] {
  const owned = expandRanges(source.slots);
  if (text === undefined || text === '') {
    if (owned.length < 2) throw new RefusedError(`shard ${source.id} owns ${owned.length} slot${owned.length === 1 ? '' : 's'}: a split needs at least 2`);
    return owned.slice(Math.ceil(owned.length / 2));
  }
  const slots = parseSlotList(text, route.slotCount);
  const mine = new Set(owned);
  const foreign = slots.filter((s) => !mine.has(s));
  if (foreign.length) throw new RefusedError(`slots ${rangesText(toRanges(foreign))} are not owned by shard ${source.id}`);
  if (slots.length === owned.length) throw new RefusedError(`the split would move every slot of shard ${source.id}; leave it some (or use cfgctl migrate)`);
  return slots;
}

/**
 * The hold of the cut-over: the new shard in the route (no slot yet), its slots held by every proxy
 * (a new epoch). Both shards are marked `trimming` from here until the trim is over: from the
 * commit on each master holds the other's keys, and proxies must count only owned ones.
 */
export function routeHolding(route: Route, s: SplitRecord): Route {
  // A shard of that id added by hand since the request is not ours: its slots must not be given to it.
  const same = route.shards.find((x) => x.id === s.shard.id);
  if (same && (same.master !== s.shard.master || same.slots.length > 0)) throw new RefusedError(`cluster ${route.cluster} has another shard ${s.shard.id} now (master ${same.master}): the split cannot add its own`);
  const withShard = route.shards.some((x) => x.id === s.shard.id) ? route : { ...route, shards: [...route.shards, { id: s.shard.id, master: s.shard.master, slaves: s.shard.slaves, slots: [] }] };
  return routeWithPhase(withTrimming(withShard, [s.source, s.shard.id]), { moves: splitMoves(s) }, 'prepare');
}

/**
 * The new master's link to the source is up: from here it counts for the source's WAIT, so the
 * route says the source feeds a split (a new epoch), or the route itself when it says so already.
 */
export function routeFeedingSplit(route: Route, s: Pick<SplitRecord, 'source'>): Route {
  if (route.feedingSplit?.includes(s.source)) return route;
  return { ...withFeedingSplit(route, [s.source]), epoch: route.epoch + 1, updatedAt: new Date().toISOString() };
}

/**
 * The commit: the new shard owns the moved slots, nothing migrates, and its master (promoted at
 * the catch-up) no longer replicates from the source (a new epoch).
 */
export function routeSplit(route: Route, s: SplitRecord): Route {
  return routeCommitted(withFeedingSplit(route, [], [s.source]), { moves: splitMoves(s) });
}

/** The route as before the split: no slot held, the new shard gone (a new epoch). */
export function routeWithoutSplit(route: Route, s: SplitRecord): Route {
  // Only the split's own shard goes: one of the same id added by hand since stays.
  const ours = (x: Shard) => x.id === s.shard.id && x.master === s.shard.master && x.slots.length === 0;
  const before = withFeedingSplit(withTrimming(route, [], [s.source, s.shard.id]), [], [s.source]);
  return { ...before, shards: route.shards.filter((x) => !ours(x)), migrating: [], epoch: route.epoch + 1, updatedAt: new Date().toISOString() };
}

/** After the trim: neither shard may hold the other's keys any more (a new epoch), or the route itself when already so. */
export function routeTrimmed(route: Route, s: Pick<SplitRecord, 'source' | 'shard'>): Route {
  const ids = [s.source, s.shard.id];
  if (!route.trimming?.some((id) => ids.includes(id))) return route;
  return { ...withTrimming(route, [], ids), epoch: route.epoch + 1, updatedAt: new Date().toISOString() };
}

/** "s0 -> s2, slots 512-1023": for logs, history and the CLI. */
export function splitText(s: Pick<SplitRecord, 'source' | 'shard' | 'slots'>): string {
  return `${s.source} -> ${s.shard.id}, slots ${rangesText(s.slots)}`;
}
