/**
 * The failover gate: whether a master that a quorum judges down may be failed over now, and if
 * not, why — a pure function of plain data (the verdict, the cluster's settings, this leader's own
 * probe, the recent failovers and what the leader remembers), like detect/choose/decide. The
 * leader's memory between cycles (refusals said once per episode, refused failovers waiting for a
 * retry, how long it has seen less than another replica) is kept per cluster by RefusalMemory, in
 * structured keys. leader-duties.ts does the I/O around both.
 */
import type { ReplicationInfo } from '../model/replication-info.js';
import type { ClusterSpec, Task } from '../model/schemas.js';
import type { MasterVerdict } from './detect.js';
import { failoverBudget } from '../model/failover-budget.js';

/** A failover refused for want of a fit slave is tried again after this long, while the master stays down. */
export const REFUSED_RETRY_MS = 30_000;

export type GateDecision =
  /** Start a failover; `votes` says who judged the master down, for the task's reason. */
  | { decision: 'fail over'; votes: string }
  /** Refused: the leader says `reason` and records it in history once per episode. */
  | { decision: 'refuse'; reason: string }
  /** Not now, and nothing new to say: a task holds the shard, or its last refusal is recent. */
  | { decision: 'wait'; reason: string };

export interface GateInput {
  verdict: MasterVerdict;
  /** Why this replica looks cut off itself (detect.ts `looksIsolated`), or null. */
  isolated: string | null;
  /** This leader's own probe of the master in this cycle; null when it did not answer. */
  ownProbe: Pick<ReplicationInfo, 'role'> | null;
  /** Whether a task that a failover may not supersede holds the shard. */
  busy: boolean;
  /** When a failover of this shard was last refused (no fit slave), if it was. */
  refusedAt: number | undefined;
  spec: Pick<ClusterSpec, 'paused' | 'failover'>;
  /** Failovers (not refused ones) of this cluster started within its failover window. */
  recentFailovers: number;
  now: number;
}

/** Who judged the master down: the reason a failover task carries, and the start of every refusal. */
export function describeVotes(verdict: MasterVerdict): string {
  return `${verdict.votes.length} of ${verdict.needed} needed replicas (${verdict.votes.join(', ')}) judge ${verdict.master} down, a majority of ${verdict.replicas} replicas`;
}

/** Failovers that count against the budget: those created within the window, refused ones aside. */
export function recentFailovers(tasks: readonly Task[], windowMs: number, now: number): number {
  return failoverBudget(tasks, { maxPerWindow: 0, windowMs }, now).used;
}

/** The gate, its checks in order of precedence. */
export function gateFailover(input: GateInput): GateDecision {
  const { verdict, spec } = input;
  if (input.busy) return { decision: 'wait', reason: `shard ${verdict.shard} has a task in flight` };
  const votes = describeVotes(verdict);
  if (input.isolated) return { decision: 'refuse', reason: 'no failover: this replica looks cut off' };
  // Votes can be old (a replica's etcd write delayed by a hung member): the leader's own probe
  // of this cycle has the last word, as a Sentinel leader must see the master down itself.
  if (input.ownProbe) return { decision: 'refuse', reason: `${votes}, but it answered this leader's probe just now (role ${input.ownProbe.role}): no failover` };
  if (input.refusedAt !== undefined && input.now - input.refusedAt < REFUSED_RETRY_MS) {
    // Said already, in the refused task.
    return { decision: 'wait', reason: `a failover of ${verdict.shard} was refused ${Math.round((input.now - input.refusedAt) / 1000)} s ago; tried again after ${REFUSED_RETRY_MS / 1000} s` };
  }
  if (spec.paused) return { decision: 'refuse', reason: `${votes}; the cluster is paused: no failover` };
  if (!spec.failover.auto) return { decision: 'refuse', reason: `${votes}; automatic failover is off for this cluster` };
  if (input.recentFailovers >= spec.failover.maxPerWindow) {
    const minutes = Math.round(spec.failover.windowMs / 60000);
    return { decision: 'refuse', reason: `${votes}; ${input.recentFailovers} failovers in the last ${minutes} min already (limit ${spec.failover.maxPerWindow}): no automatic failover` };
  }
  return { decision: 'fail over', votes };
}

/** What a refusal is about: the whole cluster (this leader's own sight), a shard, or one instance of a shard. */
export type RefusalScope = { cluster: 'aside' | 'isolated' } | { shard: string } | { shard: string; instance: string };

/**
 * What the leader remembers of one cluster between cycles. It reads no clock: every method that
 * needs the time is given it.
 */
export class RefusalMemory {
  /** The kind of the last refusal said per scope, so that history gets each one once per episode. */
  private readonly clusterWide = new Map<'aside' | 'isolated', string>();
  private readonly byShard = new Map<string, string>();
  private readonly byInstance = new Map<string, Map<string, string>>();
  /** When a failover of a shard was last refused (no slave fit). */
  private readonly refusedFailovers = new Map<string, number>();
  /** Why, digits aside: a retry that would be refused for the same reasons records no new task. */
  private readonly refusedWhy = new Map<string, string>();
  /** Since when this leader has seen less than another replica (sight.ts). */
  private asideSince: number | undefined;

  /**
   * Whether `reason` is news for its scope: true the first time a refusal of its kind is seen in
   * an episode (then it is remembered). Vote counts change as views refresh, so digits do not count.
   */
  isNews(scope: RefusalScope, reason: string): boolean {
    const kind = kindOf(reason);
    if (this.noteOf(scope) === kind) return false;
    this.remember(scope, kind);
    return true;
  }

  /** The scope's episode is over: its next refusal is news again. */
  forget(scope: RefusalScope): void {
    if ('cluster' in scope) this.clusterWide.delete(scope.cluster);
    else if ('instance' in scope) this.byInstance.get(scope.shard)?.delete(scope.instance);
    else this.byShard.delete(scope.shard);
  }

  /** A master that is back (or a shard that failed over) starts a new episode: shards not in `stillDown` are forgotten. */
  endShardEpisodes(stillDown: ReadonlySet<string>): void {
    for (const map of [this.byShard, this.refusedFailovers, this.refusedWhy]) {
      for (const shard of [...map.keys()]) if (!stillDown.has(shard)) map.delete(shard);
    }
  }

  /** An instance no longer refused (its data discarded, or it caught up) starts a new episode. */
  endInstanceEpisodes(stillRefused: readonly { shard: string; instance: string }[]): void {
    for (const [shard, instances] of this.byInstance) {
      for (const instance of [...instances.keys()]) {
        if (!stillRefused.some((r) => r.shard === shard && r.instance === instance)) instances.delete(instance);
      }
      if (instances.size === 0) this.byInstance.delete(shard);
    }
  }

  refusedAt(shard: string): number | undefined {
    return this.refusedFailovers.get(shard);
  }

  /** Records how a failover the gate let through ended: a refused one (and why) waits REFUSED_RETRY_MS. */
  failoverEnded(shard: string, refused: { why: string } | null, now: number): void {
    if (refused) {
      this.refusedFailovers.set(shard, now);
      this.refusedWhy.set(shard, kindOf(refused.why));
    } else {
      this.refusedFailovers.delete(shard);
      this.refusedWhy.delete(shard);
    }
  }

  /**
   * Whether a failover of `shard` was refused in this episode for the reasons `why` gives (counts
   * and seconds aside): then a retry would only record the same refused task again, every
   * REFUSED_RETRY_MS, for as long as the master stays down (a master that never answered, say).
   */
  sameRefusal(shard: string, why: string): boolean {
    return this.refusedWhy.get(shard) === kindOf(why);
  }

  /**
   * `reason` (why this leader should step aside) once it has held for a whole down window, else
   * null: an instance that just came back can look reachable to the others a probe before it
   * does to this leader. Without a reason the episode ends.
   */
  stepAsideDue(reason: string | null, downAfterMs: number, now: number): string | null {
    if (!reason) {
      this.asideSince = undefined;
      this.forget({ cluster: 'aside' });
      return null;
    }
    this.asideSince ??= now;
    if (now - this.asideSince < downAfterMs) return null;
    this.asideSince = undefined;
    return reason;
  }

  private noteOf(scope: RefusalScope): string | undefined {
    if ('cluster' in scope) return this.clusterWide.get(scope.cluster);
    if ('instance' in scope) return this.byInstance.get(scope.shard)?.get(scope.instance);
    return this.byShard.get(scope.shard);
  }

  private remember(scope: RefusalScope, kind: string): void {
    if ('cluster' in scope) this.clusterWide.set(scope.cluster, kind);
    else if ('instance' in scope) {
      const instances = this.byInstance.get(scope.shard) ?? new Map<string, string>();
      instances.set(scope.instance, kind);
      this.byInstance.set(scope.shard, instances);
    } else this.byShard.set(scope.shard, kind);
  }
}

/** What a refusal says, its numbers aside: vote counts, seconds and offsets change as views refresh. */
function kindOf(reason: string): string {
  return reason.replace(/\d+/g, '#');
}
