import { describe, expect, it } from 'vitest';
import { historyEntry, taskHistoryEntry } from '../../src/model/history.js';
import { historyEntrySchema, taskSchema, type Task } from '../../src/model/schemas.js';
import { canUndo, newTask, whyNotUndoable } from '../../src/model/task.js';

function task(kind: Task['kind'], state: Task['state'], next: string): Task {
  return taskSchema.parse({
    id: 't', cluster: 'c', kind, shard: 's0', state, next, oldMaster: '127.0.0.1:1', target: '127.0.0.1:2',
    reason: 'r', requestedBy: 'x', controller: null, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z',
  });
}

describe('the point of no return of a task', () => {
  it('a switchover can be undone until the old master is demoted', () => {
    for (const next of ['check', 'pause', 'catchup', 'promote', 'demote']) expect(canUndo(task('switchover', 'running', next)), next).toBe(true);
    for (const next of ['publish', 'unpause', 'repoint']) expect(canUndo(task('switchover', 'running', next)), next).toBe(false);
    expect(whyNotUndoable(task('switchover', 'running', 'publish'))).toMatch(/127.0.0.1:1 is already a slave of 127.0.0.1:2/);
  });

  it('a failover can be undone until its route is published', () => {
    for (const next of ['choose', 'promote', 'publish']) expect(canUndo(task('failover', 'running', next)), next).toBe(true);
    expect(canUndo(task('failover', 'running', 'repoint'))).toBe(false);
  });

  it('a pending task can always be undone, an ended one never', () => {
    expect(canUndo(task('switchover', 'pending', 'check'))).toBe(true);
    for (const state of ['done', 'failed', 'refused', 'cancelled'] as const) expect(canUndo(task('switchover', state, '-'))).toBe(false);
  });
});

describe('the builders of tasks and history entries', () => {
  const at = new Date('2026-01-01T00:00:00.000Z');
  const request = {
    kind: 'switchover', cluster: 'c', shard: 's0', state: 'pending', next: 'check', oldMaster: '127.0.0.1:1', target: null,
    force: false, reason: 'asked', requestedBy: 'admin', controller: null, epochBefore: 7,
  } as const;

  it('builds a valid new task with nothing done yet, its id sorting by creation time', () => {
    const task = newTask(request, at);
    expect(taskSchema.parse(task)).toEqual(task);
    expect(task).toMatchObject({ ...request, createdAt: at.toISOString(), updatedAt: at.toISOString(), epochAfter: null, steps: [], error: null, cancel: null });
    expect(task.id).toMatch(/^001767225600000-switchover-s0-[0-9a-f]{4}$/);
    expect(newTask(request, new Date(at.getTime() + 1)).id > task.id).toBe(true);
  });

  it('builds history entries with no shard, target, duration or detail unless given', () => {
    const entry = historyEntry({ at: at.toISOString(), cluster: 'c', controller: 'x', action: 'failover', reason: 'r', outcome: 'refused' });
    expect(historyEntrySchema.parse(entry)).toEqual(entry);
    expect(entry).toEqual({ at: at.toISOString(), cluster: 'c', controller: 'x', action: 'failover', shard: null, target: null, reason: 'r', outcome: 'refused', durationMs: null });
  });

  it("builds a task's history entry as kind:step on its shard and target", () => {
    const task = { ...newTask(request, at), target: '127.0.0.1:2' };
    const entry = taskHistoryEntry(task, 'cancel', { controller: 'admin', reason: 'r', outcome: 'cancelled', durationMs: 5 });
    expect(entry).toMatchObject({ cluster: 'c', action: 'switchover:cancel', shard: 's0', target: '127.0.0.1:2', controller: 'admin', outcome: 'cancelled', durationMs: 5 });
    expect(Date.parse(entry.at)).not.toBeNaN();
  });
});
