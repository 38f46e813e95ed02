/**
 * What a shard split adds to the controller's metrics (docs/metrics.md), as a pure function of
 * the record a step has just been stored in. Called once per stored step, by the leader that
 * stored it: a step is stored once, so a sum over the replicas counts it once, and a leader that
 * dies before storing a step counts nothing of it (the next one does, when it stores it).
 */
import { splitFinished, type SplitRecord } from '../../model/split.js';
import type { ControllerMetrics } from '../metrics.js';

export type SplitMetrics = Pick<ControllerMetrics, 'splits' | 'splitSeconds' | 'splitHoldSeconds' | 'splitSyncedKeys' | 'splitTrimmedKeys' | 'splitRunning'>;

export function countSplitStep(metrics: SplitMetrics, s: SplitRecord, step: string, at: Date): void {
  const cluster = s.cluster;
  if (step === 'sync' && s.sync?.keys != null) metrics.splitSyncedKeys.inc({ cluster }, s.sync.keys);
  if (step === 'commit' && s.holdMs !== null) metrics.splitHoldSeconds.observe({ cluster }, s.holdMs / 1000);
  // The record's counts include what an earlier leader unlinked before it died: they are counted
  // here, once, when the trim ends.
  if (step === 'trim' && splitFinished(s)) metrics.splitTrimmedKeys.inc({ cluster }, s.trim.source.removed + s.trim.shard.removed);
  if (!splitFinished(s)) return;
  const labels = { cluster, outcome: s.state };
  metrics.splits.inc(labels);
  const seconds = (at.getTime() - Date.parse(s.createdAt)) / 1000;
  if (Number.isFinite(seconds)) metrics.splitSeconds.observe(labels, Math.max(0, seconds));
  metrics.splitRunning.set(cluster, [{ labels: {}, value: 0 }]);
}
