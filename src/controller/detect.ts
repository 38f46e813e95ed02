/**
 * Failure detection, as pure functions of what the live replicas published. A master is down only
 * when a majority of the live controller replicas each judged it down on their own (no good probe
 * for the whole down window). A replica whose view has gone stale does not vote.
 */
import type { InstanceHealth, Route } from '../model/schemas.js';
import type { HealthViews } from '../store/health-store.js';

export interface MasterVerdict {
  shard: string;
  master: string;
  /** A majority of live replicas judge it down. */
  down: boolean;
  /** Replicas that judge it down. */
  votes: string[];
  needed: number;
  /** The earliest time a voter last saw it answer (ms since epoch), if any. */
  lastOkAt: number | null;
}

export interface DetectOptions {
  /** Live controller replicas (from the registry). */
  live: string[];
  now: number;
  /** A view older than this does not vote (its replica stopped refreshing it). */
  maxViewAgeMs: number;
}

export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

function votesDown(view: InstanceHealth | undefined, opts: DetectOptions): boolean {
  return view !== undefined && view.down && opts.now - Date.parse(view.observedAt) <= opts.maxViewAgeMs;
}

export function judgeMasters(route: Route, views: HealthViews, opts: DetectOptions): MasterVerdict[] {
  const needed = majority(opts.live.length);
  return route.shards.map((shard) => {
    const votes = opts.live.filter((c) => votesDown(views.get(c)?.get(shard.master), opts));
    const lastOks = votes.map((c) => views.get(c)?.get(shard.master)?.lastOkAt).filter((t): t is string => !!t).map(Date.parse);
    return {
      shard: shard.id,
      master: shard.master,
      down: opts.live.length > 0 && votes.length >= needed,
      votes,
      needed,
      lastOkAt: lastOks.length ? Math.min(...lastOks) : null,
    };
  });
}

/**
 * A replica that sees many masters down at once while the other replicas see none of them down
 * is most likely the one cut off from the network. It must not fail anything over.
 * Returns the reason when `self` looks isolated, else null.
 */
export function looksIsolated(route: Route, views: HealthViews, self: string, opts: DetectOptions): string | null {
  const others = opts.live.filter((c) => c !== self);
  if (others.length === 0 || route.shards.length < 2) return null;
  const mine = route.shards.filter((s) => votesDown(views.get(self)?.get(s.master), opts));
  if (mine.length < 2 || mine.length * 2 < route.shards.length) return null;
  const confirmed = mine.filter((s) => others.some((c) => votesDown(views.get(c)?.get(s.master), opts)));
  if (confirmed.length > 0) return null;
  return `${self} sees ${mine.length} of ${route.shards.length} masters down (${mine.map((s) => s.master).join(', ')}) but no other live replica (${others.join(', ')}) sees any of them down: this replica looks cut off`;
}
