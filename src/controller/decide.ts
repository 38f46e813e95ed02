/**
 * The leader's decisions, as pure functions of a snapshot: the route (what should be) and the
 * observations (what is). Nothing here does I/O; the reconciler carries the actions out.
 */
import type { Route } from '../model/schemas.js';
import { splitAddress } from '../redis/pool.js';
import { judgeReturningMaster, type LineageVerdict } from './lineage.js';
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
  refusals: Refusal[];
}

export interface Refusal {
  shard: string;
  instance: string;
  kind: Exclude<LineageVerdict, { safe: true }>['kind'];
  /** A few words for status displays ("holds writes the master lacks"). */
  summary: string;
  reason: string;
}

/**
 * The operator's way out, named in every refusal: the controller never discards data itself.
 * CONFIG REWRITE too, or a restart from a config file would bring back the master it was.
 */
export function discardInstructions(instance: string, master: string): string {
  const { host, port } = splitAddress(instance);
  const to = splitAddress(master);
  return `To discard its data and make it a slave: redis-cli -h ${host} -p ${port} replicaof ${to.host} ${to.port} && redis-cli -h ${host} -p ${port} config rewrite`;
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
      if (seen.info.role === 'master') {
        // Making it a slave replaces its data with the master's: an old master that took writes
        // the new one never got, or a master restarted from its files, must not be wiped unasked.
        const verdict = judgeReturningMaster(slave, seen.info, shard.master, master.info);
        if (verdict.safe) {
          plan.actions.push({
            kind: 'replicaof',
            shard: shard.id,
            instance: slave,
            master: shard.master,
            reason: `${slave} is a master but the route names it a slave of ${shard.master} (${verdict.why})`,
          });
        } else {
          plan.refusals.push({
            shard: shard.id,
            instance: slave,
            kind: verdict.kind,
            summary: verdict.summary,
            reason: `${verdict.why}: making it a slave would discard data it holds; not done. ${discardInstructions(slave, shard.master)}`,
          });
        }
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
