/**
 * What the operator's dashboard shows of one cluster, in one read: the cluster status (as
 * `cluster show`, offsets and config drift read from Redis now), every controller replica's own
 * view of every instance (the status shows one), proxies with the epoch each applied, the newest
 * tasks, migrations and shard splits with their progress, and the newest history. Read-only: it composes what
 * AdminService already answers, so the page and the CLI never disagree on a rule.
 */
import type { ControllerStatus } from '../store/controller-registry.js';
import type { HistoryEntry, InstanceHealth, ProxyInfo, Task } from '../model/schemas.js';
import type { HealthViews } from '../model/observations.js';
import type { AdminService, ClusterStatus } from './admin-service.js';
import type { MigrationView } from './migration-service.js';
import { splitCancelRefusal, type SplitRecord } from '../model/split.js';

/** How much of the past one overview carries: the page polls it every second. */
export const OVERVIEW_LIMITS = { tasks: 20, migrations: 10, splits: 10, history: 50 } as const;

/**
 * A split as the page shows it: its record, and why a cancel would be refused now (null: it would
 * undo the split), by the rule the API applies, so that the page offers Cancel only when it works.
 */
export type SplitView = SplitRecord & { cancelRefusal: string | null };

export interface ReplicaView {
  controller: string;
  /** Whether it leads now; false for a view left by a replica that is gone (its lease not yet expired). */
  leader: boolean;
  /** Registered now (its `controllers/<id>` key is there). */
  live: boolean;
  instances: InstanceHealth[];
}

export interface ClusterOverview {
  /** When this answer was put together (ISO time), for "updated N s ago". */
  at: string;
  status: ClusterStatus;
  controllers: ControllerStatus[];
  views: ReplicaView[];
  proxies: ProxyInfo[];
  /** Newest first. */
  tasks: Task[];
  /** Newest first. */
  migrations: MigrationView[];
  /** Newest first: state, step, sync progress, hold and trim as recorded (docs/split.md). */
  splits: SplitView[];
  /** Newest first. */
  history: HistoryEntry[];
  problems: string[];
}

export class DashboardService {
  constructor(private readonly admin: AdminService) {}

  async overview(name: string): Promise<ClusterOverview> {
    // The status first: it validates the name and says "no such cluster" before anything else is read.
    const status = await this.admin.describeCluster(name);
    const cluster = status.spec.name;
    const problems = [...status.problems];
    const [controllers, views, proxies, tasks, migrations, splits, history] = await Promise.all([
      this.admin.listControllers(),
      this.admin.health.read(cluster, (err) => problems.push(err.message)),
      this.admin.listProxies(cluster),
      this.admin.listTasks(cluster),
      this.admin.migrations.list(cluster),
      this.admin.splits.list(cluster),
      this.admin.listHistory(cluster, OVERVIEW_LIMITS.history),
    ]);
    for (const part of [controllers, proxies, tasks, migrations, splits, history]) problems.push(...part.problems);
    return {
      at: new Date().toISOString(),
      status,
      controllers: controllers.controllers,
      views: replicaViews(views, controllers.controllers),
      proxies: proxies.proxies,
      tasks: newestFirst(tasks.tasks, OVERVIEW_LIMITS.tasks),
      migrations: newestFirst(migrations.migrations, OVERVIEW_LIMITS.migrations),
      splits: newestFirst(splits.splits, OVERVIEW_LIMITS.splits).map((x) => ({ ...x, cancelRefusal: splitCancelRefusal(x) })),
      history: newestFirst(history.entries, OVERVIEW_LIMITS.history),
      problems,
    };
  }
}

/** Each replica's views, leader first, then by id; instances in address order. */
export function replicaViews(views: HealthViews, controllers: Pick<ControllerStatus, 'id' | 'leader'>[]): ReplicaView[] {
  const byId = new Map(controllers.map((c) => [c.id, c]));
  const out = [...views].map(([controller, instances]) => ({
    controller,
    leader: byId.get(controller)?.leader ?? false,
    live: byId.has(controller),
    instances: [...instances.values()].sort((a, b) => a.address.localeCompare(b.address)),
  }));
  return out.sort((a, b) => Number(b.leader) - Number(a.leader) || a.controller.localeCompare(b.controller));
}

/** The stores list oldest first: the newest `count`, newest first. */
function newestFirst<T>(items: T[], count: number): T[] {
  return items.slice(-count).reverse();
}
