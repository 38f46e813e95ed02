import { describe, expect, it } from 'vitest';
import { taskSchema, type Task } from '../../src/model/schemas.js';
import { canUndo, whyNotUndoable } from '../../src/model/task.js';

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
