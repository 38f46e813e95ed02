/**
 * The steps that failover and switchover share: publishing a shard's new master in the route,
 * waiting for the proxies to drain the new epoch, and repointing the shard's other instances.
 */
import { ConflictError, RefusedError, errorMessage } from '../../model/errors.js';
import { findShard, nextRoute } from '../../model/route.js';
import type { Shard } from '../../model/schemas.js';
import { replicaOf, replicationInfo } from '../../redis/commands.js';
import type { RedisPool } from '../../redis/pool.js';
import type { ClusterStore } from '../../store/cluster-store.js';
import type { Fence } from '../../store/fence.js';
import { describeBarrier, waitForProxies } from '../barrier.js';
import type { TaskDeps, TaskProgress } from './progress.js';

export interface Published {
  epochBefore: number;
  epochAfter: number;
  detail: string;
}

/**
 * Makes `target` the master of the shard in the route and `oldMaster` one of its slaves, with a
 * new epoch, fenced. Idempotent: if the route already says so, nothing is written.
 */
export async function publishMaster(clusters: ClusterStore, cluster: string, shardId: string, target: string, oldMaster: string, fence: () => Fence): Promise<Published> {
  for (let attempt = 1; ; attempt++) {
    const current = await clusters.get(cluster);
    const shard = findShard(current.route, shardId);
    if (!shard) throw new RefusedError(`shard ${shardId} is no longer in the route of ${cluster}`);
    if (shard.master === target) {
      return { epochBefore: current.route.epoch, epochAfter: current.route.epoch, detail: `the route already names ${target} master (epoch ${current.route.epoch})` };
    }
    if (shard.master !== oldMaster) throw new RefusedError(`the master of shard ${shardId} changed to ${shard.master} meanwhile`);
    const moved: Shard = { ...shard, master: target, slaves: [...shard.slaves.filter((s) => s !== target), oldMaster] };
    const route = nextRoute(
      current.route,
      current.route.shards.map((s) => (s.id === shardId ? moved : s)),
    );
    try {
      await clusters.writeRoute(route, current.routeRevision, fence());
      return { epochBefore: current.route.epoch, epochAfter: route.epoch, detail: `route epoch ${current.route.epoch} -> ${route.epoch}: ${target} is master of ${shardId}, ${oldMaster} a slave` };
    } catch (err) {
      // An admin changed the route in between (e.g. added a shard): read again and retry.
      if (!(err instanceof ConflictError) || attempt >= 5) throw err;
    }
  }
}

/** REPLICAOF target on every other reachable instance of the shard; failures are reported, the reconciler retries them. */
export async function repointOthers(pool: RedisPool, instances: string[], target: string): Promise<string> {
  const results = await Promise.all(
    instances
      .filter((a) => a !== target)
      .map(async (address) => {
        try {
          const info = await replicationInfo(pool, address);
          if (info.role === 'slave' && info.masterAddress === target) return `${address} already follows`;
          const rewrite = await replicaOf(pool, address, target);
          return `${address} repointed${rewrite ? ` (${rewrite})` : ''}`;
        } catch (err) {
          return `${address} not repointed (${errorMessage(err)}); the reconciler will retry`;
        }
      }),
  );
  return results.length ? results.join('; ') : 'no other instance';
}

/** The `publish` step of a failover or switchover: the route names the target master. */
export async function publishStep(deps: TaskDeps, p: TaskProgress, next: string): Promise<void> {
  const { cluster, shard, target, oldMaster } = p.task;
  const published = await publishMaster(deps.clusters, cluster, shard, target!, oldMaster, () => deps.election.requireFence());
  await p.advance('publish', next, published.detail, { epochAfter: published.epochAfter });
}

/**
 * The `barrier` step after `publish`: waits (at most the cluster's `failover.barrierTimeoutMs`)
 * until every live proxy has drained the published epoch or left the registry. A timeout does not
 * fail the task — the route is published already — it is recorded, naming the proxies behind,
 * and logged as a warning.
 */
export async function barrierStep(deps: TaskDeps, p: TaskProgress, next: string): Promise<void> {
  const { cluster } = p.task;
  const stored = await deps.clusters.get(cluster);
  // A task published by a version without epochAfter: the route's epoch now is at least the one it wrote.
  const epoch = p.task.epochAfter ?? stored.route.epoch;
  const outcome = await waitForProxies(deps.proxies, cluster, epoch, { timeoutMs: stored.spec.failover.barrierTimeoutMs, log: deps.log });
  const detail = describeBarrier(outcome);
  if (outcome.timedOut || outcome.malformed.length) deps.log.warn(`proxy barrier: ${detail}`, { cluster, task: p.task.id, epoch, pending: outcome.pending.map((x) => x.id) });
  await p.advance('barrier', next, detail);
}

/** The last step of a failover or switchover: the shard's other slaves follow the new master. */
export async function repointStep(deps: TaskDeps, p: TaskProgress, note = ''): Promise<void> {
  const { cluster, shard: shardId, target, oldMaster } = p.task;
  const shard = findShard((await deps.clusters.get(cluster)).route, shardId);
  const others = (shard?.slaves ?? []).filter((s) => s !== oldMaster);
  await p.finish('done', 'repoint', `${await repointOthers(deps.pool, others, target!)}${note}`);
}

/**
 * The task's shard as the route has it now, with the route's epoch; null (and the task refused)
 * when the route no longer names the task's old master master of that shard.
 */
export async function shardStillAsFound(deps: TaskDeps, p: TaskProgress, step: string): Promise<{ shard: Shard; epoch: number } | null> {
  const { cluster, shard: shardId, oldMaster } = p.task;
  const route = (await deps.clusters.get(cluster)).route;
  const shard = findShard(route, shardId);
  if (shard && shard.master === oldMaster) return { shard, epoch: route.epoch };
  await p.finish('refused', step, `the route no longer names ${oldMaster} master of ${shardId}`);
  return null;
}
