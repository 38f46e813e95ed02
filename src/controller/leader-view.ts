/**
 * The leader's view of a cluster, as metrics: the route epoch, each live proxy's epoch lag (from
 * the proxy registry), the instances down by the replicas' majority, the tasks still running and
 * the failover budget left. Written by the leader's duties every cycle from what the cycle has
 * already read; only the proxy registry is read here, and not every cycle (see PROXY_READ_MS).
 */
import type { Logger } from 'winston';
import { errorMessage } from '../model/errors.js';
import { taskSchema, type Task } from '../model/schemas.js';
import type { ProxyRegistry } from '../store/proxy-registry.js';
import type { ControllerMetrics } from './metrics.js';

/**
 * How often the registry is read while every proxy has drained the route: a proxy falling behind
 * shows within this. While a proxy lags (a route change spreading), it is read every cycle so that
 * the lag is seen going back to 0 as soon as it does.
 */
export const PROXY_READ_MS = 5000;

export type LeaderViewMetrics = Pick<ControllerMetrics, 'routeEpoch' | 'proxyEpochLag' | 'instancesJudgedDown' | 'tasksRunning' | 'failoverBudget' | 'initTaskSeries'>;

export interface ClusterView {
  cluster: string;
  routeEpoch: number;
  /** Instances a majority of the voting replicas judge down. */
  down: number;
  /** Tasks not finished after this cycle's work. */
  running: readonly Pick<Task, 'kind'>[];
  /** Automatic failovers still allowed in the window. */
  budget: number;
}

interface ProxyRead {
  at: number;
  epoch: number;
  lagging: boolean;
  /** The gauge's generation then: dropped since (this replica stopped leading a while), read again. */
  generation: number;
}

export class LeaderView {
  private readonly lastRead = new Map<string, ProxyRead>();

  constructor(
    private readonly deps: { metrics: LeaderViewMetrics; proxies: ProxyRegistry; log: Logger },
  ) {}

  async record(view: ClusterView, now = Date.now()): Promise<void> {
    const m = this.deps.metrics;
    const { cluster } = view;
    m.initTaskSeries(cluster);
    m.routeEpoch.set(cluster, [{ labels: {}, value: view.routeEpoch }]);
    m.instancesJudgedDown.set(cluster, [{ labels: {}, value: view.down }]);
    m.failoverBudget.set(cluster, [{ labels: {}, value: Math.max(0, view.budget) }]);
    // Every kind gets a series, 0 included, so that a rule can tell "none" from "not the leader".
    const kinds = new Map<string, number>(taskSchema.shape.kind.options.map((k) => [k, 0]));
    for (const t of view.running) kinds.set(t.kind, (kinds.get(t.kind) ?? 0) + 1);
    m.tasksRunning.set(cluster, [...kinds].map(([kind, value]) => ({ labels: { kind }, value })));
    if (this.proxiesDue(cluster, view.routeEpoch, now)) await this.readProxies(cluster, view.routeEpoch, now);
  }

  private proxiesDue(cluster: string, epoch: number, now: number): boolean {
    const last = this.lastRead.get(cluster);
    return !last || last.lagging || last.epoch !== epoch || now - last.at >= PROXY_READ_MS || last.generation !== this.deps.metrics.proxyEpochLag.generation;
  }

  private async readProxies(cluster: string, epoch: number, now: number): Promise<void> {
    try {
      const proxies = await this.deps.proxies.list(cluster);
      const rows = proxies.map((p) => ({ labels: { proxy: p.id }, value: Math.max(0, epoch - (p.epoch ?? 0)) }));
      this.deps.metrics.proxyEpochLag.set(cluster, rows);
      this.lastRead.set(cluster, { at: now, epoch, lagging: rows.some((r) => r.value > 0), generation: this.deps.metrics.proxyEpochLag.generation });
    } catch (err) {
      // The last values stay; the next cycle tries again.
      this.deps.log.debug('cannot read the proxy registry for the epoch lag metric', { cluster, error: errorMessage(err) });
    }
  }

  /** Forgets clusters that no longer exist. */
  retain(clusters: ReadonlySet<string>): void {
    for (const cluster of [...this.lastRead.keys()]) if (!clusters.has(cluster)) this.lastRead.delete(cluster);
  }
}
