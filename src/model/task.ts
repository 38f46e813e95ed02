/**
 * Pure rules about tasks (failover, switchover) that the leader and the admin service share.
 *
 * A task can be undone until its point of no return: the step after which the route may name the
 * new master (failover) or the old master is already a slave (switchover). Up to there the
 * promoted target took no write (the route never named it), so it can follow the old master
 * again and nothing is lost. After it, a task only moves forward.
 */
import type { Task } from './schemas.js';

/** The steps, by kind of task, at which the task can still be undone. */
const UNDOABLE_STEPS: Record<Task['kind'], ReadonlySet<string>> = {
  failover: new Set(['choose', 'promote', 'publish']),
  switchover: new Set(['check', 'pause', 'catchup', 'promote', 'demote']),
};

export function canUndo(task: Task): boolean {
  return task.state === 'pending' || (task.state === 'running' && UNDOABLE_STEPS[task.kind].has(task.next));
}

/** Why a task past its point of no return cannot be undone, for the admin who asked. */
export function whyNotUndoable(task: Task): string {
  if (task.kind === 'failover') return `the route may already name ${task.target} master (step ${task.next}); the failover finishes by itself`;
  return `${task.oldMaster} is already a slave of ${task.target} (step ${task.next}); the switchover finishes by itself`;
}
