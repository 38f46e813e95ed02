/**
 * What one replica sees of the instances, against what the others see — pure functions of the
 * health views the replicas published. A leader that cannot reach instances that a majority of
 * the replicas reach (a partial network cut around its host) would refuse every failover for
 * want of a reachable slave, for ever; it should let a replica that sees more lead. And the slave
 * a failover promotes must be one the majority can reach, not one the leader alone can.
 */
import type { HealthViews } from '../model/observations.js';

/** Instances that at least `needed` of `voters` saw answer in their latest view. */
export function reachableByMajority(instances: string[], views: HealthViews, voters: string[], needed: number): Set<string> {
  return new Set(instances.filter((a) => voters.filter((c) => views.get(c)?.get(a)?.reachable === true).length >= needed));
}

/** Instances of `seen` (those the majority reaches) that `who` judges down (no good probe for its whole down window). */
export function blindSpots(seen: ReadonlySet<string>, views: HealthViews, who: string): string[] {
  return [...seen].filter((a) => views.get(who)?.get(a)?.down === true);
}

/**
 * Why `self`, the leader, should step aside, or null: it judges down instances that a majority of
 * the replicas reach, and another live replica is blind to fewer of them. (When every replica has
 * the same blind spot, nobody would do better: the leader stays.)
 */
export function stepAsideReason(instances: string[], views: HealthViews, self: string, voters: string[], needed: number): string | null {
  const seen = reachableByMajority(instances, views, voters, needed);
  const mine = blindSpots(seen, views, self);
  if (mine.length === 0) return null;
  const better = voters.filter((c) => c !== self && views.has(c) && blindSpots(seen, views, c).length < mine.length);
  if (better.length === 0) return null;
  return `${self} cannot reach ${mine.join(', ')}, which ${needed}+ of the replicas (${voters.join(', ')}) reach; ${better.join(', ')} ${better.length === 1 ? 'sees' : 'see'} more: stepping aside so that one of them leads`;
}

/**
 * Instances that at least `needed` voters could not reach in their latest view: not to be
 * promoted, even if the leader reaches them (clients and proxies are likelier to be where the
 * majority is). Maps each to the reason.
 */
export function unreachableByMajority(instances: string[], views: HealthViews, voters: string[], needed: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of instances) {
    const blind = voters.filter((c) => views.get(c)?.get(a)?.reachable === false);
    if (blind.length >= needed) out.set(a, `${a} is unreachable from ${blind.length} replicas (${blind.join(', ')}), a majority`);
  }
  return out;
}

/**
 * Instances that at least `needed` voters judge down in their latest view (no good probe for
 * their whole down window): the leader's count of instances down, for its metrics.
 */
export function downByMajority(instances: string[], views: HealthViews, voters: string[], needed: number): string[] {
  return instances.filter((a) => voters.filter((c) => views.get(c)?.get(a)?.down === true).length >= needed);
}
