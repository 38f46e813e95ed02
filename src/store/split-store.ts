/**
 * Shard splits under `clusters/<c>/splits/<id>` (docs/split.md). An unfinished split holds the
 * cluster's migration marker like a migration does (record-store.ts): a cluster runs one
 * migration or split at a time.
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError, RefusedError } from '../model/errors.js';
import { splitFinished, splitRecordSchema, type SplitRecord } from '../model/split.js';
import type { Keys } from './keys.js';
import { RecordStore, newRecordId, type RecordKind, type StoredRecord } from './record-store.js';

export type StoredSplit = StoredRecord<SplitRecord>;

export const SPLIT_KIND: RecordKind<SplitRecord> = {
  noun: 'split',
  schema: splitRecordSchema,
  folder: (keys, cluster) => keys.splits(cluster),
  key: (keys, cluster, id) => keys.split(cluster, id),
  finished: splitFinished,
  kept: 100,
};

export function newSplitId(at = new Date()): string {
  return newRecordId(SPLIT_KIND.noun, at);
}

export class SplitStore extends RecordStore<SplitRecord> {
  constructor(etcd: Etcd3, keys: Keys) {
    super(etcd, keys, SPLIT_KIND);
  }

  /**
   * Creates a split if the cluster runs no migration or split, its route is still the one the
   * request was checked against, and the source shard has no unfinished task.
   */
  async start(split: SplitRecord, routeRevision: string): Promise<StoredSplit> {
    return this.create(split, (holder) => new RefusedError(`cluster ${split.cluster} already has an unfinished migration or split (${holder}); one at a time`), [
      { key: this.keys.busy(split.cluster, split.source), revision: null, refusal: (task) => new RefusedError(`shard ${split.source} has an unfinished task (${task}); wait for it to end (cfgctl tasks ${split.cluster})`) },
      { key: this.keys.route(split.cluster), revision: routeRevision, refusal: () => new ConflictError(`the route of cluster ${split.cluster} changed since it was read; retry`) },
    ]);
  }
}
