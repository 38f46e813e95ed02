/**
 * The records a leader carries out step by step beside its duties — slot migrations and shard
 * splits — under `clusters/<c>/<kind>s/<id>`. A cluster runs one at a time: the unfinished one's
 * id is in `clusters/<c>/migration` (the "marker"), created with the record in one transaction and
 * deleted with the update that finishes it (both kinds change which shard owns slots and use the
 * route's hold). Updates compare the revision read and, for the leader, its fence.
 *
 * One class serves both kinds; what differs (key layout, schema, when a record is finished, what
 * else a creation must find unchanged) is given by a `RecordKind`.
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { z } from 'zod';
import { ConflictError, NotFoundError, NotLeaderError } from '../model/errors.js';
import { fenced, holdsFence, type Fence } from './fence.js';
import { decodeAll, decodeKv, encode, etcdCall, type ProblemHandler } from './etcd.js';
import type { Keys } from './keys.js';

/** What every leader-run record has, for the store to place and finish it. */
export interface RunRecord {
  id: string;
  cluster: string;
  state: string;
}

export interface StoredRecord<R> {
  record: R;
  revision: string;
}

export interface RecordKind<R extends RunRecord> {
  /** "migration", "split": in ids, errors and history. */
  noun: string;
  schema: z.ZodType<R>;
  /** The folder of a cluster's records of this kind, and one record's key. */
  folder(keys: Keys, cluster: string): string;
  key(keys: Keys, cluster: string, id: string): string;
  finished(record: Pick<R, 'state'>): boolean;
  /** Finished records kept per cluster (older ones are deleted when a new one is created). */
  kept: number;
}

/**
 * Something else a creation must find as it was when the request was checked: a key that must be
 * absent (`revision: null`) or still at a revision. `refusal` says why it failed, from the value
 * the key holds now.
 */
export interface CreateGuard {
  key: string;
  revision: string | null;
  refusal(held: string | undefined): Error;
}

/** A sortable, unique id naming its kind: "001733...-split-1f2e". */
export function newRecordId(noun: string, at = new Date()): string {
  return `${String(at.getTime()).padStart(15, '0')}-${noun}-${randomBytes(2).toString('hex')}`;
}

export class RecordStore<R extends RunRecord> {
  constructor(
    protected readonly etcd: Etcd3,
    protected readonly keys: Keys,
    readonly kind: RecordKind<R>,
  ) {}

  /** Every record of a cluster, oldest first; malformed ones reported and skipped. */
  async list(cluster: string, onProblem?: ProblemHandler): Promise<StoredRecord<R>[]> {
    const res = await etcdCall(`read ${this.kind.noun}s of ${cluster}`, () => this.etcd.getAll().prefix(this.kind.folder(this.keys, cluster)).sort('Key', 'Ascend').exec());
    return decodeAll(res.kvs, this.kind.schema, onProblem, (record, kv): StoredRecord<R> => ({ record, revision: kv.mod_revision }));
  }

  async get(cluster: string, id: string): Promise<StoredRecord<R>> {
    const res = await etcdCall(`read ${this.kind.noun} ${id}`, () => this.etcd.get(this.kind.key(this.keys, cluster, id)).exec());
    const kv = res.kvs[0];
    if (!kv) throw new NotFoundError(`cluster ${cluster} has no ${this.kind.noun} ${id}`);
    return { record: decodeKv(kv, this.kind.schema), revision: kv.mod_revision };
  }

  /** The unfinished record of this kind, if the cluster's marker names one. */
  async active(cluster: string): Promise<StoredRecord<R> | null> {
    const res = await etcdCall(`read active migration of ${cluster}`, () => this.etcd.get(this.keys.activeMigration(cluster)).exec());
    const id = res.kvs[0]?.value.toString();
    if (!id || !id.includes(`-${this.kind.noun}-`)) return null;
    return this.get(cluster, id).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err)));
  }

  /**
   * Creates a record if the cluster runs no migration or split (`busy` says why not, from the id
   * in the marker) and every guard still holds; then old finished records are dropped.
   */
  async create(record: R, busy: (holder: string) => Error, guards: CreateGuard[] = []): Promise<StoredRecord<R>> {
    const marker: CreateGuard = { key: this.keys.activeMigration(record.cluster), revision: null, refusal: (held) => busy(held ?? '?') };
    const all = [marker, ...guards];
    let txn = this.etcd.if(marker.key, 'Create', '==', 0);
    for (const g of guards) txn = g.revision === null ? txn.and(g.key, 'Create', '==', 0) : txn.and(g.key, 'Mod', '==', g.revision);
    const res = await etcdCall(`create ${this.kind.noun}`, () =>
      txn
        .then(this.etcd.put(marker.key).value(record.id), this.etcd.put(this.kind.key(this.keys, record.cluster, record.id)).value(encode(record)))
        .else(...all.map((g) => this.etcd.get(g.key)))
        .commit(),
    );
    if (!res.succeeded) {
      all.forEach((g, i) => {
        const kv = res.responses[i]?.response_range.kvs[0];
        const failed = g.revision === null ? kv !== undefined : kv?.mod_revision !== g.revision;
        if (failed) throw g.refusal(kv?.value.toString());
      });
      throw new ConflictError(`cluster ${record.cluster} changed while the ${this.kind.noun} was being created; retry`);
    }
    await this.dropOldFinished(record.cluster);
    return { record, revision: res.header.revision };
  }

  /**
   * Writes a new version if still at `expectRevision` (and the fence holds); a finished one frees
   * the cluster. `also`: more keys written in the same transaction (the step's history entry).
   */
  async update(record: R, expectRevision: string, fence?: Fence, also: { key: string; value: string }[] = []): Promise<string> {
    const key = this.kind.key(this.keys, record.cluster, record.id);
    const txn = fenced(this.etcd.if(key, 'Mod', '==', expectRevision), fence);
    const puts = [this.etcd.put(key).value(encode(record)), ...also.map((x) => this.etcd.put(x.key).value(x.value))];
    const ops = this.kind.finished(record) ? [...puts, this.etcd.delete().key(this.keys.activeMigration(record.cluster))] : puts;
    const res = await etcdCall(`update ${this.kind.noun} ${record.id}`, () => txn.then(...ops).commit());
    if (res.succeeded) return res.header.revision;
    const now = await this.get(record.cluster, record.id).catch(() => null);
    if (now && encode(now.record) === encode(record)) return now.revision; // our retried write did land
    if (fence && !(await holdsFence(this.etcd, fence))) throw new NotLeaderError(`${this.kind.noun} ${record.id} not updated: this controller no longer holds the leader lock`);
    throw new ConflictError(`${this.kind.noun} ${record.id} changed since it was read`);
  }

  private async dropOldFinished(cluster: string): Promise<void> {
    const finished = (await this.list(cluster)).filter((s) => this.kind.finished(s.record));
    for (const s of finished.slice(0, Math.max(0, finished.length - this.kind.kept))) {
      await etcdCall(`trim ${this.kind.noun}s`, () => this.etcd.delete().key(this.kind.key(this.keys, cluster, s.record.id)).exec());
    }
  }
}
