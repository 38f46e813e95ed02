/**
 * What `INFO persistence memory replication` says about the work an instance is doing, and about
 * what it would cost to make it work harder: the rolling of heavy settings (controller/config-roll.ts)
 * waits for these to settle, and `config check` (model/config-advice.ts) reads its figures here.
 */

export interface InstanceFacts {
  role: 'master' | 'slave';
  /** `loading:1` or `async_loading:1`: reading its data set (a restart, a full sync). */
  loading: boolean;
  /** `aof_rewrite_in_progress:1` or `aof_rewrite_scheduled:1`. */
  aofRewriting: boolean;
  /** `aof_enabled:1`. */
  aofEnabled: boolean;
  /** `aof_last_bgrewrite_status:err` while the AOF is on: the rewrite that turning it on began did not end well. */
  aofRewriteFailed: boolean;
  /** `rdb_bgsave_in_progress:1`. */
  bgsaving: boolean;
  /** `rdb_changes_since_last_save`. */
  unsavedChanges: number;
  /** `used_memory` less `mem_not_counted_for_evict`: what Redis compares with maxmemory. */
  usedMemory: number;
  maxmemory: number;
  maxmemoryPolicy: string;
  /** `total_system_memory` (0 when Redis cannot tell). */
  systemMemory: number;
  /** `master_repl_offset`: bytes of replication stream this instance has produced or received. */
  replOffset: number;
  /** A slave's `master_link_status:up`; null on a master. */
  linkUp: boolean | null;
  /** A slave's `master_sync_in_progress:1` (a full sync under way). */
  syncing: boolean;
}

/**
 * Why an instance is not ready for more heavy work, or null when it is. `settling` reasons end by
 * themselves (a rewrite finishes); the others need somebody (an instance that failed its rewrite,
 * a slave cut off from its master) and are worth a line in history.
 */
export function busyReason(f: InstanceFacts): { reason: string; settling: boolean } | null {
  if (f.loading) return { reason: 'is loading its data set', settling: true };
  if (f.aofRewriting) return { reason: 'is rewriting its AOF', settling: true };
  if (f.bgsaving) return { reason: 'is saving an RDB snapshot', settling: true };
  if (f.role === 'slave' && f.syncing) return { reason: 'is in a full sync with its master', settling: true };
  if (f.role === 'slave' && f.linkUp === false) return { reason: 'has its link to the master down', settling: false };
  if (f.aofRewriteFailed) return { reason: 'failed its last AOF rewrite (aof_last_bgrewrite_status:err, see its log)', settling: false };
  // Slaves ignore maxmemory by default (replica-ignore-maxmemory): only a master evicts.
  if (f.role === 'master' && evicting(f)) return { reason: `is evicting down to maxmemory (${f.usedMemory} bytes used, maxmemory ${f.maxmemory})`, settling: true };
  return null;
}

function evicting(f: InstanceFacts): boolean {
  return f.maxmemory > 0 && f.maxmemoryPolicy !== 'noeviction' && f.usedMemory > f.maxmemory;
}
