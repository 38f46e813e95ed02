/**
 * The leader's side of the replica count (the rules are in model/replicas.ts): it reads the
 * configured count, and when there is none it records the most replicas that stayed registered
 * together for at least HOLD_MS.
 *
 * Why a hold time: a replica killed with -9 stays registered until its lease expires (up to the
 * 60 s a lease may last), so a restart briefly shows one replica too many. Counting that moment
 * would raise the quorum for good; a count must last HOLD_MS to be recorded.
 */
import type { Logger } from 'winston';
import type { LeaderLock } from '../election/leader-election.js';
import { replicaBase, type ReplicaBase } from '../model/replicas.js';
import type { ReplicaCounts, ReplicaSettings } from '../store/replica-settings.js';
import { Recent } from '../util/recent.js';

/** Longer than any lease (the config allows 60 s): a dead replica's registration cannot last it. */
export const HOLD_MS = 61_000;

/**
 * Tracks, in the leader, for how long at least k replicas have been registered, for every k.
 * `held` is the largest k that has lasted `holdMs`.
 */
export class HeldCount {
  /** since[k] = start of the current run of observations with at least k replicas registered. */
  private readonly since = new Map<number, number>();

  constructor(private readonly holdMs = HOLD_MS) {}

  observe(live: number, now: number): number {
    for (const k of [...this.since.keys()]) if (k > live) this.since.delete(k);
    for (let k = 1; k <= live; k++) if (!this.since.has(k)) this.since.set(k, now);
    let held = 0;
    for (const [k, t] of this.since) if (now - t >= this.holdMs && k > held) held = k;
    return held;
  }
}

export interface ReplicaQuorumDeps {
  settings: ReplicaSettings;
  election: LeaderLock;
  controllerId: string;
  log: Logger;
}

/** The leader's source of the replica count; records a new most-seen when one has lasted. */
export class ReplicaQuorum {
  private readonly held = new HeldCount();
  /** One read for the cycles of every cluster that run together (not cluster-specific). */
  private readonly counts: Recent<ReplicaCounts>;

  constructor(private readonly deps: ReplicaQuorumDeps) {
    this.counts = new Recent(() => deps.settings.read((err) => deps.log.error('ignoring a malformed replica count', { error: err.message })), 250);
  }

  async base(live: number, now = Date.now()): Promise<ReplicaBase> {
    const counts = await this.counts.get();
    const held = this.held.observe(live, now);
    let seen = counts.seen?.count ?? null;
    if (counts.configured === null && held > (seen ?? 0)) {
      const recorded = await this.deps.settings.recordSeen({ count: held, at: new Date(now).toISOString(), by: this.deps.controllerId }, counts.seenRevision, this.deps.election.requireFence());
      if (recorded) {
        this.deps.log.info('the failover quorum grows: more replicas stayed registered together', { replicas: held, before: seen, controller: this.deps.controllerId });
        seen = held;
      }
    }
    return replicaBase(counts.configured?.replicas ?? null, seen, live);
  }
}
