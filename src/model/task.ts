/**
 * Pure rules about tasks (failover, switchover) that the leader and the admin service share, and
 * the one builder of a new task.
 *
 * A task can be undone until its point of no return: the step after which the route may name the
 * new master (failover) or the old master is already a slave (switchover). Up to there the
 * promoted target took no write (the route never named it), so it can follow the old master
 * again and nothing is lost. After it, a task only moves forward.
 */
import { randomBytes } from 'node:crypto';
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

/** A task id: sorts by creation time, says what the task does, and is unique across creators. */
export function newTaskId(kind: Task['kind'], shard: string, at = new Date()): string {
  return `${String(at.getTime()).padStart(15, '0')}-${kind}-${shard}-${randomBytes(2).toString('hex')}`;
}

/** What a new task is asked to do; the rest of the record starts empty. */
export interface TaskRequest {
  kind: Task['kind'];
  cluster: string;
  shard: string;
  /** `pending` waits for the leader to take it (an admin's request); `running` is taken at once. */
  state: 'pending' | 'running';
  next: string;
  oldMaster: string;
  target: string | null;
  force: boolean;
  reason: string;
  requestedBy: string;
  /** The leader that carries it out, or null while no leader has taken it. */
  controller: string | null;
  epochBefore: number;
}

/** The one place a task record is built. */
export function newTask(request: TaskRequest, at = new Date()): Task {
  const { kind, shard } = request;
  return {
    id: newTaskId(kind, shard, at),
    cluster: request.cluster,
    kind,
    shard,
    state: request.state,
    next: request.next,
    oldMaster: request.oldMaster,
    target: request.target,
    force: request.force,
    reason: request.reason,
    requestedBy: request.requestedBy,
    controller: request.controller,
    createdAt: at.toISOString(),
    updatedAt: at.toISOString(),
    epochBefore: request.epochBefore,
    epochAfter: null,
    steps: [],
    error: null,
    cancel: null,
  };
}
