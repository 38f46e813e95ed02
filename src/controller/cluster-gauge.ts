/**
 * A gauge whose series belong to clusters, set a whole cluster at a time: `set(cluster, rows)`
 * replaces every series of that cluster, so a proxy that left (or a task kind with nothing running)
 * disappears instead of keeping its last value. The series of deleted clusters go with `retain`.
 * It reports only while `reporting()` holds (the leader's view: a non-leader exports nothing, so
 * that a sum over the replicas counts each cluster once).
 */
import { Gauge, type Registry } from 'prom-client';

export interface ClusterGaugeOptions<L extends string> {
  name: string;
  help: string;
  /** The labels beside `cluster`. */
  labelNames: readonly L[];
  registry: Registry;
  /** Whether the series are exported at a scrape; when not, they are dropped. */
  reporting(): boolean;
}

export type ClusterGaugeRow<L extends string> = { labels: Record<L, string>; value: number };

export class ClusterGauge<L extends string = never> {
  private readonly gauge: Gauge<'cluster' | L>;
  /** The label sets last set, per cluster: removed when the next set leaves them out. */
  private readonly series = new Map<string, Record<L, string>[]>();
  /** Grows each time the series are dropped (a scrape while not reporting): what was set is gone. */
  private drops = 0;

  constructor(o: ClusterGaugeOptions<L>) {
    const series = this.series;
    const dropped = () => this.drops++;
    this.gauge = new Gauge<'cluster' | L>({
      name: o.name,
      help: o.help,
      labelNames: ['cluster', ...o.labelNames],
      registers: [o.registry],
      collect() {
        if (o.reporting()) return;
        this.reset();
        series.clear();
        dropped();
      },
    });
  }

  /** Changes whenever the series were dropped: a value set before then must be set again. */
  get generation(): number {
    return this.drops;
  }

  /** Sets every series of `cluster` at once; series of that cluster left out are removed. */
  set(cluster: string, rows: ClusterGaugeRow<L>[]): void {
    for (const labels of this.series.get(cluster) ?? []) this.gauge.remove({ ...labels, cluster } as Record<'cluster' | L, string>);
    for (const row of rows) this.gauge.set({ ...row.labels, cluster } as Record<'cluster' | L, string>, row.value);
    this.series.set(cluster, rows.map((r) => r.labels));
  }

  /** Drops the series of every cluster not in `clusters` (deleted ones). */
  retain(clusters: ReadonlySet<string>): void {
    for (const cluster of [...this.series.keys()]) {
      if (clusters.has(cluster)) continue;
      this.set(cluster, []);
      this.series.delete(cluster);
    }
  }
}
