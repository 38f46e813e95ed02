/**
 * What the leader does for one cluster each cycle, in order, each step saying what it did:
 *   1. carry on unfinished tasks (a failover or switchover a previous leader began, or one an
 *      admin asked for);
 *   2. find masters that a majority of live replicas judge down, and fail them over — unless the
 *      cluster is paused, automatic failover is off, the failover budget is spent, or this leader
 *      looks cut off itself;
 *   3. repair replication (REPLICAOF) on shards with no task and a live master.
 * Refusals are recorded in history once per episode, not every cycle.
 */
import type { Logger } from 'winston';
import { NotLeaderError, RefusedError, errorMessage } from '../model/errors.js';
import { isTerminal, type HistoryEntry, type Task } from '../model/schemas.js';
import type { StoredCluster } from '../store/cluster-store.js';
import type { ControllerRegistry } from '../store/controller-registry.js';
import type { HealthStore } from '../store/health-store.js';
import type { HistoryStore } from '../store/history-store.js';
import { newTaskId, type StoredTask, type TaskStore } from '../store/task-store.js';
import { planReplication } from './decide.js';
import { judgeMasters, looksIsolated, type MasterVerdict } from './detect.js';
import type { Observations } from './observe.js';
import type { Reconciler } from './reconciler.js';
import { runFailover } from './tasks/failover.js';
import { TaskProgress, type TaskDeps } from './tasks/progress.js';
import { runSwitchover } from './tasks/switchover.js';

export interface LeaderDutiesDeps extends TaskDeps {
  health: HealthStore;
  registry: ControllerRegistry;
  reconciler: Reconciler;
  /** How old a replica's view may be and still vote (its refresh period, with a margin). */
  maxViewAgeMs: number;
}

export class LeaderDuties {
  /** The last refusal recorded per cluster/shard, so that history gets it once per episode. */
  private readonly noted = new Map<string, string>();

  constructor(private readonly deps: LeaderDutiesDeps) {}

  async run(cluster: StoredCluster, observations: Observations): Promise<string[]> {
    const name = cluster.spec.name;
    const said: string[] = [];
    const tasks = await this.deps.tasks.list(name, (err) => this.deps.log.error('skipping a malformed task', { error: err.message }));

    // 1. Unfinished tasks.
    const unfinished = tasks.filter((t) => !isTerminal(t.task));
    for (const stored of unfinished) said.push(await this.carryOn(cluster, stored, observations));
    if (unfinished.length) cluster = await this.deps.clusters.get(name); // tasks may have changed the route

    // 2. Dead masters.
    const busy = new Set((await this.deps.tasks.list(name)).filter((t) => !isTerminal(t.task)).map((t) => t.task.shard));
    const down = await this.deadMasters(cluster);
    let recentFailovers = tasks.filter((t) => t.task.kind === 'failover' && t.task.state !== 'refused' && Date.now() - Date.parse(t.task.createdAt) < cluster.spec.failover.windowMs).length;
    for (const verdict of down.verdicts) {
      if (busy.has(verdict.shard)) continue;
      const key = `${name}/${verdict.shard}`;
      const votes = `${verdict.votes.length} of ${verdict.needed} needed replicas (${verdict.votes.join(', ')}) judge ${verdict.master} down`;
      let refusal: string | null = null;
      if (down.isolated) refusal = `no failover: ${down.isolated}`;
      else if (cluster.spec.paused) refusal = `${votes}; the cluster is paused: no failover`;
      else if (!cluster.spec.failover.auto) refusal = `${votes}; automatic failover is off for this cluster`;
      else if (recentFailovers >= cluster.spec.failover.maxPerWindow) {
        refusal = `${votes}; ${recentFailovers} failovers in the last ${Math.round(cluster.spec.failover.windowMs / 60000)} min already (limit ${cluster.spec.failover.maxPerWindow}): no automatic failover`;
      }
      if (refusal) {
        said.push(refusal);
        await this.noteOnce(key, name, verdict, refusal);
        continue;
      }
      this.noted.delete(key);
      said.push(await this.startFailover(cluster, verdict, votes, observations));
      busy.add(verdict.shard);
      recentFailovers++;
    }
    for (const key of [...this.noted.keys()]) {
      if (key.startsWith(`${name}/`) && !down.verdicts.some((v) => `${name}/${v.shard}` === key)) this.noted.delete(key);
    }

    // 3. Replication repair, where no task runs and the master is alive.
    if (cluster.spec.paused) return said;
    const downShards = new Set(down.verdicts.map((v) => v.shard));
    const plan = planReplication(cluster.route, observations);
    plan.actions = plan.actions.filter((a) => !busy.has(a.shard) && !downShards.has(a.shard));
    said.push(...(await this.deps.reconciler.apply(name, plan)));
    return said;
  }

  private async deadMasters(cluster: StoredCluster): Promise<{ verdicts: MasterVerdict[]; isolated: string | null }> {
    const [views, controllers] = await Promise.all([
      this.deps.health.read(cluster.spec.name),
      this.deps.registry.list(),
    ]);
    const opts = { live: controllers.map((c) => c.id), now: Date.now(), maxViewAgeMs: this.deps.maxViewAgeMs };
    const verdicts = judgeMasters(cluster.route, views, opts).filter((v) => v.down);
    return { verdicts, isolated: verdicts.length ? looksIsolated(cluster.route, views, this.deps.controllerId, opts) : null };
  }

  private async startFailover(cluster: StoredCluster, verdict: MasterVerdict, votes: string, observations: Observations): Promise<string> {
    const now = new Date();
    const task: Task = {
      id: newTaskId('failover', verdict.shard, now),
      cluster: cluster.spec.name,
      kind: 'failover',
      shard: verdict.shard,
      state: 'running',
      next: 'choose',
      oldMaster: verdict.master,
      target: null,
      force: false,
      reason: votes,
      requestedBy: this.deps.controllerId,
      controller: this.deps.controllerId,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
      epochBefore: cluster.route.epoch,
      epochAfter: null,
      steps: [],
      error: null,
    };
    try {
      const stored = await this.deps.tasks.create(task, this.deps.election.requireFence());
      return await this.carryOn(cluster, stored, observations, verdict);
    } catch (err) {
      if (err instanceof RefusedError) return `failover of ${verdict.shard} not started: ${err.message}`;
      throw err;
    }
  }

  /** Runs a task until it ends (or this replica stops leading). */
  private async carryOn(cluster: StoredCluster, stored: StoredTask, observations: Observations, verdict?: MasterVerdict): Promise<string> {
    const p = new TaskProgress(this.deps, stored);
    const resumed = stored.task.state === 'running' && stored.task.steps.length > 0;
    const ctx = { observations: new Map(observations), policy: cluster.spec.failover, downAfterMs: cluster.spec.probe.downAfterMs };
    try {
      if (stored.task.kind === 'failover') {
        const lastOk = verdict?.lastOkAt ?? Date.parse(stored.task.createdAt) - cluster.spec.probe.downAfterMs;
        await runFailover(this.deps, p, { ...ctx, masterDownForMs: Date.now() - lastOk });
      } else {
        if (stored.task.state === 'pending') await p.advance('accepted', stored.task.next, `leader ${this.deps.controllerId} takes the task`);
        await runSwitchover(this.deps, p, ctx, resumed);
      }
    } catch (err) {
      if (err instanceof NotLeaderError) throw err;
      // An unexpected failure (Redis or etcd) leaves the task where it is: the next cycle retries it.
      return `${stored.task.kind} of ${stored.task.shard} stopped at step ${p.task.next}, will retry: ${errorMessage(err)}`;
    }
    return `${p.task.kind} of ${p.task.shard}: ${p.task.state}${p.task.error ? ` (${p.task.error})` : ''}${resumed ? ' (resumed)' : ''}`;
  }

  private async noteOnce(key: string, cluster: string, verdict: MasterVerdict, reason: string): Promise<void> {
    // The vote count changes as views refresh; one entry per kind of refusal is enough.
    const kind = reason.replace(/\d+/g, '#');
    if (this.noted.get(key) === kind) return;
    this.noted.set(key, kind);
    const entry: HistoryEntry = {
      at: new Date().toISOString(),
      cluster,
      controller: this.deps.controllerId,
      action: 'failover',
      shard: verdict.shard,
      target: verdict.master,
      reason,
      outcome: 'refused',
      durationMs: null,
    };
    this.deps.log.warn(reason, { cluster, shard: verdict.shard });
    await this.deps.history.append(entry, this.deps.election.requireFence());
  }
}
