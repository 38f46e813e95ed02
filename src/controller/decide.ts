/**
 * The leader's decisions, as pure functions of a snapshot: the route (what should be) and the
 * observations (what is). Nothing here does I/O; the reconciler carries the actions out.
 */
import type { FailoverPolicy, Route } from '../model/schemas.js';
import { splitAddress } from '../model/address.js';
import { judgeReturningMaster, type LineageVerdict } from './lineage.js';
import type { Observations } from '../model/observations.js';

export type Action =
  /** Make `instance` replicate from `master`. */
  | { kind: 'replicaof'; shard: string; instance: string; master: string; reason: string }
  /** Make `instance` (the route's master) stop replicating. */
  | { kind: 'promote'; shard: string; instance: string; reason: string }
  /**
   * Put the write fence of the route's master `instance` on (`min-replicas-to-write` minReplicas,
   * 1 but while a split's new master also replicates from it, with this lag bound) or off (0). The
   * reconciler changes nothing when it is already so.
   */
  | { kind: 'fence'; shard: string; instance: string; on: boolean; minReplicas: number; maxLagSeconds: number; reason: string };

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

/**
 * The write fence (docs/failover.md): every route master that has a live slave keeps
 * `min-replicas-to-write 1`, so that once cut off from its slaves (stalled, partitioned) it stops
 * acknowledging writes after the lag bound; one with no live slave keeps 0, or it would refuse every
 * write for ever. A slave is live when its own INFO says it replicates from the master with its
 * link up and the master counts a connected slave.
 *
 * The fence goes on only when the master also counts a slave online and acknowledging within the
 * bound (setting it earlier, while a fresh slave still finishes its sync, refuses writes at once),
 * and comes off only when no slave is live: in between (a slave linked but behind, or a fenced
 * master with 0 good slaves) it stays as it is. That is the fence at work, and no flapping.
 *
 * `confirmed` holds, per master, the lag this leader has seen or set in force: the INFO field only
 * says whether the fence is on, so a fenced master whose lag this leader has not confirmed gets an
 * action too, which the reconciler carries out only if the lag differs.
 *
 * `raised` holds, per master, the `min-replicas-to-write` a split set while its new master streams
 * from it (docs/split.md): the fence then counts only the shard's own slaves, and an action for that
 * master sets the raised value, never 1.
 */
export function planWriteFence(
  route: Route,
  observations: Observations,
  policy: Pick<FailoverPolicy, 'writeFence' | 'writeFenceLagSeconds'>,
  confirmed: ReadonlyMap<string, number>,
  raised: ReadonlyMap<string, number> = new Map(),
): Action[] {
  const actions: Action[] = [];
  const lag = policy.writeFenceLagSeconds;
  for (const shard of route.shards) {
    const info = observations.get(shard.master)?.info;
    // Unreachable: nothing can be set (and a fenced master cut off is the fence at work). A master
    // that is still a slave is promoted first; the next cycle sees it as it then is.
    if (!info || info.role !== 'master') continue;
    const isOn = info.goodSlaves !== undefined;
    const live = shard.slaves.filter((s) => {
      const seen = observations.get(s)?.info;
      return seen?.role === 'slave' && seen.masterAddress === shard.master && seen.linkUp === true;
    });
    const off = !policy.writeFence || live.length === 0 || info.connectedSlaves === 0;
    const minReplicas = raised.get(shard.master) ?? 1;
    // As many acknowledging as the fence will ask for (a split's raise asks one more), or turning it
    // on refuses writes at once. One second of margin: Redis recounts good slaves once a second,
    // when the lag may have grown by one.
    const acknowledging = (info.onlineSlaveLagsSec ?? []).filter((l) => l < lag).length >= minReplicas;
    const base = { kind: 'fence' as const, shard: shard.id, instance: shard.master, minReplicas, maxLagSeconds: lag };
    if (!off && !isOn && acknowledging) {
      const reason = `${live.join(', ')} replicate${live.length === 1 ? 's' : ''} from ${shard.master} with the link up, so the master can be fenced: cut off from its slaves it stops acknowledging writes after ${lag} s`;
      actions.push({ ...base, on: true, reason });
    } else if (!off && isOn && confirmed.get(shard.master) !== lag) {
      const known = confirmed.get(shard.master);
      const reason = known === undefined ? `the fence is on but this leader has not confirmed its lag bound (${lag} s wanted)` : `the fence lag bound is now ${lag} s (was ${known} s)`;
      actions.push({ ...base, on: true, reason });
    } else if (off && isOn) {
      const reason = !policy.writeFence
        ? `the cluster's failover policy has writeFence off`
        : `${shard.master} has no live slave (${noLiveSlaveReason(shard.slaves, shard.master, info.connectedSlaves, observations)}): fenced, it would refuse every write`;
      actions.push({ ...base, on: false, minReplicas: 0, reason });
    }
  }
  return actions;
}

function noLiveSlaveReason(slaves: string[], master: string, connected: number, observations: Observations): string {
  if (slaves.length === 0) return 'none in the route';
  const each = slaves.map((s) => {
    const seen = observations.get(s);
    if (!seen?.info) return `${s} unreachable`;
    if (seen.info.role !== 'slave' || seen.info.masterAddress !== master) return `${s} does not replicate from it`;
    return seen.info.linkUp ? `${s} linked` : `${s} has its link down`;
  });
  return `${each.join(', ')}; the master counts ${connected} connected`;
}
