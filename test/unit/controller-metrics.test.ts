/**
 * The controller's metrics without I/O: a task counted by kind and outcome with its duration, the
 * leader's gauges exported only while leading and replaced a cluster at a time, the proxy lag read
 * from a (fake) registry only when due, and the majority's "down".
 */
import { describe, expect, it } from 'vitest';
import type { ProxyInfo } from '../../src/model/schemas.js';
import type { HealthViews } from '../../src/model/observations.js';
import { ControllerMetrics } from '../../src/controller/metrics.js';
import { LeaderView, PROXY_READ_MS } from '../../src/controller/leader-view.js';
import { downByMajority } from '../../src/controller/sight.js';
import type { ProxyRegistry } from '../../src/store/proxy-registry.js';
import { silentLogger } from '../../src/log.js';
import { sample, samples } from '../helpers/metrics-text.js';

function proxy(id: string, epoch: number | null): ProxyInfo {
  return { id, cluster: 'c', address: '127.0.0.1:1', metrics: null, pid: 1, version: 'x', epoch, kind: 'cfgserver', startedAt: '', updatedAt: '' };
}

/** A registry whose proxies the test sets, counting its reads. */
function fakeRegistry(): { registry: ProxyRegistry; set(p: ProxyInfo[]): void; reads(): number } {
  let proxies: ProxyInfo[] = [];
  let reads = 0;
  const list = async () => {
    reads++;
    return proxies;
  };
  return { registry: { list } as unknown as ProxyRegistry, set: (p) => (proxies = p), reads: () => reads };
}

describe('ControllerMetrics', () => {
  it('counts an ended task by kind and outcome, with its duration from creation', async () => {
    const m = new ControllerMetrics(() => true);
    m.initTaskSeries('c');
    m.taskEnded({ kind: 'failover', cluster: 'c', state: 'done', createdAt: '2026-01-01T00:00:00.000Z' }, new Date('2026-01-01T00:00:01.500Z'));
    m.taskEnded({ kind: 'switchover', cluster: 'c', state: 'failed', createdAt: '2026-01-01T00:00:00.000Z' }, new Date('2026-01-01T00:00:40.000Z'));
    const text = await m.registry.metrics();
    expect(sample(text, 'cfgserver_failovers_total', { cluster: 'c', outcome: 'done' })).toBe(1);
    expect(sample(text, 'cfgserver_failovers_total', { cluster: 'c', outcome: 'failed' })).toBe(0);
    expect(sample(text, 'cfgserver_failover_duration_seconds_sum', { cluster: 'c', outcome: 'done' })).toBe(1.5);
    expect(sample(text, 'cfgserver_failover_duration_seconds_bucket', { cluster: 'c', outcome: 'done', le: '1' })).toBe(0);
    expect(sample(text, 'cfgserver_failover_duration_seconds_bucket', { cluster: 'c', outcome: 'done', le: '2' })).toBe(1);
    expect(sample(text, 'cfgserver_switchovers_total', { cluster: 'c', outcome: 'failed' })).toBe(1);
    expect(sample(text, 'cfgserver_switchover_duration_seconds_count', { cluster: 'c', outcome: 'failed' })).toBe(1);
    expect(samples(text, 'cfgserver_switchovers_total')).toHaveLength(4);
    m.retainClusters(new Set());
    expect(samples(await m.registry.metrics(), 'cfgserver_failovers_total')).toEqual([]);
  });

  it("exports the leader's view only while leading, a cluster's series replaced as a whole", async () => {
    let leading = true;
    const m = new ControllerMetrics(() => leading);
    m.proxyEpochLag.set('c', [{ labels: { proxy: 'p1' }, value: 1 }, { labels: { proxy: 'p2' }, value: 0 }]);
    m.proxyEpochLag.set('d', [{ labels: { proxy: 'p9' }, value: 0 }]);
    m.proxyEpochLag.set('c', [{ labels: { proxy: 'p2' }, value: 0 }]);
    let text = await m.registry.metrics();
    expect(samples(text, 'cfgserver_proxy_epoch_lag').map((s) => `${s.labels['cluster']}/${s.labels['proxy']}=${s.value}`).sort()).toEqual(['c/p2=0', 'd/p9=0']);
    m.retainClusters(new Set(['c']));
    expect(samples(await m.registry.metrics(), 'cfgserver_proxy_epoch_lag').map((s) => s.labels['proxy'])).toEqual(['p2']);
    leading = false;
    text = await m.registry.metrics();
    expect(samples(text, 'cfgserver_proxy_epoch_lag')).toEqual([]);
    leading = true;
    // Dropped, not hidden: leading again shows only what the new term sets.
    expect(samples(await m.registry.metrics(), 'cfgserver_proxy_epoch_lag')).toEqual([]);
  });
});

describe('LeaderView', () => {
  it('records the epoch, the tasks by kind, the budget and each proxy lag, reading the registry only when due', async () => {
    const m = new ControllerMetrics(() => true);
    const fake = fakeRegistry();
    const view = new LeaderView({ metrics: m, proxies: fake.registry, log: silentLogger() });
    const base = { cluster: 'c', down: 1, running: [{ kind: 'switchover' as const }], budget: -1 };
    fake.set([proxy('p1', 7), proxy('p2', null)]);
    await view.record({ ...base, routeEpoch: 7 }, 0);
    let text = await m.registry.metrics();
    expect(sample(text, 'cfgserver_route_epoch', { cluster: 'c' })).toBe(7);
    expect(sample(text, 'cfgserver_instances_down', { cluster: 'c' })).toBe(1);
    expect(sample(text, 'cfgserver_tasks_running', { cluster: 'c', kind: 'switchover' })).toBe(1);
    expect(sample(text, 'cfgserver_tasks_running', { cluster: 'c', kind: 'failover' })).toBe(0);
    expect(sample(text, 'cfgserver_failover_budget_remaining', { cluster: 'c' })).toBe(0);
    expect(sample(text, 'cfgserver_proxy_epoch_lag', { cluster: 'c', proxy: 'p1' })).toBe(0);
    expect(sample(text, 'cfgserver_proxy_epoch_lag', { cluster: 'c', proxy: 'p2' })).toBe(7);
    // A proxy lags: read again at the next cycle.
    fake.set([proxy('p1', 7), proxy('p2', 7)]);
    await view.record({ ...base, routeEpoch: 7 }, 100);
    expect(fake.reads()).toBe(2);
    expect(sample(await m.registry.metrics(), 'cfgserver_proxy_epoch_lag', { cluster: 'c', proxy: 'p2' })).toBe(0);
    // Nobody lags: not read again until PROXY_READ_MS has passed, or the epoch changed.
    await view.record({ ...base, routeEpoch: 7 }, 200);
    expect(fake.reads()).toBe(2);
    await view.record({ ...base, routeEpoch: 8 }, 300);
    expect(fake.reads()).toBe(3);
    text = await m.registry.metrics();
    expect(sample(text, 'cfgserver_proxy_epoch_lag', { cluster: 'c', proxy: 'p1' })).toBe(1);
    fake.set([]);
    await view.record({ ...base, routeEpoch: 8 }, 400);
    expect(fake.reads()).toBe(4);
    expect(samples(await m.registry.metrics(), 'cfgserver_proxy_epoch_lag')).toEqual([]);
    await view.record({ ...base, routeEpoch: 8 }, 400 + PROXY_READ_MS - 1);
    expect(fake.reads()).toBe(4);
    await view.record({ ...base, routeEpoch: 8 }, 400 + PROXY_READ_MS);
    expect(fake.reads()).toBe(5);
  });

  it('reads the registry again at once after the series were dropped (a scrape while not leading)', async () => {
    let leading = true;
    const m = new ControllerMetrics(() => leading);
    const fake = fakeRegistry();
    const view = new LeaderView({ metrics: m, proxies: fake.registry, log: silentLogger() });
    const base = { cluster: 'c', down: 0, running: [], budget: 3, routeEpoch: 7 };
    fake.set([proxy('p1', 7)]);
    await view.record(base, 0);
    await view.record(base, 100);
    expect(fake.reads()).toBe(1);
    leading = false;
    await m.registry.metrics();
    leading = true;
    await view.record(base, 200);
    expect(fake.reads()).toBe(2);
    expect(sample(await m.registry.metrics(), 'cfgserver_proxy_epoch_lag', { cluster: 'c', proxy: 'p1' })).toBe(0);
  });
});

describe('downByMajority', () => {
  it('counts an instance down when a majority of the voters judge it down', () => {
    const view = (down: boolean) => ({ down, reachable: !down }) as never;
    const views: HealthViews = new Map([
      ['a', new Map([['x', view(true)], ['y', view(true)]])],
      ['b', new Map([['x', view(true)], ['y', view(false)]])],
      ['c', new Map([['x', view(false)]])],
    ]);
    expect(downByMajority(['x', 'y', 'z'], views, ['a', 'b', 'c'], 2)).toEqual(['x']);
    expect(downByMajority(['x', 'y'], views, ['a'], 1)).toEqual(['x', 'y']);
  });
});
