/**
 * Planned switchover of a shard's master, losing no acknowledged write:
 *   check -> pause -> catchup -> promote -> publish -> demote -> repoint -> done
 * Writes on the old master are paused (CLIENT PAUSE WRITE: clients wait, they get no error) until
 * the target has every byte of the master's replication stream; only then is the target promoted
 * and the route switched. The old master is made a slave of the target before it is unpaused, so
 * a write that waited on it fails (READONLY) rather than landing on the wrong side: nothing that
 * was acknowledged is lost. A leader that resumes a switchover whose route was not yet published
 * starts again from the pause, because the pause may have run out meanwhile.
 */
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../../model/errors.js';
import { findShard } from '../../model/route.js';
import type { FailoverPolicy } from '../../model/schemas.js';
import { pauseWrites, promote, replicaOf, replicationInfo, unpause } from '../../redis/commands.js';
import { chooseSlave } from '../choose.js';
import type { Observations } from '../observe.js';
import type { TaskDeps, TaskProgress } from './progress.js';
import { publishStep, repointStep, shardStillAsFound } from './shard-moves.js';

export interface SwitchoverContext {
  observations: Observations;
  policy: FailoverPolicy;
  downAfterMs: number;
}

/** Steps after which the route still names the old master: a resumed task redoes the pause. */
const BEFORE_PUBLISH = new Set(['pause', 'catchup', 'promote', 'publish']);

export async function runSwitchover(deps: TaskDeps, p: TaskProgress, ctx: SwitchoverContext, resumed: boolean): Promise<void> {
  const { oldMaster } = p.task;
  const timeoutMs = ctx.policy.switchoverTimeoutMs;
  if (resumed && BEFORE_PUBLISH.has(p.task.next) && p.task.next !== 'pause') await restartFromPause(deps, p);
  let pausedAt = 0;
  for (;;) {
    p.requireLeader();
    switch (p.task.next) {
      case 'check': {
        const found = await shardStillAsFound(deps, p, 'check');
        if (!found) return;
        const { shard, epoch } = found;
        const master = ctx.observations.get(oldMaster)?.info;
        if (!master || master.role !== 'master') return p.finish('refused', 'check', `the master ${oldMaster} is not a reachable master now; a switchover needs it (a dead master is failover's job)`);
        const choice = chooseSlave(shard, ctx.observations, { ...ctx, masterDownForMs: 0, only: p.task.target, force: p.task.force });
        if (!choice.ok) return p.finish('refused', 'check', `no target: ${choice.reasons.join('; ')}`);
        const target = ctx.observations.get(choice.target)!.info!;
        const lag = master.offset - target.offset;
        if (!p.task.force && (target.linkUp === false || lag > ctx.policy.switchoverMaxLagBytes)) {
          return p.finish('refused', 'check', `${choice.target} is ${lag} bytes behind${target.linkUp === false ? ' with its link down' : ''} (limit ${ctx.policy.switchoverMaxLagBytes}); use --force to switch anyway`);
        }
        await p.advance('check', 'pause', `target ${choice.target}, ${lag} bytes behind: ${choice.why}`, { target: choice.target, epochBefore: epoch });
        break;
      }
      case 'pause': {
        await pauseWrites(deps.pool, oldMaster, timeoutMs);
        pausedAt = performance.now();
        await p.advance('pause', 'catchup', `CLIENT PAUSE ${timeoutMs} WRITE on ${oldMaster}`);
        break;
      }
      case 'catchup': {
        const target = p.task.target!;
        const deadline = pausedAt + timeoutMs * 0.8; // keep a margin: the switch must finish while writes are still paused
        let masterOffset = 0;
        let targetOffset = -1;
        while (performance.now() < deadline) {
          [masterOffset, targetOffset] = await Promise.all([
            replicationInfo(deps.pool, oldMaster).then((i) => i.offset),
            replicationInfo(deps.pool, target).then((i) => i.offset),
          ]);
          if (targetOffset >= masterOffset) break;
          await new Promise((r) => setTimeout(r, 10));
        }
        if (targetOffset < masterOffset) {
          await unpause(deps.pool, oldMaster).catch(() => undefined);
          return p.finish('failed', 'catchup', `${target} did not catch up within ${Math.round(timeoutMs * 0.8)} ms (offset ${targetOffset} < ${masterOffset}); writes unpaused, nothing changed`);
        }
        await p.advance('catchup', 'promote', `${target} has every byte (offset ${targetOffset})`);
        break;
      }
      case 'promote': {
        const rewrite = await promote(deps.pool, p.task.target!);
        if (rewrite) deps.log.warn(rewrite, { cluster: p.task.cluster, instance: p.task.target });
        await p.advance('promote', 'publish', `REPLICAOF NO ONE on ${p.task.target}${rewrite ? ` (${rewrite})` : ''}`);
        break;
      }
      case 'publish':
        await publishStep(deps, p, 'demote');
        break;
      case 'demote': {
        let detail: string;
        try {
          const rewrite = await replicaOf(deps.pool, oldMaster, p.task.target!);
          await unpause(deps.pool, oldMaster);
          if (rewrite) deps.log.warn(rewrite, { cluster: p.task.cluster, instance: oldMaster });
          detail = `REPLICAOF ${p.task.target} on ${oldMaster}, then CLIENT UNPAUSE${rewrite ? ` (${rewrite})` : ''}`;
        } catch (err) {
          detail = `could not demote ${oldMaster} now (${errorMessage(err)}); the route lists it as a slave, the reconciler will demote it`;
        }
        await p.advance('demote', 'repoint', detail);
        break;
      }
      case 'repoint':
        return repointStep(deps, p);
      default:
        return p.finish('failed', p.task.next, `unknown step ${p.task.next}`);
    }
  }
}

/**
 * A previous leader stopped this switchover before the route changed. The old master may have
 * taken writes since (its pause runs out), so: if the target was already promoted, make it follow
 * the old master again, and start over from the pause.
 */
async function restartFromPause(deps: TaskDeps, p: TaskProgress): Promise<void> {
  const target = p.task.target!;
  const route = (await deps.clusters.get(p.task.cluster)).route;
  if (findShard(route, p.task.shard)?.master === target) {
    await p.advance('resume', 'demote', `the route already names ${target} master: continuing with the demotion`);
    return;
  }
  const info = await replicationInfo(deps.pool, target);
  const rewrite = info.role === 'master' ? await replicaOf(deps.pool, target, p.task.oldMaster) : null;
  if (rewrite) deps.log.warn(rewrite, { cluster: p.task.cluster, instance: target });
  await p.advance('resume', 'pause', `resumed before the route changed: ${info.role === 'master' ? `${target} follows ${p.task.oldMaster} again; ` : ''}starting again from the pause`);
}
