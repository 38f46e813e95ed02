/**
 * Migrations under `clusters/<c>/migrations/<id>` (docs/migration.md), at most one unfinished per
 * cluster (record-store.ts: the marker, fenced updates, the trim of old finished ones).
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError, RefusedError } from '../model/errors.js';
import { migrationFinished, migrationRecordSchema, type MigrationRecord } from '../model/migration.js';
import type { Keys } from './keys.js';
import { RecordStore, newRecordId, type CreateGuard, type RecordKind, type StoredRecord } from './record-store.js';

export type StoredMigration = StoredRecord<MigrationRecord>;

/** Finished migrations kept per cluster. */
export const FINISHED_MIGRATIONS_KEPT = 100;

export const MIGRATION_KIND: RecordKind<MigrationRecord> = {
  noun: 'migration',
  schema: migrationRecordSchema,
  folder: (keys, cluster) => keys.migrations(cluster),
  key: (keys, cluster, id) => keys.migration(cluster, id),
  finished: migrationFinished,
  kept: FINISHED_MIGRATIONS_KEPT,
};

export function newMigrationId(at = new Date()): string {
  return newRecordId(MIGRATION_KIND.noun, at);
}

export class MigrationStore extends RecordStore<MigrationRecord> {
  constructor(etcd: Etcd3, keys: Keys) {
    super(etcd, keys, MIGRATION_KIND);
  }

  /**
   * Creates a migration if the cluster has no unfinished one; with `specRevision`, only if the
   * cluster's spec is still the one the request was checked against (its proxy kind, say).
   */
  async start(migration: MigrationRecord, options: { specRevision?: string } = {}): Promise<StoredMigration> {
    const guards: CreateGuard[] = [];
    if (options.specRevision !== undefined) {
      guards.push({ key: this.keys.spec(migration.cluster), revision: options.specRevision, refusal: () => new ConflictError(`the settings of cluster ${migration.cluster} changed since they were read; read them again and retry`) });
    }
    return this.create(migration, (holder) => new RefusedError(`cluster ${migration.cluster} already has an unfinished migration (${holder}); one at a time`), guards);
  }
}
