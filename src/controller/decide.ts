/**
 * The leader's decisions, as pure functions of a snapshot: the route (what should be) and the
 * observations (what is). Nothing here does I/O; the reconciler carries the actions out.
 */
import type { Route } from '../model/schemas.js';
import type { Observations } from './observe.js';

export type Action =
  /** Make `instance` replicate from `master`. */
  | { kind: 'replicaof'; shard: string; instance: string; master: string; reason: string }
  /** Make `instance` (the route's master) stop replicating. */
  | { kind: 'promote'; shard: string; instance: string; reason: string };

export interface Plan {
  actions: Action[];
  /** Things seen that need no action now, or that this controller may not fix itself. */
  notes: string[];
  /** Repairs that would lose data, so not done: for an operator to look at (and for history). */
  refusals: { shard: string; instance: string; reason: string }[];
}

export function planReplication(route: Route, observations: Observations): Plan {
  const plan: Plan = { actions: [], notes: [], refusals: [] };
  for (const shard of route.shards) {
    const master = observations.get(shard.master);
    if (!master?.info) {
      plan.notes.push(`shard ${shard.id}: master ${shard.master} is unreachable (${master?.error ?? 'not probed'}); its slaves are left as they are`);
      continue;
    }
    if (master.info.role === 'slave') {
      plan.actions.push({
        kind: 'promote',
        shard: shard.id,
        instance: shard.master,
        reason: `the route names ${shard.master} master of shard ${shard.id}, but it replicates from ${master.info.masterAddress}`,
      });
    }
    for (const slave of shard.slaves) {
      const seen = observations.get(slave);
      if (!seen?.info) {
        plan.notes.push(`shard ${shard.id}: slave ${slave} is unreachable (${seen?.error ?? 'not probed'})`);
        continue;
      }
      if (seen.info.role === 'master' && seen.info.offset > master.info.offset) {
        // Making it a slave would replace its data with the master's: an empty master that
        // restarted, or a route read before a failover, must never wipe a promoted slave.
        plan.refusals.push({
          shard: shard.id,
          instance: slave,
          reason: `${slave} is a master with replication offset ${seen.info.offset}, ahead of the route's master ${shard.master} at ${master.info.offset}: making it a slave would discard data it holds; not done. To discard it: redis-cli -h ${slave.replace(/:(\d+)$/, ' -p $1')} replicaof ${shard.master.replace(':', ' ')}`,
        });
      } else if (seen.info.role === 'master') {
        plan.actions.push({
          kind: 'replicaof',
          shard: shard.id,
          instance: slave,
          master: shard.master,
          reason: `${slave} is a master but the route names it a slave of ${shard.master}`,
        });
      } else if (seen.info.masterAddress !== shard.master) {
        plan.actions.push({
          kind: 'replicaof',
          shard: shard.id,
          instance: slave,
          master: shard.master,
          reason: `${slave} replicates from ${seen.info.masterAddress} but the master of shard ${shard.id} is ${shard.master}`,
        });
      } else if (!seen.info.linkUp) {
        plan.notes.push(`shard ${shard.id}: slave ${slave} has its link to ${shard.master} down`);
      }
    }
  }
  return plan;
}
