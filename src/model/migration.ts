/**
 * Slot migration as data: the persisted record of a move, the slot lists operators type, and the
 * pure route changes of each phase (docs/migration.md). Nothing here does I/O.
 *
 * A move goes prepare -> moving -> committed. At every epoch the route says, for each moving
 * slot, where its keys may be: on `from` until it is committed, moved key by key to `to` (by the
 * proxies on access and by the leader's mover), and only on `to` once committed.
 */
import { z } from 'zod';
import { RefusedError, ValidationError } from './errors.js';
import { countSlots, rangesText, slotOwners, toRanges, type SlotRange } from './route.js';

export { rangesText };
import { clusterName, shardId, slotRange, taskStepSchema, type ProxyKind, type Route, type Shard, type SlotMigration } from './schemas.js';
import type { HealthViews } from './observations.js';

export const MIGRATION_STATES = ['running', 'paused', 'done', 'failed', 'cancelled'] as const;
export const FINISHED_MIGRATION_STATES = ['done', 'failed', 'cancelled'] as const;


/**
 * What every record a leader carries out step by step has (a migration, a split): the next step,
 * why it was asked and by whom, the controller that last wrote it, and when.
 */
export const leaderRunFields = {
  next: z.string(),
  reason: z.string(),
  requestedBy: z.string(),
  controller: z.string().nullable().default(null),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** An admin asked to pause (`migrate pause`, `split pause`): the leader stops at its next step boundary (or batch). */
  pause: z.boolean().default(false),
  /** An admin asked to cancel (`migrate cancel`, `split cancel`): the record is undone, the route ends as it was. */
  cancel: z.strictObject({ by: z.string(), at: z.string() }).nullable().default(null),
};

export const migrationRecordSchema = z.strictObject({
  id: z.string(),
  cluster: clusterName,
  /** The slots that move: from which shard (its owner when the move was asked) to which. */
  moves: z.array(z.strictObject({ from: shardId, to: shardId, slots: z.array(slotRange) })).min(1),
  state: z.enum(MIGRATION_STATES),
  ...leaderRunFields,
  /** Keys the mover and proxies have moved so far (the mover's count; proxies' moves are in their metrics). */
  keysMoved: z.number().int().min(0).default(0),
  /** Keys of the moving slots the mover found on a source, in its latest pass. */
  keysSeen: z.number().int().min(0).default(0),
  /** Full passes over the sources' keys done so far. */
  passes: z.number().int().min(0).default(0),
  /** When keys started to move (the `moving` epoch), for keys/s and time left. */
  movingSince: z.string().nullable().default(null),
  epochBefore: z.number().nullable().default(null),
  epochAfter: z.number().nullable().default(null),
  steps: z.array(taskStepSchema).default([]),
  error: z.string().nullable().default(null),
  /** Keys of the moving slots big enough to move in chunks (found by the `survey` step); `key` in base64. */
  bigKeys: z.array(z.strictObject({ key: z.string(), from: shardId, to: shardId, type: z.enum(['hash', 'list', 'set', 'zset', 'string']), elements: z.number().int() })).default([]),
  /** Keys per second the leader's mover may move at most (an admin's `--rate`); null: as fast as it can. */
  rate: z.number().int().min(1).nullable().default(null),
  /** Turned round by a cancel: the moves run from `to` back to `from`, and the route ends as it was. */
  reverse: z.boolean().default(false),
});
export type MigrationRecord = z.infer<typeof migrationRecordSchema>;

/**
 * The target shards of `moves` whose master a majority of the replicas that see it judge down,
 * with how many say so: keys could not land there, so such a migration is refused up front (the
 * failover of that shard comes first). With no views (no controller running), nothing is known
 * and nothing refused.
 */
export function targetsDown(route: Route, moves: Moves, views: HealthViews): { shard: string; master: string; down: number; of: number }[] {
  const out: { shard: string; master: string; down: number; of: number }[] = [];
  for (const id of new Set(moves.map((m) => m.to))) {
    const master = route.shards.find((s) => s.id === id)?.master;
    const seen = master ? [...views.values()].flatMap((byInstance) => byInstance.get(master) ?? []) : [];
    const down = seen.filter((h) => h.down).length;
    if (master && seen.length > 0 && down * 2 > seen.length) out.push({ shard: id, master, down, of: seen.length });
  }
  return out;
}

/** Highest `--rate` accepted: far above what one mover reaches, low enough to catch a typo's extra digits. */
export const MAX_MIGRATION_RATE = 10_000_000;

/** An admin's rate: a positive whole number of keys per second, or 0 / null for no limit. */
export function parseMigrationRate(value: unknown): number | null {
  if (value === undefined || value === null || value === 0) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_MIGRATION_RATE) {
    const shown = typeof value === 'number' && Number.isNaN(value) ? 'a number' : JSON.stringify(value);
    throw new ValidationError(`rate must be a whole number of keys per second from 1 to ${MAX_MIGRATION_RATE} (0: no limit), not ${shown}`);
  }
  return value;
}

/** "0-9 s0 -> s2, 40 s1 -> s2": the moves, for logs, history and the CLI. */
export function movesText(moves: MigrationRecord['moves']): string {
  return moves.map((m) => `${rangesText(m.slots)} ${m.from} -> ${m.to}`).join(', ');
}

/** The moves as they run now: turned round after a cancel. */
export function effectiveMoves(m: Pick<MigrationRecord, 'moves' | 'reverse'>): MigrationRecord['moves'] {
  return m.reverse ? m.moves.map((move) => ({ from: move.to, to: move.from, slots: move.slots })) : m.moves;
}

/** Steps at which a cancel can still turn the migration round (after them it finishes by itself). */
export const CANCELLABLE_STEPS: ReadonlySet<string> = new Set(['survey', 'prepare', 'hold-barrier', 'big-keys', 'moving', 'move']);

/** Whether a key of the migration may have moved yet (a cancel then has to bring keys back). */
export function keysMayHaveMoved(m: Pick<MigrationRecord, 'next' | 'bigKeys'>): boolean {
  if (m.next === 'survey' || m.next === 'prepare' || m.next === 'hold-barrier') return false;
  return !(m.next === 'moving' && m.bigKeys.length === 0);
}

export function canCancelMigration(m: MigrationRecord): boolean {
  return !migrationFinished(m) && !m.reverse && CANCELLABLE_STEPS.has(m.next);
}

export function migrationFinished(m: Pick<MigrationRecord, 'state'>): boolean {
  return (FINISHED_MIGRATION_STATES as readonly string[]).includes(m.state);
}

/** The slots of a record as a sorted list. */
export function migrationSlots(m: Pick<MigrationRecord, 'moves'>): number[] {
  return m.moves.flatMap((move) => expandRanges(move.slots)).sort((a, b) => a - b);
}

export function expandRanges(ranges: readonly SlotRange[]): number[] {
  const slots: number[] = [];
  for (const [a, b] of ranges) for (let s = a; s <= b; s++) slots.push(s);
  return slots;
}

/**
 * Parses "A-B[,C-D...]" (single slots allowed: "7,9-12") into sorted, distinct slots below
 * `slotCount`. Refuses overlaps and anything else with the reason.
 */
export function parseSlotList(text: string, slotCount: number): number[] {
  const seen = new Set<number>();
  const parts = text.split(',').map((p) => p.trim());
  if (text.trim() === '' || parts.some((p) => p === '')) throw new ValidationError(`--slots "${text}": expected ranges like 0-99,200-299`);
  for (const part of parts) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new ValidationError(`--slots: "${part}" is not a slot or a range A-B`);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (first > last) throw new ValidationError(`--slots: range ${part} ends before it starts`);
    if (last >= slotCount) throw new ValidationError(`--slots: slot ${last} is outside 0..${slotCount - 1}`);
    for (let s = first; s <= last; s++) {
      if (seen.has(s)) throw new ValidationError(`--slots: slot ${s} is listed twice`);
      seen.add(s);
    }
  }
  return [...seen].sort((a, b) => a - b);
}

/**
 * Which slots come from which shard, for a move of `slots` to shard `to`; refused (nothing
 * changes) for an unknown shard, a slot nobody owns, a slot already migrating, or a move to the
 * owner itself.
 */
export type Moves = MigrationRecord['moves'];

export function planMoves(route: Route, slots: readonly number[], to: string, proxy: ProxyKind = 'cfgserver'): Moves {
  refuseWhileMigrating(route, proxy);
  if (!route.shards.some((s) => s.id === to)) throw new RefusedError(`cluster ${route.cluster} has no shard ${to}`);
  if (slots.length === 0) throw new RefusedError('no slot to move');
  const owners = slotOwners(route);
  const bySource = new Map<string, number[]>();
  const unowned: number[] = [];
  const already: number[] = [];
  for (const slot of slots) {
    const owner = owners[slot]!;
    if (owner < 0) unowned.push(slot);
    else if (route.shards[owner]!.id === to) already.push(slot);
    else {
      const from = route.shards[owner]!.id;
      bySource.set(from, [...(bySource.get(from) ?? []), slot]);
    }
  }
  if (unowned.length) throw new RefusedError(`slots ${rangesText(toRanges(unowned))} have no owner: assign them (cfgctl slots assign) instead of migrating`);
  if (already.length) throw new RefusedError(`slots ${rangesText(toRanges(already))} are already owned by ${to}`);
  return [...bySource].map(([from, list]) => ({ from, to, slots: toRanges(list) }));
}

/**
 * Whether a new migration may begin: one migration at a time (refused while the route has slots
 * migrating), and none for a cluster behind twemproxy, which places keys by its own hash over the
 * shards, whatever the route says about slots (docs/twemproxy.md).
 */
function refuseWhileMigrating(route: Route, proxy: ProxyKind): void {
  if (proxy === 'twemproxy') throw new RefusedError(`cluster ${route.cluster} is behind twemproxy, which places keys by its own hash over the shards, not by the route's slots: moving slots would not move where clients read and write keys (docs/twemproxy.md)`);
  if (route.migrating.length > 0) throw new RefusedError(`slots ${rangesText(toRanges(route.migrating.map((m) => m.slot).sort((a, b) => a - b)))} are already migrating; one migration at a time`);
}

/** Every slot of a shard to the others, smallest first, for `shard drain`; refused when no other shard would be left. */
export function drainMoves(route: Route, shard: string, proxy: ProxyKind = 'cfgserver'): Moves {
  refuseWhileMigrating(route, proxy);
  const source = route.shards.find((s) => s.id === shard);
  if (!source) throw new RefusedError(`cluster ${route.cluster} has no shard ${shard}`);
  const others = route.shards.filter((s) => s.id !== shard);
  if (others.length === 0) throw new RefusedError(`shard ${shard} is the only shard: draining it would leave no shard to hold its slots`);
  const slots = expandRanges(source.slots);
  if (slots.length === 0) throw new RefusedError(`shard ${shard} owns no slot: nothing to drain (cfgctl shard remove takes it out)`);
  // Fill the smallest shards first, so that the cluster ends as even as it can; each gets one
  // contiguous block, so that routes stay short.
  const sizes = new Map(others.map((s) => [s.id, countSlots(s.slots)]));
  const counts = new Map<string, number>();
  for (let k = 0; k < slots.length; k++) {
    const smallest = [...sizes].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
    sizes.set(smallest, sizes.get(smallest)! + 1);
    counts.set(smallest, (counts.get(smallest) ?? 0) + 1);
  }
  let next = 0;
  const gains = new Map([...counts].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([to, n]) => [to, slots.slice(next, (next += n))]));
  return [...gains].map(([to, list]) => ({ from: shard, to, slots: toRanges(list) }));
}

/**
 * Moves that even out the slots over the shards: each shard over its share gives its highest slots
 * to the shards under it. Empty when the cluster is already even (within one slot).
 */
export function rebalanceMoves(route: Route, proxy: ProxyKind = 'cfgserver'): Moves {
  refuseWhileMigrating(route, proxy);
  const owned = route.shards.map((s) => ({ id: s.id, slots: expandRanges(s.slots) }));
  const total = owned.reduce((n, s) => n + s.slots.length, 0);
  if (owned.length === 0 || total === 0) return [];
  const base = Math.floor(total / owned.length);
  const extra = total % owned.length;
  // The first `extra` shards (in route order) keep one slot more: a stable target.
  const targetOf = (i: number) => base + (i < extra ? 1 : 0);
  const surplus: { id: string; slots: number[] }[] = [];
  const deficit: { id: string; need: number }[] = [];
  owned.forEach((s, i) => {
    const diff = s.slots.length - targetOf(i);
    if (diff > 0) surplus.push({ id: s.id, slots: s.slots.slice(s.slots.length - diff) });
    else if (diff < 0) deficit.push({ id: s.id, need: -diff });
  });
  const plan: Moves = [];
  for (const d of deficit) {
    while (d.need > 0) {
      const src = surplus.find((s) => s.slots.length > 0)!;
      const take = src.slots.splice(0, Math.min(d.need, src.slots.length));
      d.need -= take.length;
      plan.push({ from: src.id, to: d.id, slots: toRanges(take) });
    }
  }
  return plan;
}

/** The route with every slot of the record marked as migrating in `phase` (a new epoch). */
export function routeWithPhase(route: Route, m: Pick<MigrationRecord, 'moves'>, phase: SlotMigration['phase']): Route {
  const migrating = m.moves.flatMap((move) => expandRanges(move.slots).map((slot): SlotMigration => ({ slot, from: move.from, to: move.to, phase })));
  return { ...route, migrating, epoch: route.epoch + 1, updatedAt: new Date().toISOString() };
}

/** The route after the move: the slots belong to `to`, nothing migrates (a new epoch). */
export function routeCommitted(route: Route, m: Pick<MigrationRecord, 'moves'>): Route {
  const moved = new Set(migrationSlots(m));
  const shards = route.shards.map((shard): Shard => {
    const gained = m.moves.filter((move) => move.to === shard.id).flatMap((move) => expandRanges(move.slots));
    const slots = [...expandRanges(shard.slots).filter((s) => !moved.has(s)), ...gained].sort((a, b) => a - b);
    return { ...shard, slots: toRanges(slots) };
  });
  return { ...route, shards, migrating: [], epoch: route.epoch + 1, updatedAt: new Date().toISOString() };
}

/** The route with the slots migrating back to where they came from (a cancel after keys moved). */
export function routeReversed(route: Route, m: Pick<MigrationRecord, 'moves'>): Route {
  const migrating = m.moves.flatMap((move) => expandRanges(move.slots).map((slot): SlotMigration => ({ slot, from: move.to, to: move.from, phase: 'moving' })));
  return { ...route, migrating, epoch: route.epoch + 1, updatedAt: new Date().toISOString() };
}

/** The route with no slot migrating and owners unchanged (a new epoch). */
export function routeWithoutMigration(route: Route): Route {
  return { ...route, migrating: [], epoch: route.epoch + 1, updatedAt: new Date().toISOString() };
}
