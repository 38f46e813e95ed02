/**
 * A split's metrics without I/O: each stored step adds what it says (keys synced, the hold, keys
 * trimmed) once, the end is counted by outcome with its duration from the request, the running
 * gauge goes to 0 at the end and is exported only while leading.
 */
import { describe, expect, it } from 'vitest';
import { ControllerMetrics } from '../../src/controller/metrics.js';
import { countSplitStep } from '../../src/controller/splits/split-metrics.js';
import type { SplitRecord } from '../../src/model/split.js';
import { sample } from '../helpers/metrics-text.js';

const createdAt = '2026-12-03T00:00:00.000Z';

function record(patch: Partial<SplitRecord>): SplitRecord {
  return {
    id: 'x-split-1', cluster: 'c', source: 's0', sourceMaster: 'h:1', shard: { id: 's2', master: 'h:9', slaves: [] }, slots: [[4, 6]],
    state: 'running', next: 'sync', reason: 'test', requestedBy: 'test', controller: null, createdAt, updatedAt: createdAt, sync: null, holdMs: null,
    epochBefore: null, epochAfter: null, trim: { source: { scanned: 0, removed: 0, done: false }, shard: { scanned: 0, removed: 0, done: false } }, trimRate: null, steps: [], error: null,
    ...patch,
  } as SplitRecord;
}

describe('split metrics', () => {
  it('counts a split that ends done: keys synced, the hold, keys trimmed, the outcome and its duration', async () => {
    let leading = true;
    const m = new ControllerMetrics(() => leading);
    m.initTaskSeries('c');
    const at = (s: number) => new Date(Date.parse(createdAt) + s * 1000);
    m.splitRunning.set('c', [{ labels: {}, value: 1 }]);
    countSplitStep(m, record({ next: 'sync' }), 'attach', at(1));
    countSplitStep(m, record({ next: 'hold', sync: { linkUp: true, offset: 10, sourceOffset: 10, lagBytes: 0, keys: 7000, fullSyncBytes: null, fullSyncTotalBytes: null, at: createdAt } }), 'sync', at(5));
    countSplitStep(m, record({ next: 'trim', holdMs: 80 }), 'commit', at(6));
    const trim = { source: { scanned: 7000, removed: 3500, done: true }, shard: { scanned: 7000, removed: 3400, done: true } };
    countSplitStep(m, record({ state: 'done', next: '-', holdMs: 80, trim }), 'trim', at(42));
    const text = await m.registry.metrics();
    expect(sample(text, 'cfgserver_split_synced_keys_total', { cluster: 'c' })).toBe(7000);
    expect(sample(text, 'cfgserver_split_hold_seconds_count', { cluster: 'c' })).toBe(1);
    expect(sample(text, 'cfgserver_split_hold_seconds_sum', { cluster: 'c' })).toBe(0.08);
    expect(sample(text, 'cfgserver_split_hold_seconds_bucket', { cluster: 'c', le: '0.05' })).toBe(0);
    expect(sample(text, 'cfgserver_split_hold_seconds_bucket', { cluster: 'c', le: '0.1' })).toBe(1);
    expect(sample(text, 'cfgserver_split_trimmed_keys_total', { cluster: 'c' })).toBe(6900);
    expect(sample(text, 'cfgserver_splits_total', { cluster: 'c', outcome: 'done' })).toBe(1);
    expect(sample(text, 'cfgserver_splits_total', { cluster: 'c', outcome: 'failed' })).toBe(0);
    expect(sample(text, 'cfgserver_splits_total', { cluster: 'c', outcome: 'cancelled' })).toBe(0);
    expect(sample(text, 'cfgserver_split_duration_seconds_sum', { cluster: 'c', outcome: 'done' })).toBe(42);
    expect(sample(text, 'cfgserver_split_running', { cluster: 'c' })).toBe(0);
    leading = false;
    expect(sample(await m.registry.metrics(), 'cfgserver_split_running', { cluster: 'c' })).toBeUndefined();
  });

  it('counts a failed split once, with no hold and no trim', async () => {
    const m = new ControllerMetrics(() => true);
    m.initTaskSeries('c');
    countSplitStep(m, record({ state: 'failed', next: '-', error: 'the proxies did not drain' }), 'abort', new Date(Date.parse(createdAt) + 3000));
    const text = await m.registry.metrics();
    expect(sample(text, 'cfgserver_splits_total', { cluster: 'c', outcome: 'failed' })).toBe(1);
    expect(sample(text, 'cfgserver_splits_total', { cluster: 'c', outcome: 'done' })).toBe(0);
    expect(sample(text, 'cfgserver_split_duration_seconds_count', { cluster: 'c', outcome: 'failed' })).toBe(1);
    expect(sample(text, 'cfgserver_split_hold_seconds_count', { cluster: 'c' })).toBeUndefined();
    expect(sample(text, 'cfgserver_split_trimmed_keys_total', { cluster: 'c' })).toBeUndefined();
  });
});
