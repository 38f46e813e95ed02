/**
 * The persistence of a task as it goes: each step is written to etcd (fenced) before the next
 * step's side effect, with how long it took, and recorded in the cluster's history. A leader that
 * dies between two steps leaves a task that the next leader continues from `next`.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'winston';
import type { LeaderLock } from '../../election/leader-election.js';
import { ConflictError, errorMessage } from '../../model/errors.js';
import { taskHistoryEntry } from '../../model/history.js';
import { isTerminal, type HistoryEntry, type Task } from '../../model/schemas.js';
import type { RedisPool } from '../../redis/pool.js';
import type { ClusterStore } from '../../store/cluster-store.js';
import type { HistoryStore } from '../../store/history-store.js';
import type { ProxyRegistry } from '../../store/proxy-registry.js';
import type { StoredTask, TaskStore } from '../../store/task-store.js';
import type { ControllerMetrics } from '../metrics.js';

export interface TaskDeps {
  controllerId: string;
  pool: RedisPool;
  clusters: ClusterStore;
  tasks: TaskStore;
  history: HistoryStore;
  /** The proxies' registrations, which the barrier after a route change waits on. */
  proxies: ProxyRegistry;
  election: LeaderLock;
  log: Logger;
  /** Counts each task as it ends (when its end is stored: once, by the leader that ends it). */
  metrics: Pick<ControllerMetrics, 'taskEnded'>;
}

export class TaskProgress {
  private stepStarted = performance.now();

  constructor(
    private readonly deps: TaskDeps,
    private stored: StoredTask,
  ) {}

  get task(): Task {
    return this.stored.task;
  }

  /** Throws NotLeaderError unless this replica may still act. */
  requireLeader(): void {
    this.deps.election.requireFence();
  }

  /** Records that `step` is done and that `next` comes next. */
  async advance(step: string, next: string, detail: string, patch: Partial<Task> = {}): Promise<void> {
    await this.persist(step, detail, { ...patch, state: 'running', next });
  }

  /** Ends the task. */
  async finish(state: 'done' | 'failed' | 'refused' | 'cancelled', step: string, detail: string, patch: Partial<Task> = {}): Promise<void> {
    await this.persist(step, detail, { ...patch, state, next: '-', error: state === 'done' ? null : detail });
  }

  /** Reads the task again from etcd: an admin may have asked to cancel it. */
  async refresh(): Promise<Task> {
    this.stored = await this.deps.tasks.get(this.task.cluster, this.task.id);
    return this.task;
  }

  private async persist(step: string, detail: string, patch: Partial<Task>): Promise<void> {
    const fence = this.deps.election.requireFence();
    const now = new Date();
    const durationMs = Math.round(performance.now() - this.stepStarted);
    const next = (base: Task): Task => ({
      ...base,
      ...patch,
      controller: this.deps.controllerId,
      updatedAt: now.toISOString(),
      steps: [...base.steps, { step, at: now.toISOString(), durationMs, detail }],
    });
    // The step and its history entry are written in one transaction: a leader that dies right
    // after a step cannot leave it unrecorded (the next leader's account would start mid-way).
    const entryOf = (task: Task) => {
      const outcome: HistoryEntry['outcome'] = isTerminal(task) ? (task.state as HistoryEntry['outcome']) : 'info';
      return taskHistoryEntry(task, step, { at: now.toISOString(), controller: this.deps.controllerId, reason: `${detail} [task ${task.id}: ${task.reason}]`, outcome, durationMs });
    };
    let task = next(this.task);
    let revision: string;
    try {
      revision = await this.deps.tasks.update(task, this.stored.revision, fence, [this.deps.history.entryPut(entryOf(task))]);
    } catch (err) {
      // The only other writer of a running task is an admin asking to cancel it: keep that wish
      // (the next step sees it) and write our step on top of it.
      if (!(err instanceof ConflictError)) throw err;
      const fresh = await this.deps.tasks.get(this.task.cluster, this.task.id);
      if (!fresh.task.cancel || JSON.stringify({ ...fresh.task, cancel: null }) !== JSON.stringify({ ...this.task, cancel: null })) throw err;
      task = next(fresh.task);
      revision = await this.deps.tasks.update(task, fresh.revision, fence, [this.deps.history.entryPut(entryOf(task))]);
    }
    this.stored = { task, revision };
    // Counted as soon as the end is stored (fenced: a deposed leader's end is refused and counts
    // nothing; a task ends once, so no replica counts it twice).
    if (isTerminal(task)) this.deps.metrics.taskEnded(task, now);
    const entry = entryOf(task);
    this.deps.log.log(entry.outcome === 'failed' || entry.outcome === 'refused' || entry.outcome === 'cancelled' ? 'warn' : 'info', `${task.kind} ${task.shard}: ${step}: ${detail}`, { cluster: task.cluster, task: task.id, next: task.next, state: task.state, durationMs });
    await this.deps.history.trim(task.cluster).catch((err) => this.deps.log.warn('could not trim history', { error: errorMessage(err) }));
    this.stepStarted = performance.now();
  }
}
