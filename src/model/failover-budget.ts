/**
 * The failover budget: automatic failovers allowed per window (`failover.maxPerWindow` per
 * `failover.windowMs`), counted from the cluster's failover tasks. One rule for the leader's gate
 * (controller/failover-gate.ts) and for what `cluster show` tells the operator.
 */
import type { FailoverPolicy, Task } from './schemas.js';

export interface FailoverBudget {
  /** Failovers (refused ones aside) created within the window. */
  used: number;
  max: number;
  windowMs: number;
  /** When the oldest counted failover leaves the window (ISO time), freeing one; null when none counts. */
  freesAt: string | null;
}

/** Whether a task counts against the budget at `now`: a failover, not refused, created within the window. */
function counts(task: Task, windowMs: number, now: number): boolean {
  return task.kind === 'failover' && task.state !== 'refused' && now - Date.parse(task.createdAt) < windowMs;
}

export function failoverBudget(tasks: readonly Task[], policy: Pick<FailoverPolicy, 'maxPerWindow' | 'windowMs'>, now: number): FailoverBudget {
  const counted = tasks.filter((t) => counts(t, policy.windowMs, now)).map((t) => Date.parse(t.createdAt));
  const oldest = counted.length ? Math.min(...counted) : null;
  return { used: counted.length, max: policy.maxPerWindow, windowMs: policy.windowMs, freesAt: oldest === null ? null : new Date(oldest + policy.windowMs).toISOString() };
}
