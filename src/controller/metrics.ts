/**
 * Prometheus metrics of a controller replica. A registry per replica (not the global one), so
 * that several replicas in one process — as in tests — keep separate counts.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { etcdRequestsMade } from '../store/etcd.js';
import { TERMINAL_TASK_STATES, type Task } from '../model/schemas.js';
import { ClusterGauge } from './cluster-gauge.js';

/** Failovers take seconds; a switchover waits for a slave to catch up and for every proxy. */
const TASK_BUCKETS = [0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300];
/** A split copies a whole shard, then trims half of each side: seconds for a small one, hours for a big one. */
const SPLIT_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];
/** The cut-over's hold: tens of milliseconds when the new master streams; seconds when a leader changed in it. */
const HOLD_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];
/** How a split can end (the split record's finished states). */
export const SPLIT_OUTCOMES = ['done', 'failed', 'cancelled'] as const;

/** A counter's collect() that follows a count kept elsewhere: each scrape adds what was made since the last. */
function followCount(read: () => number): (this: Counter) => void {
  let seen = 0;
  return function (this: Counter) {
    const now = read();
    if (now > seen) this.inc(now - seen);
    seen = now;
  };
}

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly leader = new Gauge({ name: 'cfgserver_controller_leader', help: '1 while this replica holds the leader lock', registers: [this.registry] });
  readonly clusters = new Gauge({ name: 'cfgserver_clusters', help: 'Clusters this replica watches', registers: [this.registry] });
  readonly instancesDown = new Gauge({
    name: 'cfgserver_instances_unreachable',
    help: 'Instances that failed their last probe',
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  /** etcd requests of this process, counted where they are made (store/etcd.ts etcdCall). */
  readonly etcdRequests = new Counter({
    name: 'cfgserver_etcd_requests_total',
    help: 'Requests this replica sent to etcd (reads and writes; watch and keep-alive streams not counted)',
    registers: [this.registry],
    collect: followCount(etcdRequestsMade),
  });
  readonly probes = new Counter({ name: 'cfgserver_probes_total', help: 'Probes sent', labelNames: ['result'], registers: [this.registry] });
  readonly probeSeconds = new Histogram({
    name: 'cfgserver_probe_duration_seconds',
    help: 'INFO replication round trip',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly actions = new Counter({
    name: 'cfgserver_actions_total',
    help: 'Actions the leader took on Redis',
    labelNames: ['action', 'outcome'],
    registers: [this.registry],
  });
  readonly cycleSeconds = new Histogram({
    name: 'cfgserver_cycle_duration_seconds',
    help: 'Duration of one probe-and-reconcile cycle of one cluster',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });

  readonly migrationKeys = new Counter({
    name: 'cfgserver_migration_keys_total',
    help: "Keys the leader's mover moved between shards (proxies count their own moves on access)",
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly migrationSlotsPending = new Gauge({
    name: 'cfgserver_migration_slots_pending',
    help: 'Slots of the migration under way that have not been committed to their new shard yet (0: none under way)',
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly migrationSteps = new Counter({
    name: 'cfgserver_migration_steps_total',
    help: 'Migration steps recorded, by step and the state the migration was left in',
    labelNames: ['cluster', 'step', 'state'],
    registers: [this.registry],
  });

  // ---- Failovers and switchovers, counted where a task's end is stored (tasks/progress.ts): only
  // the leader finishes a task, once, so no replica counts one twice and no two replicas count
  // the same one. A task an admin cancels before any leader takes it is not counted.
  readonly failovers = new Counter({
    name: 'cfgserver_failovers_total',
    help: 'Automatic failovers this replica ended as leader, by outcome (done, failed, refused, cancelled)',
    labelNames: ['cluster', 'outcome'],
    registers: [this.registry],
  });
  readonly switchovers = new Counter({
    name: 'cfgserver_switchovers_total',
    help: 'Planned switchovers this replica ended as leader, by outcome (done, failed, refused, cancelled)',
    labelNames: ['cluster', 'outcome'],
    registers: [this.registry],
  });
  readonly failoverSeconds = new Histogram({
    name: 'cfgserver_failover_duration_seconds',
    help: 'From the failover task being created to its end, by outcome',
    labelNames: ['cluster', 'outcome'],
    buckets: TASK_BUCKETS,
    registers: [this.registry],
  });
  readonly switchoverSeconds = new Histogram({
    name: 'cfgserver_switchover_duration_seconds',
    help: 'From the switchover being requested to its end, by outcome',
    labelNames: ['cluster', 'outcome'],
    buckets: TASK_BUCKETS,
    registers: [this.registry],
  });

  // ---- Shard splits, counted where a step of the split is stored (split-metrics.ts), by the
  // leader that stores it: a step is stored once, so summing over the replicas counts it once.
  readonly splits = new Counter({
    name: 'cfgserver_splits_total',
    help: 'Shard splits this replica ended as leader, by outcome (done, failed, cancelled)',
    labelNames: ['cluster', 'outcome'],
    registers: [this.registry],
  });
  readonly splitSeconds = new Histogram({
    name: 'cfgserver_split_duration_seconds',
    help: 'From the split being requested to its end, by outcome',
    labelNames: ['cluster', 'outcome'],
    buckets: SPLIT_BUCKETS,
    registers: [this.registry],
  });
  readonly splitHoldSeconds = new Histogram({
    name: 'cfgserver_split_hold_seconds',
    help: "How long the proxies held the moving slots' commands at a split's cut-over (hold route to commit route)",
    labelNames: ['cluster'],
    buckets: HOLD_BUCKETS,
    registers: [this.registry],
  });
  readonly splitSyncedKeys = new Counter({
    name: 'cfgserver_split_synced_keys_total',
    help: "Keys the new master of a split held when its sync ended (the source's whole data set)",
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly splitTrimmedKeys = new Counter({
    name: 'cfgserver_split_trimmed_keys_total',
    help: "Keys a split's trim unlinked on both sides, counted when the trim ends",
    labelNames: ['cluster'],
    registers: [this.registry],
  });

  /** Which counter and histogram each kind of task goes to: a new kind must say. */
  private readonly taskMetrics: Record<Task['kind'], { count: Counter<'cluster' | 'outcome'>; duration: Histogram<'cluster' | 'outcome'> }> = {
    failover: { count: this.failovers, duration: this.failoverSeconds },
    switchover: { count: this.switchovers, duration: this.switchoverSeconds },
  };

  /** Clusters whose task series exist (initTaskSeries). */
  private readonly taskSeriesOf = new Set<string>();

  /** Every new leader this replica sees (a new create revision of the leader key), itself included. */
  readonly leaderChanges = new Counter({
    name: 'cfgserver_leader_changes_total',
    help: 'Times this replica saw a new leader take the lock (itself included)',
    registers: [this.registry],
  });

  // ---- The leader's view of each cluster. Set by the leader's duties every cycle; emptied at
  // every scrape while this replica does not lead, so that summing over replicas counts once.
  readonly routeEpoch = this.leaderGauge('cfgserver_route_epoch', "Epoch of the cluster's route, as the leader last read it", []);
  readonly proxyEpochLag = this.leaderGauge(
    'cfgserver_proxy_epoch_lag',
    'Route epoch minus the epoch the proxy registered as drained (the whole route epoch while it has none)',
    ['proxy'],
  );
  readonly instancesJudgedDown = this.leaderGauge(
    'cfgserver_instances_down',
    'Instances a majority of the voting replicas judge down (no good probe for the down window)',
    [],
  );
  readonly tasksRunning = this.leaderGauge('cfgserver_tasks_running', 'Failover and switchover tasks not finished yet, by kind', ['kind']);
  readonly failoverBudget = this.leaderGauge(
    'cfgserver_failover_budget_remaining',
    'Automatic failovers left in the window (failover.maxPerWindow minus the failovers of the last windowMs)',
    [],
  );
  readonly splitRunning = this.leaderGauge('cfgserver_split_running', 'Whether the cluster has an unfinished shard split (1) or not (0)', []);

  /** @param isLeading read at every scrape: the leader's gauges are exported only while it holds. */
  constructor(private readonly isLeading: () => boolean = () => false) {
    collectDefaultMetrics({ register: this.registry, prefix: 'cfgserver_' });
  }

  private leaderGauge<L extends string>(name: string, help: string, labelNames: readonly L[]): ClusterGauge<L> {
    // Read lazily: field initialisers run before the constructor's body.
    return new ClusterGauge<L>({ name, help, labelNames, registry: this.registry, reporting: () => this.isLeading() });
  }

  /**
   * Counts a task that has just ended, with its duration from creation (the failover's decision,
   * the admin's request) to `endedAt`. Called once per task, by the leader that ends it.
   */
  taskEnded(task: Pick<Task, 'kind' | 'cluster' | 'state' | 'createdAt'>, endedAt: Date): void {
    const labels = { cluster: task.cluster, outcome: task.state };
    const seconds = Math.max(0, (endedAt.getTime() - Date.parse(task.createdAt)) / 1000);
    const { count, duration } = this.taskMetrics[task.kind];
    count.inc(labels);
    if (Number.isFinite(seconds)) duration.observe(labels, seconds);
  }

  /**
   * Creates every kind × outcome series of a cluster at 0: Prometheus's `increase()` cannot see
   * the first event of a series that appears with it, so an alert on the first failed failover
   * needs the series to exist before. Done by the leader for the clusters it sees.
   */
  initTaskSeries(cluster: string): void {
    if (this.taskSeriesOf.has(cluster)) return;
    this.taskSeriesOf.add(cluster);
    for (const { count, duration } of Object.values(this.taskMetrics)) {
      for (const outcome of TERMINAL_TASK_STATES) {
        count.inc({ cluster, outcome }, 0);
        duration.zero({ cluster, outcome });
      }
    }
    for (const outcome of SPLIT_OUTCOMES) {
      this.splits.inc({ cluster, outcome }, 0);
      this.splitSeconds.zero({ cluster, outcome });
    }
  }

  /** Drops the leader's series of clusters that no longer exist. */
  retainClusters(clusters: ReadonlySet<string>): void {
    for (const gauge of [this.routeEpoch, this.proxyEpochLag, this.instancesJudgedDown, this.tasksRunning, this.failoverBudget, this.splitRunning]) gauge.retain(clusters);
    for (const cluster of [...this.taskSeriesOf]) {
      if (clusters.has(cluster)) continue;
      this.taskSeriesOf.delete(cluster);
      for (const { count, duration } of Object.values(this.taskMetrics)) {
        for (const outcome of TERMINAL_TASK_STATES) {
          count.remove({ cluster, outcome });
          duration.remove({ cluster, outcome });
        }
      }
      for (const outcome of SPLIT_OUTCOMES) {
        this.splits.remove({ cluster, outcome });
        this.splitSeconds.remove({ cluster, outcome });
      }
    }
  }
}
