/**
 * The leader's hands: carries out a plan on Redis, one action at a time, each only while this
 * replica still holds the lock, and records every action in the cluster's history with its reason.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'winston';
import type { ControllerMetrics } from './metrics.js';
import type { LeaderLock } from '../election/leader-election.js';
import { NotLeaderError, errorMessage } from '../model/errors.js';
import { historyEntry } from '../model/history.js';
import type { HistoryEntry } from '../model/schemas.js';
import { pauseWrites, promote, replicaOf, replicationInfo, setWriteFence, unpause, type RewriteProblem } from '../redis/commands.js';
import type { RedisPool } from '../redis/pool.js';
import type { HistoryStore } from '../store/history-store.js';
import type { Action, Plan } from './decide.js';
import { judgeReturningMaster } from './lineage.js';

export interface ReconcilerDeps {
  controllerId: string;
  pool: RedisPool;
  history: HistoryStore;
  election: LeaderLock;
  metrics: ControllerMetrics;
  log: Logger;
  /** Wait this long before repeating an action on the same instance. */
  backoffMs: number;
}

export class Reconciler {
  /** When an action last failed, by instance: it is not retried before the backoff has passed. */
  private readonly lastFailure = new Map<string, number>();
  /**
   * The write-fence lag bound this reconciler saw or set in force, by cluster and master. INFO
   * shows only whether the fence is on; a reconciler lives for one session of its replica, so each
   * new leader confirms each fenced master's lag once (a CONFIG GET), then trusts INFO.
   */
  private readonly fenceLag = new Map<string, Map<string, number>>();

  constructor(private readonly deps: ReconcilerDeps) {}

  /** Fenced masters of `cluster` whose lag bound is known, for planWriteFence. */
  confirmedFences(cluster: string): ReadonlyMap<string, number> {
    return this.fenceLag.get(cluster) ?? new Map();
  }

  private rememberFence(cluster: string, instance: string, lag: number | null): void {
    let known = this.fenceLag.get(cluster);
    if (!known) this.fenceLag.set(cluster, (known = new Map()));
    if (lag === null) known.delete(instance);
    else known.set(instance, lag);
  }

  /** Carries out the plan; returns one sentence per action saying what happened. */
  async apply(cluster: string, plan: Plan): Promise<string[]> {
    const sentences: string[] = [];
    for (const action of plan.actions) {
      // The fence backs off apart from role changes: a failed CONFIG SET must not delay a REPLICAOF.
      const key = `${cluster}/${action.instance}${action.kind === 'fence' ? '/fence' : ''}`;
      const failedAt = this.lastFailure.get(key);
      if (failedAt !== undefined && Date.now() - failedAt < this.deps.backoffMs) {
        sentences.push(`waiting before retrying ${describe(action)}, which failed ${Date.now() - failedAt} ms ago`);
        continue;
      }
      const { sentence, failed } = await this.carryOut(cluster, action);
      if (failed) this.lastFailure.set(key, Date.now());
      else this.lastFailure.delete(key);
      if (sentence !== null) sentences.push(sentence);
    }
    return sentences;
  }

  /**
   * REPLICAOF on an instance that may be a master: the plan judged it from a probe that can be
   * older than a write it took since (a probe queued on a stopped master is answered the moment it
   * resumes). So its writes are paused (clients wait, no error), it is judged again on fresh INFO,
   * and only then made a slave — a write that waited then fails READONLY instead of being wiped.
   */
  private async replicaOfUnlessItWipes(action: Extract<Action, { kind: 'replicaof' }>): Promise<{ refused: string } | { rewrite: RewriteProblem }> {
    const { pool } = this.deps;
    if ((await replicationInfo(pool, action.instance)).role !== 'master') return { rewrite: await replicaOf(pool, action.instance, action.master) };
    await pauseWrites(pool, action.instance, RECHECK_PAUSE_MS);
    try {
      const [old, master] = await Promise.all([replicationInfo(pool, action.instance), replicationInfo(pool, action.master)]);
      if (old.role === 'master') {
        const verdict = judgeReturningMaster(action.instance, old, action.master, master);
        if (!verdict.safe) return { refused: verdict.why };
      }
      return { rewrite: await replicaOf(pool, action.instance, action.master) };
    } finally {
      await unpause(pool, action.instance).catch(() => undefined);
    }
  }

  /** Null sentence: nothing needed doing (a fence already as wanted), so nothing is said or recorded. */
  private async carryOut(cluster: string, action: Action): Promise<{ sentence: string | null; failed: boolean }> {
    // The local lease deadline says whether we may act; the fenced history write re-checks in etcd.
    const fence = this.deps.election.requireFence();
    const start = performance.now();
    let outcome: HistoryEntry['outcome'] = 'done';
    let error: string | null = null;
    let rewrite: string | null = null;
    try {
      if (action.kind === 'promote') rewrite = await promote(this.deps.pool, action.instance);
      else if (action.kind === 'fence') {
        const result = await setWriteFence(this.deps.pool, action.instance, action.on ? { minReplicas: action.minReplicas, maxLagSeconds: action.maxLagSeconds } : { minReplicas: 0 });
        this.rememberFence(cluster, action.instance, action.on ? action.maxLagSeconds : null);
        if (!result.changed) return { sentence: null, failed: false };
        rewrite = result.rewrite;
      } else {
        const result = await this.replicaOfUnlessItWipes(action);
        if ('refused' in result) {
          // Not recorded here: the next cycle sees the same and records the refusal once.
          this.deps.log.warn(result.refused, { cluster, instance: action.instance });
          return { sentence: `${describe(action)} not done on re-check: ${result.refused}`, failed: false };
        }
        rewrite = result.rewrite;
      }
    } catch (err) {
      outcome = 'failed';
      error = errorMessage(err);
    }
    const durationMs = Math.round(performance.now() - start);
    this.deps.metrics.actions.inc({ action: action.kind, outcome });
    const entry = historyEntry({
      cluster,
      controller: this.deps.controllerId,
      action: action.kind,
      shard: action.shard,
      target: action.instance,
      reason: action.reason,
      outcome,
      durationMs,
      detail: error ? { error } : detailOf(action, rewrite),
    });
    // The role changed, but a restart would undo it: the operator should know.
    if (rewrite) this.deps.log.warn(rewrite, { cluster, instance: action.instance });
    this.deps.log.log(outcome === 'done' ? 'info' : 'warn', `${describe(action)}: ${outcome}`, entry);
    try {
      await this.deps.history.append(entry, fence);
    } catch (err) {
      if (err instanceof NotLeaderError) throw err;
      this.deps.log.warn('could not record history', { cluster, error: errorMessage(err) });
    }
    return { sentence: `${describe(action)} because ${action.reason}: ${outcome}${error ? ` (${error})` : ''}${rewrite ? ` (${rewrite})` : ''}`, failed: outcome === 'failed' };
  }
}

/** How long the old master's writes may wait while it is judged again; it answers in milliseconds. */
const RECHECK_PAUSE_MS = 2000;

function describe(action: Action): string {
  switch (action.kind) {
    case 'replicaof':
      return `REPLICAOF ${action.master} on ${action.instance}`;
    case 'promote':
      return `REPLICAOF NO ONE on ${action.instance}`;
    case 'fence':
      return action.on ? `CONFIG SET min-replicas-max-lag ${action.maxLagSeconds} min-replicas-to-write 1 on ${action.instance}` : `CONFIG SET min-replicas-to-write 0 on ${action.instance}`;
  }
}

function detailOf(action: Action, rewrite: RewriteProblem): Record<string, unknown> | undefined {
  const configRewrite = rewrite ? { configRewrite: rewrite } : {};
  if (action.kind === 'replicaof') return { master: action.master, ...configRewrite };
  if (action.kind === 'fence') return { minReplicasToWrite: action.on ? action.minReplicas : 0, ...(action.on ? { maxLagSeconds: action.maxLagSeconds } : {}), ...configRewrite };
  return rewrite ? configRewrite : undefined;
}
