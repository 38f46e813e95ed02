/**
 * Pure: what each instance's Redis configuration needs, from the desired config, what each
 * instance answered to CONFIG GET, and what this leader last confirmed in force. No I/O here.
 */
import { effectiveConfig, sameValue, type ConfigRole, type RedisConfig } from '../model/redis-config.js';
import type { Route } from '../model/schemas.js';

/** The desired value a key was last seen in force with, and how Redis spelled it then. */
export interface Confirmed {
  desired: string;
  actual: string;
}

/** Per instance, per key: what this leader last confirmed. */
export type ConfirmedValues = ReadonlyMap<string, ReadonlyMap<string, Confirmed>>;

export interface ConfigChange {
  key: string;
  /** What the instance has now. */
  from: string;
  to: string;
  /** "desired changed: ..." or "drift: ...". */
  reason: string;
  drift: boolean;
}

export interface InstanceConfigPlan {
  instance: string;
  shard: string;
  role: ConfigRole;
  /** The keys whose value is as desired, with Redis's spelling of it (to confirm). */
  inForce: { key: string; desired: string; actual: string }[];
  changes: ConfigChange[];
}

/** Every instance of the route with its role there and the settings it should have. */
export function desiredPerInstance(route: Pick<Route, 'shards'>, config: RedisConfig): { instance: string; shard: string; role: ConfigRole; settings: Record<string, string> }[] {
  return route.shards.flatMap((s) => [
    { instance: s.master, shard: s.id, role: 'master' as const, settings: effectiveConfig(config, s.id, 'master') },
    ...s.slaves.map((instance) => ({ instance, shard: s.id, role: 'slave' as const, settings: effectiveConfig(config, s.id, 'slave') })),
  ]);
}

/**
 * Compares one instance's settings with what it answered. A key counts as in force when Redis's
 * answer means the desired value, or is the very spelling seen right after we set it (Redis
 * rewrites some values its own way). A key that was in force and no longer is has drifted.
 */
export function planInstanceConfig(
  target: { instance: string; shard: string; role: ConfigRole; settings: Record<string, string> },
  actual: ReadonlyMap<string, string>,
  confirmed: ReadonlyMap<string, Confirmed> = new Map(),
): InstanceConfigPlan {
  const plan: InstanceConfigPlan = { instance: target.instance, shard: target.shard, role: target.role, inForce: [], changes: [] };
  for (const [key, desired] of Object.entries(target.settings)) {
    const now = actual.get(key);
    const known = confirmed.get(key);
    const knownDesired = known?.desired === desired;
    if (now !== undefined && (sameValue(key, desired, now) || (knownDesired && known.actual === now))) {
      plan.inForce.push({ key, desired, actual: now });
      continue;
    }
    const from = now ?? '(absent)';
    const drift = knownDesired && now !== undefined;
    const reason = drift
      ? `drift: ${key} was ${now} on ${target.instance} (set by hand, or the instance restarted without it), desired ${desired}`
      : `desired changed: ${key} ${from} -> ${desired} on ${target.instance}`;
    plan.changes.push({ key, from, to: desired, reason, drift });
  }
  return plan;
}
