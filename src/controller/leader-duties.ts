/**
 * What the leader does for one cluster each cycle, in order, each step saying what it did:
 *   1. carry on unfinished tasks (a failover or switchover a previous leader began, or one an
 *      admin asked for);
 *   2. find masters that a quorum (a majority of the configured replicas) judges down, and fail
 *      them over — unless the cluster is paused, automatic failover is off, the failover budget is
 *      spent, or this leader looks cut off itself; a master that every replica able to vote judges
 *      down, but with too few votes for the quorum, is a refusal too;
 *   3. repair replication (REPLICAOF) on shards with no task and a live master, and keep each such
 *      master's write fence (min-replicas-to-write) as its live slaves warrant;
 *   4. every few seconds, bring each instance to the cluster's desired Redis configuration
 *      (config-applier.ts; a paused cluster's differences are reported, not repaired).
 * Beside these, it starts the cluster's unfinished slot migration, which runs in the background
 * (migrations/migration-driver.ts).
 * Refusals are recorded in history once per episode, not every cycle.
 */
import { NotLeaderError, RefusedError, errorMessage } from '../model/errors.js';
import { isTerminal, type Task } from '../model/schemas.js';
import { historyEntry } from '../model/history.js';
import { canUndo, newTask } from '../model/task.js';
import type { StoredCluster } from '../store/cluster-store.js';
import type { ControllerRegistry, ControllerStatus } from '../store/controller-registry.js';
import { Recent } from '../util/recent.js';
import type { HealthStore } from '../store/health-store.js';
import { planReplication, planWriteFence } from './decide.js';
import { RefusalMemory, gateFailover, recentFailovers, type RefusalScope } from './failover-gate.js';
import { judgeMasters, looksIsolated, majority, quorumShortfall, standings, type MasterVerdict } from './detect.js';
import { downByMajority, stepAsideReason, unreachableByMajority } from './sight.js';
import { LeaderView, type LeaderViewMetrics } from './leader-view.js';
import { findShard, instancesOf } from '../model/route.js';
import { chooseSlave } from './choose.js';
import type { Observations } from '../model/observations.js';
import type { Reconciler } from './reconciler.js';
import type { ReplicaQuorum } from './replica-quorum.js';
import { noSlaveToPromote, runFailover } from './tasks/failover.js';
import { undoTask } from './tasks/interrupt.js';
import { TaskProgress, type TaskDeps } from './tasks/progress.js';
import { runSwitchover } from './tasks/switchover.js';
import type { MigrationDriver } from './migrations/migration-driver.js';
import type { SplitDriver } from './splits/split-run.js';
import type { ConfigApplier } from './config-applier.js';

/** How long a read that is not cluster-specific serves the cycles of other clusters. */
const SHARED_READ_MS = 250;

export interface LeaderDutiesDeps extends TaskDeps {
  health: HealthStore;
  registry: ControllerRegistry;
  reconciler: Reconciler;
  /** How many replicas the quorum is a majority of. */
  quorum: ReplicaQuorum;
  /** Gives the leader lock up for a while (this replica sees less than another one). */
  stepAside(reason: string): Promise<void>;
  /** Runs the clusters' slot migrations in the background. */
  migrations: MigrationDriver;
  /** Runs the clusters' shard splits (the cut-over inside the cycle). */
  splits?: SplitDriver;
  /**
   * Whether the cluster may have an unfinished migration or split (its `migration` key exists, or
   * nobody can tell): when false, the cycle does not read their records. Absent: always read.
   */
  mayHaveRecord?(cluster: string): boolean;
  /** Keeps every instance at the cluster's desired Redis configuration (every few seconds, not every cycle). */
  config: ConfigApplier;
  metrics: TaskDeps['metrics'] & LeaderViewMetrics;
}

interface DeadMasters {
  verdicts: MasterVerdict[];
  short: { verdict: MasterVerdict; reason: string }[];
  isolated: string | null;
  /** Why this leader should step aside (sight.ts), or null. */
  aside: string | null;
  /** Instances a majority of the voting replicas cannot reach: never promoted. */
  unreachable: Map<string, string>;
  /** Instances a majority of the voting replicas judge down (for the metrics). */
  judgedDown: string[];
}

export class LeaderDuties {
  /** What this leader remembers of each cluster's refusals between cycles. */
  private readonly memory = new Map<string, RefusalMemory>();

  /** The registered replicas, read once for the cycles of every cluster that run together. */
  private readonly controllers: Recent<ControllerStatus[]>;

  /** The leader's view of each cluster, as metrics. */
  private readonly view: LeaderView;

  constructor(private readonly deps: LeaderDutiesDeps) {
    this.controllers = new Recent(() => deps.registry.list(), SHARED_READ_MS);
    this.view = new LeaderView(deps);
  }

  /** Forgets what it kept of clusters that no longer exist. */
  retain(clusters: ReadonlySet<string>): void {
    this.view.retain(clusters);
  }

  private memoryOf(cluster: string): RefusalMemory {
    let memory = this.memory.get(cluster);
    if (!memory) this.memory.set(cluster, (memory = new RefusalMemory()));
    return memory;
  }

  async run(cluster: StoredCluster, observations: Observations): Promise<string[]> {
    const name = cluster.spec.name;
    const said: string[] = [];
    // Decide on the route as it is now, never on a cached copy: a copy read before a failover
    // would have us make the promoted slave follow its dead (or restarted, empty) old master.
    cluster = await this.deps.clusters.get(name);
    const tasks = await this.deps.tasks.list(name, (err) => this.deps.log.error('skipping a malformed task', { error: err.message }));

    // 1. Unfinished tasks.
    const unfinished = tasks.filter((t) => !isTerminal(t.task));
    for (const stored of unfinished) said.push(await this.carryOn(cluster, new TaskProgress(this.deps, stored), observations));
    // Tasks that ran may have changed the route, and those that did not finish keep their shard busy.
    const stillRunning = unfinished.length ? (await this.deps.tasks.list(name)).filter((t) => !isTerminal(t.task)) : [];
    if (unfinished.length) cluster = await this.deps.clusters.get(name);

    if (this.deps.mayHaveRecord?.(name) !== false) {
      // A slot migration runs beside the rest (in the background): it waits out a failover of its shards.
      const migration = await this.deps.migrations.carryOn(name);
      if (migration) said.push(migration);
      // A split's cut-over runs here, before the repairs below, which then read the route it left.
      const split = await this.deps.splits?.carryOn(name);
      if (split) {
        said.push(split);
        cluster = await this.deps.clusters.get(name);
      }
    }

    // 2. Dead masters.
    const memory = this.memoryOf(name);
    const busy = new Set(stillRunning.map((t) => t.task.shard));
    const down = await this.deadMasters(cluster);
    const aside = memory.stepAsideDue(down.aside, cluster.spec.probe.downAfterMs, Date.now());
    if (aside) {
      // Said in history (fenced, so while still the leader), then the lock goes.
      await this.noteOnce(memory, { cluster: 'aside' }, name, null, aside, 'step-aside');
      await this.deps.stepAside(aside);
      said.push(aside);
      return said;
    }
    if (down.isolated) {
      said.push(down.isolated);
      await this.noteOnce(memory, { cluster: 'isolated' }, name, null, `no failover from this replica: ${down.isolated}`);
    } else {
      memory.forget({ cluster: 'isolated' });
    }
    for (const short of down.short) {
      if (busy.has(short.verdict.shard)) continue;
      said.push(short.reason);
      await this.noteOnce(memory, { shard: short.verdict.shard }, name, short.verdict, short.reason);
    }
    let recent = recentFailovers(tasks.map((t) => t.task), cluster.spec.failover.windowMs, Date.now());
    for (const verdict of down.verdicts) {
      // A switchover whose master died is undone for the failover, if it has not gone too far.
      const superseded = stillRunning.find((t) => t.task.shard === verdict.shard && t.task.kind === 'switchover' && canUndo(t.task));
      const gate = gateFailover({
        verdict,
        isolated: down.isolated,
        ownProbe: observations.get(verdict.master)?.info ?? null,
        busy: busy.has(verdict.shard) && !superseded,
        refusedAt: memory.refusedAt(verdict.shard),
        spec: cluster.spec,
        recentFailovers: recent,
        now: Date.now(),
      });
      if (gate.decision === 'wait') continue;
      if (gate.decision === 'refuse') {
        said.push(gate.reason);
        await this.noteOnce(memory, { shard: verdict.shard }, name, verdict, gate.reason);
        continue;
      }
      const unchanged = this.stillRefused(cluster, verdict, observations, down.unreachable, memory);
      if (unchanged) {
        // Recorded once, in the refused task: trying again would record the same every 30 s.
        memory.failoverEnded(verdict.shard, { why: unchanged }, Date.now());
        said.push(`failover of ${verdict.shard} still refused, as its last task says: ${unchanged}`);
        continue;
      }
      memory.forget({ shard: verdict.shard });
      if (superseded) {
        await undoTask(this.deps, new TaskProgress(this.deps, superseded), { state: 'failed', step: 'superseded', reason: `${gate.votes}: its master died during the switchover, a failover takes over` });
        said.push(`switchover ${superseded.task.id} of ${verdict.shard} undone: its master ${verdict.master} is down`);
      }
      const outcome = await this.startFailover(cluster, verdict, gate.votes, observations, down.unreachable);
      memory.failoverEnded(verdict.shard, outcome.state === 'refused' ? { why: outcome.error ?? '' } : null, Date.now());
      said.push(outcome.sentence);
      busy.add(verdict.shard);
      recent++;
    }
    // A master that is back (or a shard that failed over) starts a new episode.
    memory.endShardEpisodes(new Set([...down.verdicts, ...down.short.map((x) => x.verdict)].map((v) => v.shard)));
    // As read before this cycle's failovers (if any): the next cycle shows what they changed.
    await this.view.record({
      cluster: name,
      routeEpoch: cluster.route.epoch,
      down: down.judgedDown.length,
      running: stillRunning.map((t) => t.task),
      budget: cluster.spec.failover.maxPerWindow - recent,
    });

    // 3. Replication repair, where no task runs and the master is alive.
    if (cluster.spec.paused) return [...said, ...(await this.deps.config.run(cluster, observations))];
    const downShards = new Set(down.verdicts.map((v) => v.shard));
    const plan = planReplication(cluster.route, observations);
    plan.actions.push(...planWriteFence(cluster.route, observations, cluster.spec.failover, this.deps.reconciler.confirmedFences(name), this.deps.splits?.raisedFences(name)));
    // A shard whose task ran in this cycle is judged on the next one: this cycle's observations
    // predate the task, so they would "repair" what the task just did (REPLICAOF NO ONE on the
    // promoted master, the old master "is a master") and read like a fault in history.
    const movedThisCycle = new Set(unfinished.map((t) => t.task.shard));
    const skip = (shard: string) => busy.has(shard) || downShards.has(shard) || movedThisCycle.has(shard);
    plan.actions = plan.actions.filter((a) => !skip(a.shard));
    const refused = plan.refusals.filter((r) => !busy.has(r.shard) && !movedThisCycle.has(r.shard));
    memory.endInstanceEpisodes(refused);
    for (const r of refused) {
      said.push(r.reason);
      await this.noteOnce(memory, { shard: r.shard, instance: r.instance }, name, { shard: r.shard, master: r.instance }, r.reason, 'replicaof', { refusal: r.kind, summary: r.summary });
    }
    said.push(...(await this.deps.reconciler.apply(name, plan)));
    // 4. The desired Redis configuration (a paused cluster's differences are only reported).
    said.push(...(await this.deps.config.run(cluster, observations)));
    return said;
  }

  /**
   * Masters down by quorum; masters that every replica able to vote judges down but that lack
   * the quorum (with the sentence saying why); whether this leader looks cut off, or should let
   * a replica that sees more lead; and the instances a majority of the voters cannot reach.
   */
  private async deadMasters(cluster: StoredCluster): Promise<DeadMasters> {
    const [views, controllers] = await Promise.all([this.deps.health.read(cluster.spec.name), this.controllers.get()]);
    const live = controllers.map((c) => c.id);
    const { replicas } = await this.deps.quorum.base(live.length);
    const opts = { live, replicas };
    const standing = standings(cluster.route, views, live);
    const all = judgeMasters(cluster.route, views, opts, standing);
    const short = all.flatMap((verdict) => {
      const reason = quorumShortfall(cluster.route, views, verdict, opts, standing);
      return reason ? [{ verdict, reason }] : [];
    });
    const voters = standing.filter((s) => s.votes).map((s) => s.controller);
    const instances = instancesOf(cluster.route);
    return {
      verdicts: all.filter((v) => v.down),
      short,
      isolated: looksIsolated(cluster.route, views, this.deps.controllerId, opts),
      aside: stepAsideReason(instances, views, this.deps.controllerId, voters, majority(voters.length)),
      unreachable: unreachableByMajority(instances, views, voters, majority(voters.length)),
      judgedDown: downByMajority(instances, views, voters, majority(voters.length)),
    };
  }

  /**
   * On a retry of a failover refused in this episode: the reason, when no slave is fit now for the
   * same reasons as then (so no new task is recorded); null when something changed, or on a first try.
   */
  private stillRefused(cluster: StoredCluster, verdict: MasterVerdict, observations: Observations, exclude: Map<string, string>, memory: RefusalMemory): string | null {
    const shard = findShard(cluster.route, verdict.shard);
    if (memory.refusedAt(verdict.shard) === undefined || !shard) return null;
    const downForMs = verdict.lastOkAt === null ? cluster.spec.probe.downAfterMs : Date.now() - verdict.lastOkAt;
    const choice = chooseSlave(shard, observations, { policy: cluster.spec.failover, downAfterMs: cluster.spec.probe.downAfterMs, masterDownForMs: downForMs, exclude });
    if (choice.ok) return null;
    const why = noSlaveToPromote(choice.reasons);
    return memory.sameRefusal(verdict.shard, why) ? why : null;
  }

  private async startFailover(cluster: StoredCluster, verdict: MasterVerdict, votes: string, observations: Observations, exclude: Map<string, string>): Promise<{ sentence: string; state: Task['state'] | null; error?: string | null }> {
    const task = newTask({
      kind: 'failover',
      cluster: cluster.spec.name,
      shard: verdict.shard,
      state: 'running',
      next: 'choose',
      oldMaster: verdict.master,
      target: null,
      force: false,
      reason: votes,
      requestedBy: this.deps.controllerId,
      controller: this.deps.controllerId,
      epochBefore: cluster.route.epoch,
    });
    try {
      const stored = await this.deps.tasks.create(task, this.deps.election.requireFence());
      const p = new TaskProgress(this.deps, stored);
      return { sentence: await this.carryOn(cluster, p, observations, verdict, exclude), state: p.task.state, error: p.task.error };
    } catch (err) {
      if (err instanceof RefusedError) return { sentence: `failover of ${verdict.shard} not started: ${err.message}`, state: null };
      throw err;
    }
  }

  /** Runs a task until it ends (or this replica stops leading). */
  private async carryOn(cluster: StoredCluster, p: TaskProgress, observations: Observations, verdict?: MasterVerdict, exclude?: Map<string, string>): Promise<string> {
    const start = p.task; // as found: p.task moves on as the steps are recorded
    const resumed = start.state === 'running' && start.steps.length > 0;
    const ctx = { observations: new Map(observations), policy: cluster.spec.failover, downAfterMs: cluster.spec.probe.downAfterMs };
    try {
      if (start.kind === 'failover') {
        const lastOk = verdict?.lastOkAt ?? Date.parse(start.createdAt) - cluster.spec.probe.downAfterMs;
        await runFailover(this.deps, p, { ...ctx, masterDownForMs: Date.now() - lastOk, exclude });
      } else {
        if (start.state === 'pending') await p.advance('accepted', start.next, `leader ${this.deps.controllerId} takes the task`);
        await runSwitchover(this.deps, p, ctx, resumed);
      }
    } catch (err) {
      if (err instanceof NotLeaderError) throw err;
      if (err instanceof RefusedError) {
        // The world moved under the task (the shard's master changed, the shard went away): retrying cannot help.
        await p.finish('failed', p.task.next, err.message);
        return `${start.kind} of ${start.shard} failed: ${err.message}`;
      }
      // An unexpected failure (Redis or etcd) leaves the task where it is: the next cycle retries it.
      return `${start.kind} of ${start.shard} stopped at step ${p.task.next}, will retry: ${errorMessage(err)}`;
    }
    return `${p.task.kind} of ${p.task.shard}: ${p.task.state}${p.task.error ? ` (${p.task.error})` : ''}${resumed ? ' (resumed)' : ''}`;
  }

  /** Records a refusal in history (fenced) and the log, once per episode of its scope. */
  private async noteOnce(memory: RefusalMemory, scope: RefusalScope, cluster: string, verdict: Pick<MasterVerdict, 'shard' | 'master'> | null, reason: string, action = 'failover', detail?: Record<string, unknown>): Promise<void> {
    if (!memory.isNews(scope, reason)) return;
    const entry = historyEntry({ cluster, controller: this.deps.controllerId, action, shard: verdict?.shard ?? null, target: verdict?.master ?? null, reason, outcome: 'refused', detail });
    this.deps.log.warn(reason, { cluster, shard: verdict?.shard });
    await this.deps.history.append(entry, this.deps.election.requireFence());
  }
}
