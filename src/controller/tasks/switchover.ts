/**
 * Planned switchover of a shard's master, losing no acknowledged write:
 *   check -> pause -> catchup -> promote -> demote -> publish -> unpause -> barrier -> repoint -> done
 * Writes on the old master are paused (CLIENT PAUSE WRITE: clients wait, they get no error) until
 * the target has every byte of the master's replication stream. The target is promoted and the
 * old master made its slave *before* the route names the target: from then on the old master can
 * acknowledge nothing, whatever happens to the pause, to this leader or to etcd. The demotion
 * pauses again and re-checks the replication histories, so a pause that ran out (a slow step, a
 * leader change) is caught: if the old master took a write the target lacks, the switchover is
 * undone (the target follows the old master again), never forced. Writes that waited on the old
 * master are released only after the route changed: they fail READONLY, which proxies answer by
 * sending them again to the new master; then the barrier waits until every proxy has drained the
 * new epoch (after the unpause: a write waiting on the paused old master is in flight until then).
 * Until the demotion the task can be undone (timeout,
 * `cfgctl tasks cancel`, or a failover of a master that died meanwhile); after it, it only goes on.
 */
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../../model/errors.js';
import type { FailoverPolicy } from '../../model/schemas.js';
import { pauseWrites, promote, replicaOf, replicationInfo, unpause } from '../../redis/commands.js';
import { chooseSlave } from '../choose.js';
import { judgeReturningMaster } from '../lineage.js';
import type { Observations } from '../../model/observations.js';
import { interruption, undoTask } from './interrupt.js';
import type { TaskDeps, TaskProgress } from './progress.js';
import { barrierStep, publishStep, repointStep, shardStillAsFound } from './shard-moves.js';

export interface SwitchoverContext {
  observations: Observations;
  policy: FailoverPolicy;
  downAfterMs: number;
}

/** Steps a resumed task cannot simply redo: the pause may have run out since (see restartFromPause). */
const AFTER_PAUSE_BEFORE_DEMOTE = new Set(['catchup', 'promote', 'demote']);

export async function runSwitchover(deps: TaskDeps, p: TaskProgress, ctx: SwitchoverContext, resumed: boolean): Promise<void> {
  const { oldMaster } = p.task;
  const timeoutMs = ctx.policy.switchoverTimeoutMs;
  if (resumed && AFTER_PAUSE_BEFORE_DEMOTE.has(p.task.next)) await restartFromPause(deps, p);
  let pausedAt = 0;
  for (;;) {
    p.requireLeader();
    const end = await interruption(p, ctx.policy.taskTimeoutMs);
    if (end) return undoTask(deps, p, end);
    switch (p.task.next) {
      case 'check': {
        const found = await shardStillAsFound(deps, p, 'check');
        if (!found) return;
        const { shard, epoch } = found;
        const master = ctx.observations.get(oldMaster)?.info;
        // A probe that failed once — a stalled process, a slow host — is not a dead master: the
        // task waits for the next cycles, up to the down window since it was taken, rather than
        // refuse what the operator asked for. A master that answers as a slave is refused at once.
        const takenAt = Date.parse(p.task.steps.at(-1)?.at ?? p.task.createdAt);
        if (!master && Date.now() - takenAt < ctx.downAfterMs) return;
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
        await p.advance('promote', 'demote', `REPLICAOF NO ONE on ${p.task.target}${rewrite ? ` (${rewrite})` : ''}`);
        break;
      }
      case 'demote': {
        const outcome = await demote(deps, p, timeoutMs);
        if (outcome) return undoTask(deps, p, { state: 'failed', step: 'demote', reason: outcome });
        break;
      }
      case 'publish':
        await publishStep(deps, p, 'unpause');
        break;
      case 'unpause': {
        let detail: string;
        try {
          await unpause(deps.pool, oldMaster);
          detail = `CLIENT UNPAUSE on ${oldMaster}: writes that waited on it fail READONLY, and proxies send them to ${p.task.target}`;
        } catch (err) {
          detail = `could not unpause ${oldMaster} (${errorMessage(err)}); its pause runs out by itself`;
        }
        await p.advance('unpause', 'barrier', detail);
        break;
      }
      case 'barrier':
        await barrierStep(deps, p, 'repoint');
        break;
      case 'repoint':
        return repointStep(deps, p);
      default:
        return p.finish('failed', p.task.next, `unknown step ${p.task.next}`);
    }
  }
}

/**
 * Makes the old master a slave of the promoted target, if that loses nothing: under a fresh
 * pause (the first one may have run out during a slow step), the old master's history is judged
 * against the target's. Returns why it was not done, or null once the demotion is recorded.
 */
async function demote(deps: TaskDeps, p: TaskProgress, pauseMs: number): Promise<string | null> {
  const { oldMaster } = p.task;
  const target = p.task.target!;
  await pauseWrites(deps.pool, oldMaster, pauseMs);
  const [old, promoted] = await Promise.all([replicationInfo(deps.pool, oldMaster), replicationInfo(deps.pool, target)]);
  if (old.role === 'slave' && old.masterAddress === target) {
    await p.advance('demote', 'publish', `${oldMaster} already follows ${target}`);
    return null;
  }
  if (promoted.role !== 'master') return `${target} is no longer a master (it follows ${promoted.masterAddress}): someone changed it during the switchover`;
  const verdict = judgeReturningMaster(oldMaster, old, target, promoted);
  if (!verdict.safe) return `the pause on ${oldMaster} ran out before the demotion and it took writes ${target} lacks (${verdict.why})`;
  const rewrite = await replicaOf(deps.pool, oldMaster, target);
  if (rewrite) deps.log.warn(rewrite, { cluster: p.task.cluster, instance: oldMaster });
  await p.advance('demote', 'publish', `REPLICAOF ${target} on ${oldMaster}, still paused: it can acknowledge no write from now on (${verdict.why})${rewrite ? ` (${rewrite})` : ''}`);
  return null;
}

/**
 * A previous leader stopped this switchover after the pause and before the demotion was
 * recorded. The old master may have taken writes since (its pause runs out): if it was demoted
 * already, go on to publish; otherwise the target (if promoted) follows the old master again
 * and the switchover starts over from the pause.
 */
async function restartFromPause(deps: TaskDeps, p: TaskProgress): Promise<void> {
  const target = p.task.target!;
  const old = await replicationInfo(deps.pool, p.task.oldMaster);
  if (old.role === 'slave' && old.masterAddress === target) {
    await p.advance('resume', 'publish', `${p.task.oldMaster} already follows ${target}: continuing with the route`);
    return;
  }
  const info = await replicationInfo(deps.pool, target);
  const rewrite = info.role === 'master' ? await replicaOf(deps.pool, target, p.task.oldMaster) : null;
  if (rewrite) deps.log.warn(rewrite, { cluster: p.task.cluster, instance: target });
  await p.advance('resume', 'pause', `resumed before the demotion: ${info.role === 'master' ? `${target} follows ${p.task.oldMaster} again; ` : ''}starting again from the pause`);
}
