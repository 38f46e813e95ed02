/**
 * Automatic failover of a shard whose master is down, as a persisted state machine:
 *   choose -> promote -> publish -> barrier -> repoint -> done
 * Every step is idempotent, so a new leader can redo the step it finds in `next`. Until the route
 * is published the failover can be undone (timeout, `cfgctl tasks cancel`): the promoted slave,
 * which no client was sent to, follows the old master again. The barrier waits, bounded, until
 * every live proxy has drained the published epoch (or left).
 */
import { errorMessage } from '../../model/errors.js';
import type { FailoverPolicy } from '../../model/schemas.js';
import { promote, replicationInfo } from '../../redis/commands.js';
import { chooseSlave } from '../choose.js';
import type { Observations } from '../../model/observations.js';
import { interruption, undoTask } from './interrupt.js';
import type { TaskDeps, TaskProgress } from './progress.js';
import { barrierStep, publishStep, repointStep, shardStillAsFound } from './shard-moves.js';

export interface FailoverContext {
  observations: Observations;
  policy: FailoverPolicy;
  downAfterMs: number;
  masterDownForMs: number;
  /** Slaves not to promote, and why (chooseSlave's `exclude`). */
  exclude?: ReadonlyMap<string, string>;
}

/** Why a failover was refused at its choice: the task's error, and what a retry compares with. */
export function noSlaveToPromote(reasons: string[]): string {
  return `no slave can be promoted: ${reasons.join('; ')}`;
}

export async function runFailover(deps: TaskDeps, p: TaskProgress, ctx: FailoverContext): Promise<void> {
  const { oldMaster } = p.task;
  for (;;) {
    p.requireLeader();
    const end = await interruption(p, ctx.policy.taskTimeoutMs);
    if (end) return undoTask(deps, p, end);
    switch (p.task.next) {
      case 'choose': {
        const found = await shardStillAsFound(deps, p, 'choose');
        if (!found) return;
        const choice = chooseSlave(found.shard, ctx.observations, ctx);
        if (!choice.ok) return p.finish('refused', 'choose', noSlaveToPromote(choice.reasons));
        await p.advance('choose', 'promote', `chose ${choice.target}: ${choice.why}`, { target: choice.target, epochBefore: found.epoch });
        break;
      }
      case 'promote': {
        const target = p.task.target!;
        let role: string;
        let rewrite: string | null = null;
        try {
          role = (await replicationInfo(deps.pool, target)).role;
          if (role === 'slave') rewrite = await promote(deps.pool, target);
        } catch (err) {
          // The chosen slave failed too: choose again among the others.
          await p.advance('promote', 'choose', `could not promote ${target}: ${errorMessage(err)}; choosing again`, { target: null });
          ctx.observations.delete(target);
          break;
        }
        if (rewrite) deps.log.warn(rewrite, { cluster: p.task.cluster, instance: target });
        await p.advance('promote', 'publish', `${role === 'slave' ? `REPLICAOF NO ONE on ${target}` : `${target} was already a master`}${rewrite ? ` (${rewrite})` : ''}`);
        break;
      }
      case 'publish':
        await publishStep(deps, p, 'barrier');
        break;
      case 'barrier':
        await barrierStep(deps, p, 'repoint');
        break;
      case 'repoint':
        return repointStep(deps, p, `; ${oldMaster} will be made a slave of ${p.task.target} when it answers again, unless it holds writes ${p.task.target} lacks`);
      default:
        return p.finish('failed', p.task.next, `unknown step ${p.task.next}`);
    }
  }
}
