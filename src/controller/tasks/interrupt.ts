/**
 * Ending a task before it is done: when it outlasts its timeout, when an admin cancels it, or
 * when a failover must take its shard over — only before its point of no return (src/model/task.ts).
 */
import { errorMessage } from '../../model/errors.js';
import { findShard } from '../../model/route.js';
import type { Task } from '../../model/schemas.js';
import { canUndo } from '../../model/task.js';
import { replicaOf, replicationInfo, unpause } from '../../redis/commands.js';
import type { TaskDeps, TaskProgress } from './progress.js';

/** When a leader took the task: its timeout counts from there, not from a request that waited for a leader. */
function takenAt(task: Task): number {
  const first = task.steps[0];
  return first ? Date.parse(first.at) : Date.now();
}

export interface Interruption {
  state: 'cancelled' | 'failed';
  /** The name of the step recorded when the task ends. */
  step: string;
  reason: string;
}

/** Why the task must end now (an admin cancelled it, or it outlasted `timeoutMs`), or null. */
export async function interruption(p: TaskProgress, timeoutMs: number): Promise<Interruption | null> {
  if (!canUndo(p.task)) return null;
  const task = await p.refresh();
  if (task.cancel) return { state: 'cancelled', step: 'cancel', reason: `cancelled by ${task.cancel.by} at ${task.cancel.at}` };
  const ranFor = Date.now() - takenAt(task);
  if (ranFor > timeoutMs) {
    return { state: 'failed', step: 'timeout', reason: `not past its point of no return ${(ranFor / 1000).toFixed(1)} s after it began (task timeout ${timeoutMs / 1000} s)` };
  }
  return null;
}

/**
 * Undoes what the task did — the promoted target follows the old master again, the old master's
 * writes are unpaused — and ends it. Undo steps that fail are reported; the reconciler finishes
 * them (the route still names the old master, and the target took no write).
 */
export async function undoTask(deps: TaskDeps, p: TaskProgress, end: Interruption): Promise<void> {
  const { cluster, shard, target, oldMaster } = p.task;
  const undone: string[] = [];
  if (target && findShard((await deps.clusters.get(cluster)).route, shard)?.master !== target) {
    try {
      if ((await replicationInfo(deps.pool, target)).role === 'master') {
        const rewrite = await replicaOf(deps.pool, target, oldMaster);
        undone.push(`${target} follows ${oldMaster} again${rewrite ? ` (${rewrite})` : ''}`);
      }
    } catch (err) {
      undone.push(`could not make ${target} follow ${oldMaster} again (${errorMessage(err)}); the reconciler will`);
    }
  }
  if (p.task.kind === 'switchover' && p.task.steps.some((s) => s.step === 'pause')) {
    try {
      await unpause(deps.pool, oldMaster);
      undone.push(`writes on ${oldMaster} unpaused`);
    } catch (err) {
      undone.push(`could not unpause ${oldMaster} (${errorMessage(err)}); its pause runs out by itself`);
    }
  }
  await p.finish(end.state, end.step, `${end.reason}; ${undone.length ? undone.join('; ') : 'nothing to undo'}; the route is unchanged`);
}
