/**
 * Failure detection, as pure functions of what the live replicas published.
 *
 * The rules:
 * - A replica *votes* a master down when its own view says down (no good probe for the whole down
 *   window). Its views live as long as its lease: a dead replica's views are gone, so only live
 *   (registered) replicas vote.
 * - A replica's votes count only while it *sees the cluster*: its views say at least half of the
 *   cluster's instances are reachable. The exception is an outage that every live replica sees
 *   alike (none sees half): then they all vote, and the leader's own probes decide whether any slave
 *   can be promoted. So a replica cut off from Redis cannot vote every master down while the
 *   others see them answer.
 * - A master is down when the votes reach a majority of the *configured* number of replicas (or of
 *   the live ones, when more are registered than configured) — not of the replicas registered
 *   now: a lone survivor of three cannot decide alone.
 */
import { majority, quorumOf as quorumOfCount } from '../model/replicas.js';
import { instancesOf } from '../model/route.js';
import type { InstanceHealth, Route } from '../model/schemas.js';
import type { HealthViews } from '../model/observations.js';

export { majority };

export interface DetectOptions {
  /** Live controller replicas (from the registry). */
  live: string[];
  /** How many replicas the deployment runs (configured, or the default): the quorum is a majority of it. */
  replicas: number;
}

/** What one live replica sees of a cluster, and whether its votes count. */
export interface Standing {
  controller: string;
  /** Instances of the cluster its views say are reachable. */
  sees: number;
  /** Instances in the cluster's route. */
  of: number;
  votes: boolean;
}

export interface MasterVerdict {
  shard: string;
  master: string;
  /** Votes reach the quorum. */
  down: boolean;
  /** Replicas that judge it down and whose votes count. */
  votes: string[];
  needed: number;
  /** The replica count the quorum is a majority of. */
  replicas: number;
  /** The earliest time a voter last saw it answer (ms since epoch), if any. */
  lastOkAt: number | null;
}

/** The quorum: a majority of the configured replicas, or of the live ones when more are registered. */
export function quorumOf(opts: DetectOptions): { needed: number; replicas: number } {
  return quorumOfCount(opts.replicas, opts.live.length);
}

function seesWell(s: Pick<Standing, 'sees' | 'of'>): boolean {
  return s.sees * 2 >= s.of;
}

/** Each live replica's standing in a cluster, in the order of `live`. */
export function standings(route: Route, views: HealthViews, live: string[]): Standing[] {
  const instances = instancesOf(route);
  const seen = live.map((controller) => {
    const mine = views.get(controller);
    // An instance the replica has published nothing about counts as not seen.
    const sees = instances.filter((a) => mine?.get(a)?.reachable === true).length;
    return { controller, sees, of: instances.length };
  });
  const anyoneSeesWell = seen.some(seesWell);
  return seen.map((s) => ({ ...s, votes: seesWell(s) || !anyoneSeesWell }));
}

function votesDown(view: InstanceHealth | undefined): boolean {
  return view !== undefined && view.down;
}

/** `all`: the replicas' standings, when the caller computed them already (`standings`). */
export function judgeMasters(route: Route, views: HealthViews, opts: DetectOptions, all = standings(route, views, opts.live)): MasterVerdict[] {
  const { needed, replicas } = quorumOf(opts);
  const voters = all.filter((s) => s.votes).map((s) => s.controller);
  return route.shards.map((shard) => {
    const votes = voters.filter((c) => votesDown(views.get(c)?.get(shard.master)));
    const lastOks = votes.map((c) => views.get(c)?.get(shard.master)?.lastOkAt).filter((t): t is string => !!t).map(Date.parse);
    return {
      shard: shard.id,
      master: shard.master,
      down: votes.length > 0 && votes.length >= needed,
      votes,
      needed,
      replicas,
      lastOkAt: lastOks.length ? Math.min(...lastOks) : null,
    };
  });
}

/**
 * Why a master that every replica able to vote judges down is still not down: too few of them
 * for the quorum. Null when the votes suffice, when nobody votes, or when some voter does not (yet)
 * judge it down — a replica whose down window has not ended yet is not a refusal, only a moment.
 */
export function quorumShortfall(route: Route, views: HealthViews, verdict: MasterVerdict, opts: DetectOptions, all = standings(route, views, opts.live)): string | null {
  if (verdict.down || verdict.votes.length === 0) return null;
  const voters = all.filter((s) => s.votes);
  if (voters.length !== verdict.votes.length) return null;
  const missing = verdict.replicas - opts.live.length;
  const parts = [
    `${verdict.needed} of ${verdict.replicas} configured replicas needed, only ${verdict.votes.length} votes (${verdict.votes.join(', ')}) that ${verdict.master} is down`,
  ];
  if (missing > 0) parts.push(`${missing} configured ${missing === 1 ? 'replica is' : 'replicas are'} not registered`);
  const best = Math.max(...all.map((s) => s.sees));
  for (const s of all.filter((x) => !x.votes)) parts.push(`${s.controller} does not vote: it sees ${s.sees} of ${s.of} instances reachable, another replica sees ${best}`);
  return `${parts.join('; ')}: no failover`;
}

/**
 * A replica that sees less than half of a cluster's instances while another live replica sees
 * at least half is most likely the one cut off from the network. Its votes do not count, and as
 * the leader it must not fail anything over. Returns the reason when `self` looks isolated.
 */
export function looksIsolated(route: Route, views: HealthViews, self: string, opts: Pick<DetectOptions, 'live'>): string | null {
  const all = standings(route, views, opts.live.includes(self) ? opts.live : [...opts.live, self]);
  const mine = all.find((s) => s.controller === self)!;
  if (mine.votes) return null;
  const better = all.filter((s) => s.controller !== self && seesWell(s));
  return `${self} sees ${mine.sees} of ${mine.of} instances reachable while ${better.map((s) => `${s.controller} sees ${s.sees}`).join(', ')}: this replica looks cut off`;
}
