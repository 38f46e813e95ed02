/**
 * How far a replica's full sync has gone, in bytes, as Redis reports it (parsed in src/redis/info.ts).
 *
 * Which counter moves depends on how the replica takes the RDB (measured on Redis 7.0.15,
 * docs/split.md "Bytes of the full sync"):
 * - loaded from the socket (`repl-diskless-load on-empty-db` on an empty instance, as a split sets
 *   it): `loading_loaded_bytes` of INFO persistence, updated every `loading-process-events-interval-bytes`
 *   (2 MiB by default); the `master_sync_*_bytes` of INFO replication stay 0;
 * - written to disk first: `master_sync_read_bytes` during the transfer, then `loading_loaded_bytes`
 *   while the file loads.
 * The total is known only when the RDB's size is: a file being loaded (`loading_total_bytes`), or a
 * transfer from a master that saved to disk first (`master_sync_total_bytes`). A diskless master
 * streams the RDB with an end mark instead of a length: no total then.
 */
export interface FullSyncProgress {
  /** `transfer`: the RDB is being written to the replica's disk; `load`: it is being loaded into memory. */
  phase: 'transfer' | 'load';
  /** Bytes of the RDB received (transfer) or loaded (load) so far. */
  bytes: number;
  /** The RDB's size when Redis knows it, else null. */
  totalBytes: number | null;
}
