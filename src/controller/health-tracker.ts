/**
 * Turns one replica's probe results into the health views it publishes: written when the state of
 * an instance changes (reachable, role, master, link), or when the last write is older than the
 * refresh period (so that offsets shown by `cfgctl cluster show` stay fresh) — never every probe.
 */
import type { InstanceHealth } from '../model/schemas.js';
import type { Observation } from './observe.js';

interface Published {
  health: InstanceHealth;
  at: number;
}

export class HealthTracker {
  private readonly published = new Map<string, Published>();

  constructor(
    private readonly controller: string,
    private readonly refreshMs: number,
  ) {}

  /** The view to publish for this observation, or null when etcd already has an equivalent one. */
  update(cluster: string, obs: Observation, now = Date.now()): InstanceHealth | null {
    const key = `${cluster}/${obs.address}`;
    const previous = this.published.get(key);
    const next = this.toHealth(obs, previous?.health);
    const changed = !previous || stateOf(previous.health) !== stateOf(next);
    if (!changed && now - previous.at < this.refreshMs) return null;
    this.published.set(key, { health: next, at: now });
    return next;
  }

  /** The last view published for an instance, if any. */
  last(cluster: string, address: string): InstanceHealth | undefined {
    return this.published.get(`${cluster}/${address}`)?.health;
  }

  /** Forget what was published, e.g. after the lease (and the keys bound to it) was lost. */
  reset(): void {
    this.published.clear();
  }

  private toHealth(obs: Observation, previous: InstanceHealth | undefined): InstanceHealth {
    const info = obs.info;
    const health: InstanceHealth = {
      address: obs.address,
      reachable: info !== null,
      role: info?.role ?? 'unknown',
      masterAddress: info?.masterAddress ?? null,
      linkUp: info?.linkUp ?? null,
      linkDownSinceSec: info?.linkDownSinceSec ?? null,
      offset: info?.offset ?? null,
      connectedSlaves: info?.connectedSlaves ?? null,
      error: obs.error,
      lastOkAt: info ? obs.at.toISOString() : (previous?.lastOkAt ?? null),
      since: obs.at.toISOString(),
      observedAt: obs.at.toISOString(),
      controller: this.controller,
    };
    // While the state stays the same, the view keeps the time it began (and the last known role).
    if (previous && stateOf(previous) === stateOf(health)) health.since = previous.since;
    return health;
  }
}

function stateOf(h: InstanceHealth): string {
  return `${h.reachable}|${h.role}|${h.masterAddress}|${h.linkUp}`;
}
