/**
 * The one builder of history entries: what the controller decided and did, and why, and what an
 * admin asked of a task.
 */
import type { HistoryEntry, Task } from './schemas.js';

/** What an entry must say; when defaults to now, and shard, target and duration to none. */
export type HistoryFacts = Pick<HistoryEntry, 'cluster' | 'controller' | 'action' | 'reason' | 'outcome'> & Partial<Pick<HistoryEntry, 'at' | 'shard' | 'target' | 'durationMs' | 'detail'>>;

export function historyEntry(facts: HistoryFacts): HistoryEntry {
  return {
    at: facts.at ?? new Date().toISOString(),
    cluster: facts.cluster,
    controller: facts.controller,
    action: facts.action,
    shard: facts.shard ?? null,
    target: facts.target ?? null,
    reason: facts.reason,
    outcome: facts.outcome,
    durationMs: facts.durationMs ?? null,
    ...(facts.detail ? { detail: facts.detail } : {}),
  };
}

/** An entry about one step of a task: action `kind:step`, on the task's shard and target. */
export function taskHistoryEntry(task: Task, step: string, facts: Pick<HistoryFacts, 'controller' | 'reason' | 'outcome' | 'at' | 'durationMs'>): HistoryEntry {
  return historyEntry({ ...facts, cluster: task.cluster, action: `${task.kind}:${step}`, shard: task.shard, target: task.target });
}
