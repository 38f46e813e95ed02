/**
 * Shard splits under `clusters/<c>/splits/<id>` (docs/split.md). An unfinished split holds the
 * cluster's migration marker (`clusters/<c>/migration`, with its id) from its creation to the
 * update that finishes it: a split and a slot migration both change which shard owns slots and
 * both use the route's hold, so a cluster runs one of them at a time. Updates compare the revision
 * read and, for the leader, its fence.
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { ConflictError, NotFoundError, NotLeaderError, RefusedError } from '../model/errors.js';
import { splitFinished, splitRecordSchema, type SplitRecord } from '../model/split.js';
import { fenced, holdsFence, type Fence } from './fence.js';
import { decodeAll, decodeKv, encode, etcdCall, type ProblemHandler } from './etcd.js';
import type { Keys } from './keys.js';

export interface StoredSplit {
  split: SplitRecord;
  revision: string;
}

export function newSplitId(at = new Date()): string {
  return `${String(at.getTime()).padStart(15, '0')}-split-${randomBytes(2).toString('hex')}`;
}

export class SplitStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
  ) {}

  /** Every split of a cluster, oldest first; malformed ones reported and skipped. */
  async list(cluster: string, onProblem?: ProblemHandler): Promise<StoredSplit[]> {
    const res = await etcdCall(`read splits of ${cluster}`, () => this.etcd.getAll().prefix(this.keys.splits(cluster)).sort('Key', 'Ascend').exec());
    return decodeAll(res.kvs, splitRecordSchema, onProblem, (split, kv): StoredSplit => ({ split, revision: kv.mod_revision }));
  }

  async get(cluster: string, id: string): Promise<StoredSplit> {
    const res = await etcdCall(`read split ${id}`, () => this.etcd.get(this.keys.split(cluster, id)).exec());
    const kv = res.kvs[0];
    if (!kv) throw new NotFoundError(`cluster ${cluster} has no split ${id}`);
    return { split: decodeKv(kv, splitRecordSchema), revision: kv.mod_revision };
  }

  /** The unfinished split of a cluster, if the migration marker names one. */
  async active(cluster: string): Promise<StoredSplit | null> {
    const res = await etcdCall(`read active migration of ${cluster}`, () => this.etcd.get(this.keys.activeMigration(cluster)).exec());
    const id = res.kvs[0]?.value.toString();
    if (!id || !id.includes('-split-')) return null;
    return this.get(cluster, id).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err)));
  }

  /**
   * Creates a split if the cluster runs no migration or split, its route is still the one the
   * request was checked against, and the source shard has no unfinished task.
   */
  async create(split: SplitRecord, routeRevision: string): Promise<StoredSplit> {
    const activeKey = this.keys.activeMigration(split.cluster);
    const busyKey = this.keys.busy(split.cluster, split.source);
    const txn = this.etcd.if(activeKey, 'Create', '==', 0).and(busyKey, 'Create', '==', 0).and(this.keys.route(split.cluster), 'Mod', '==', routeRevision);
    const res = await etcdCall('create split', () =>
      txn
        .then(this.etcd.put(activeKey).value(split.id), this.etcd.put(this.keys.split(split.cluster, split.id)).value(encode(split)))
        .else(this.etcd.get(activeKey), this.etcd.get(busyKey))
        .commit(),
    );
    if (!res.succeeded) {
      const holder = res.responses[0]?.response_range.kvs[0]?.value.toString();
      const task = res.responses[1]?.response_range.kvs[0]?.value.toString();
      if (holder !== undefined) throw new RefusedError(`cluster ${split.cluster} already has an unfinished migration or split (${holder}); one at a time`);
      if (task !== undefined) throw new RefusedError(`shard ${split.source} has an unfinished task (${task}); wait for it to end (cfgctl tasks ${split.cluster})`);
      throw new ConflictError(`the route of cluster ${split.cluster} changed since it was read; retry`);
    }
    return { split, revision: res.header.revision };
  }

  /** Writes a new version if still at `expectRevision` (and the fence holds); a finished one frees the cluster. */
  async update(split: SplitRecord, expectRevision: string, fence?: Fence): Promise<string> {
    const key = this.keys.split(split.cluster, split.id);
    const txn = fenced(this.etcd.if(key, 'Mod', '==', expectRevision), fence);
    const put = this.etcd.put(key).value(encode(split));
    const res = await etcdCall(`update split ${split.id}`, () => (splitFinished(split) ? txn.then(put, this.etcd.delete().key(this.keys.activeMigration(split.cluster))) : txn.then(put)).commit());
    if (res.succeeded) return res.header.revision;
    const now = await this.get(split.cluster, split.id).catch(() => null);
    if (now && encode(now.split) === encode(split)) return now.revision;
    if (fence && !(await holdsFence(this.etcd, fence))) throw new NotLeaderError(`split ${split.id} not updated: this controller no longer holds the leader lock`);
    throw new ConflictError(`split ${split.id} changed since it was read`);
  }
}
