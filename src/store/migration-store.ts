/**
 * Migrations under `clusters/<c>/migrations/<id>`, at most one unfinished per cluster: its id is
 * in `clusters/<c>/migration`, created with the record in one transaction and deleted with the
 * update that finishes it. Updates compare the revision read and, for the leader, its fence.
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { ConflictError, NotFoundError, NotLeaderError, RefusedError } from '../model/errors.js';
import { migrationFinished, migrationRecordSchema, type MigrationRecord } from '../model/migration.js';
import { fenced, holdsFence, type Fence } from './fence.js';
import { decodeAll, decodeKv, encode, etcdCall, type ProblemHandler } from './etcd.js';
import type { Keys } from './keys.js';

export interface StoredMigration {
  migration: MigrationRecord;
  revision: string;
}

/** Finished migrations kept per cluster. */
export const FINISHED_MIGRATIONS_KEPT = 100;

export function newMigrationId(at = new Date()): string {
  return `${String(at.getTime()).padStart(15, '0')}-migration-${randomBytes(2).toString('hex')}`;
}

export class MigrationStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
  ) {}

  /** Every migration of a cluster, oldest first; malformed ones reported and skipped. */
  async list(cluster: string, onProblem?: ProblemHandler): Promise<StoredMigration[]> {
    const res = await etcdCall(`read migrations of ${cluster}`, () => this.etcd.getAll().prefix(this.keys.migrations(cluster)).sort('Key', 'Ascend').exec());
    return decodeAll(res.kvs, migrationRecordSchema, onProblem, (migration, kv): StoredMigration => ({ migration, revision: kv.mod_revision }));
  }

  async get(cluster: string, id: string): Promise<StoredMigration> {
    const res = await etcdCall(`read migration ${id}`, () => this.etcd.get(this.keys.migration(cluster, id)).exec());
    const kv = res.kvs[0];
    if (!kv) throw new NotFoundError(`cluster ${cluster} has no migration ${id}`);
    return { migration: decodeKv(kv, migrationRecordSchema), revision: kv.mod_revision };
  }

  /** The unfinished migration of a cluster, if any. */
  async active(cluster: string): Promise<StoredMigration | null> {
    const res = await etcdCall(`read active migration of ${cluster}`, () => this.etcd.get(this.keys.activeMigration(cluster)).exec());
    const id = res.kvs[0]?.value.toString();
    return id ? this.get(cluster, id).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err))) : null;
  }

  /**
   * Creates a migration if the cluster has no unfinished one; with `specRevision`, only if the
   * cluster's spec is still the one the request was checked against (its proxy kind, say).
   */
  async create(migration: MigrationRecord, options: { specRevision?: string } = {}): Promise<StoredMigration> {
    const activeKey = this.keys.activeMigration(migration.cluster);
    let txn = this.etcd.if(activeKey, 'Create', '==', 0);
    if (options.specRevision !== undefined) txn = txn.and(this.keys.spec(migration.cluster), 'Mod', '==', options.specRevision);
    const res = await etcdCall('create migration', () =>
      txn
        .then(this.etcd.put(activeKey).value(migration.id), this.etcd.put(this.keys.migration(migration.cluster, migration.id)).value(encode(migration)))
        .else(this.etcd.get(activeKey))
        .commit(),
    );
    if (!res.succeeded) {
      const holder = res.responses[0]?.response_range.kvs[0]?.value.toString();
      if (holder === undefined) throw new ConflictError(`the settings of cluster ${migration.cluster} changed since they were read; read them again and retry`);
      throw new RefusedError(`cluster ${migration.cluster} already has an unfinished migration (${holder}); one at a time`);
    }
    await this.trim(migration.cluster);
    return { migration, revision: res.header.revision };
  }

  /** Writes a new version if still at `expectRevision` (and the fence holds); a finished one frees the cluster. */
  async update(migration: MigrationRecord, expectRevision: string, fence?: Fence): Promise<string> {
    const key = this.keys.migration(migration.cluster, migration.id);
    const activeKey = this.keys.activeMigration(migration.cluster);
    const txn = fenced(this.etcd.if(key, 'Mod', '==', expectRevision), fence);
    const put = this.etcd.put(key).value(encode(migration));
    const res = await etcdCall(`update migration ${migration.id}`, () => (migrationFinished(migration) ? txn.then(put, this.etcd.delete().key(activeKey)) : txn.then(put)).commit());
    if (res.succeeded) return res.header.revision;
    const now = await this.get(migration.cluster, migration.id).catch(() => null);
    if (now && encode(now.migration) === encode(migration)) return now.revision; // our retried write did land
    if (fence && !(await holdsFence(this.etcd, fence))) throw new NotLeaderError(`migration ${migration.id} not updated: this controller no longer holds the leader lock`);
    throw new ConflictError(`migration ${migration.id} changed since it was read`);
  }

  private async trim(cluster: string): Promise<void> {
    const finished = (await this.list(cluster)).filter((m) => migrationFinished(m.migration));
    for (const m of finished.slice(0, Math.max(0, finished.length - FINISHED_MIGRATIONS_KEPT))) {
      await etcdCall('trim migrations', () => this.etcd.delete().key(this.keys.migration(cluster, m.migration.id)).exec());
    }
  }
}
