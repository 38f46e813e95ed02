/**
 * The names every cfgserver registry exports, read from the code's own registries (a controller's
 * and a proxy's), with the series names Prometheus derives for histograms and summaries: what the
 * alert rules and the dashboard may refer to.
 */
import { ControllerMetrics } from '../../src/controller/metrics.js';
import { ProxyMetrics } from '../../src/proxy/metrics.js';

export interface MetricName {
  name: string;
  type: string;
  help: string;
}

/** Every metric of the controller's and the proxy's registries. */
export function registryMetrics(): MetricName[] {
  const out: MetricName[] = [];
  for (const registry of [new ControllerMetrics(() => true).registry, new ProxyMetrics().registry]) {
    for (const m of registry.getMetricsAsArray()) out.push({ name: m.name, type: String(m.type), help: m.help });
  }
  return out;
}

/** Every series name a query may use: histograms add _bucket, _sum and _count. */
export function seriesNames(): Set<string> {
  const names = new Set<string>();
  for (const m of registryMetrics()) {
    names.add(m.name);
    if (m.type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    if (m.type === 'summary') for (const s of ['_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

/** The cfgserver metric names a PromQL expression refers to. */
export function namesIn(expr: string): string[] {
  return [...new Set(expr.match(/\bcfgserver_[a-zA-Z0-9_]+/g) ?? [])];
}

/** cfgserver's own metrics: not those of prom-client's default collectors (process, Node.js). */
export function isOwnMetric(name: string): boolean {
  return !/^cfgserver_(proxy_)?(process_|nodejs_)/.test(name);
}
