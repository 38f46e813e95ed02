/**
 * Turns one replica's probe results into the health views it publishes: written only when the
 * state of an instance changes (reachable, role, master, link, this replica's down verdict) —
 * never every probe, and never just because time passed, so that an idle cluster writes nothing to
 * etcd. A view is as alive as its replica's lease (the keys are bound to it), not as its age: the
 * offset, priority and error in a view are those of the probe that changed the state, and
 * `observedAt` says when that was. Readers that want offsets now ask Redis themselves.
 *
 * It also judges, for this replica alone, whether an instance is down: no good probe for the
 * whole down window (measured from the last good probe, or from the first failure this replica
 * saw if it never saw a good one). One failed probe is never "down".
 */
import type { InstanceHealth } from '../model/schemas.js';
import type { Observation } from '../model/observations.js';

interface Tracked {
  published?: InstanceHealth;
  /** Time of the last good probe (ms since epoch). */
  lastOk?: number;
  /** Start of the current run of failed probes, and its length. */
  failingSince?: number;
  failures: number;
}

export class HealthTracker {
  private readonly tracked = new Map<string, Tracked>();

  constructor(private readonly controller: string) {}

  /** The view to publish for this observation, or null when etcd already has an equivalent one. */
  update(cluster: string, obs: Observation, downAfterMs: number): InstanceHealth | null {
    const key = `${cluster}/${obs.address}`;
    const t = this.tracked.get(key) ?? { failures: 0 };
    this.tracked.set(key, t);
    const at = obs.at.getTime();
    if (obs.info) {
      t.lastOk = at;
      t.failingSince = undefined;
      t.failures = 0;
    } else {
      t.failingSince ??= at;
      t.failures++;
    }
    const next = this.toHealth(obs, t, downAfterMs, t.published);
    if (t.published && publishedState(t.published) === publishedState(next)) return null;
    t.published = next;
    return next;
  }

  /** The last view published for an instance, if any. */
  last(cluster: string, address: string): InstanceHealth | undefined {
    return this.tracked.get(`${cluster}/${address}`)?.published;
  }

  /** Whether anything of this cluster is published (and so may be in etcd). */
  hasPublished(cluster: string): boolean {
    for (const [key, t] of this.tracked) if (t.published && key.startsWith(`${cluster}/`)) return true;
    return false;
  }

  /**
   * Forget what was published — of one cluster, or of all (after the lease, and the keys bound
   * to it, was lost; or after the views were withdrawn) — so that the next round publishes it all
   * again. Probe times are kept: the down window goes on.
   */
  reset(cluster?: string): void {
    for (const [key, t] of this.tracked) if (cluster === undefined || key.startsWith(`${cluster}/`)) t.published = undefined;
  }

  /** Forget instances no longer in any route. */
  retain(keys: Set<string>): void {
    for (const key of this.tracked.keys()) if (!keys.has(key)) this.tracked.delete(key);
  }

  private toHealth(obs: Observation, t: Tracked, downAfterMs: number, previous: InstanceHealth | undefined): InstanceHealth {
    const info = obs.info;
    const at = obs.at.getTime();
    const silentFor = info ? 0 : at - (t.lastOk ?? t.failingSince ?? at);
    const health: InstanceHealth = {
      address: obs.address,
      reachable: info !== null,
      // Never on one failed probe, however long the gap since the last good one (a stalled loop).
      down: !info && t.failures >= 2 && silentFor >= downAfterMs,
      role: info?.role ?? 'unknown',
      masterAddress: info?.masterAddress ?? null,
      linkUp: info?.linkUp ?? null,
      linkDownSinceSec: info?.linkDownSinceSec ?? null,
      offset: info?.offset ?? null,
      connectedSlaves: info?.connectedSlaves ?? null,
      priority: info?.priority ?? null,
      replId: info?.replId ?? null,
      error: obs.error,
      lastOkAt: t.lastOk !== undefined ? new Date(t.lastOk).toISOString() : null,
      since: obs.at.toISOString(),
      observedAt: obs.at.toISOString(),
      controller: this.controller,
    };
    // While the state stays the same, the view keeps the time that state began.
    if (previous && stateOf(previous) === stateOf(health)) health.since = previous.since;
    return health;
  }
}

/** What `since` measures: reachable, role, master, link. */
function stateOf(h: InstanceHealth): string {
  return `${h.reachable}|${h.role}|${h.masterAddress}|${h.linkUp}`;
}

/** What makes a view worth writing at once: the state, or this replica's down verdict. */
function publishedState(h: InstanceHealth): string {
  return `${stateOf(h)}|${h.down}`;
}
