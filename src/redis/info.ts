/**
 * Parsing of `INFO replication` (optionally with the `keyspace` section). A Redis that answers something else (or nonsense) gets a
 * RedisError, never a half-filled record.
 */
import { RedisError } from '../model/errors.js';
import type { FullSyncProgress } from '../model/full-sync-progress.js';
import type { InstanceFacts } from '../model/instance-facts.js';
import type { ReplicationInfo } from '../model/replication-info.js';

export function parseInfoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return fields;
}

const NO_REPL_ID = /^0+$/;

/** The fields that say which replication history an instance is on, and how much of it it has. */
function historyFields(fields: Map<string, string>): Pick<ReplicationInfo, 'replId' | 'replId2' | 'secondReplOffset' | 'masterReplOffset'> {
  const replId2 = fields.get('master_replid2');
  const second = fields.has('second_repl_offset') ? intField(fields, 'second_repl_offset') : -1;
  return {
    replId: fields.get('master_replid') ?? null,
    replId2: replId2 && !NO_REPL_ID.test(replId2) ? replId2 : null,
    secondReplOffset: second >= 0 ? second : null,
    masterReplOffset: fields.has('master_repl_offset') ? intField(fields, 'master_repl_offset') : null,
  };
}

/** Sums `dbN:keys=K,...` lines; null if the text has no keyspace section at all. */
function keyCount(text: string, fields: Map<string, string>): number | null {
  if (!/^# Keyspace\s*$/m.test(text)) return null;
  let keys = 0;
  for (const [name, value] of fields) {
    if (!/^db\d+$/.test(name)) continue;
    const m = /(?:^|,)keys=(\d+)(?:,|$)/.exec(value);
    if (!m) throw new RedisError(`INFO keyspace: ${name} has no key count (${value})`);
    keys += Number(m[1]);
  }
  return keys;
}

/**
 * `slaveN:ip=...,port=...,state=online,offset=...,lag=L` lines: the lags of the online ones. A line
 * without a readable lag counts as a slave that is not acknowledging (the fence then stays as it
 * is), never as a bad reply: that would make the master look unreachable.
 */
function onlineSlaveLags(fields: Map<string, string>): number[] {
  const lags: number[] = [];
  for (const [name, value] of fields) {
    if (!/^slave\d+$/.test(name)) continue;
    const parts = new Map(value.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const lag = parts.get('lag');
    if (parts.get('state') === 'online' && lag !== undefined && /^\d+$/.test(lag)) lags.push(Number(lag));
  }
  return lags;
}

function intField(fields: Map<string, string>, name: string): number {
  const raw = fields.get(name);
  if (raw === undefined || !/^-?\d+$/.test(raw)) throw new RedisError(`INFO replication: field ${name} is ${raw === undefined ? 'missing' : `not an integer (${raw})`}`);
  return Number(raw);
}

export function parseReplicationInfo(text: unknown): ReplicationInfo {
  if (typeof text !== 'string') throw new RedisError(`INFO replication: expected text, got ${typeof text}`);
  const fields = parseInfoFields(text);
  const role = fields.get('role');
  if (role === 'master') {
    return {
      role,
      masterAddress: null,
      linkUp: null,
      linkDownSinceSec: null,
      offset: intField(fields, 'master_repl_offset'),
      connectedSlaves: intField(fields, 'connected_slaves'),
      ...historyFields(fields),
      keys: keyCount(text, fields),
      priority: null,
      ...(fields.has('min_slaves_good_slaves') ? { goodSlaves: intField(fields, 'min_slaves_good_slaves') } : {}),
      onlineSlaveLagsSec: onlineSlaveLags(fields),
    };
  }
  if (role === 'slave') {
    const host = fields.get('master_host');
    const port = intField(fields, 'master_port');
    const link = fields.get('master_link_status');
    if (!host) throw new RedisError('INFO replication: a slave without master_host');
    if (link !== 'up' && link !== 'down') throw new RedisError(`INFO replication: master_link_status is ${link ?? 'missing'}`);
    return {
      role,
      masterAddress: `${host.toLowerCase()}:${port}`,
      linkUp: link === 'up',
      linkDownSinceSec: link === 'down' ? intField(fields, 'master_link_down_since_seconds') : null,
      offset: fields.has('slave_repl_offset') ? intField(fields, 'slave_repl_offset') : intField(fields, 'master_repl_offset'),
      connectedSlaves: fields.has('connected_slaves') ? intField(fields, 'connected_slaves') : 0,
      ...historyFields(fields),
      keys: keyCount(text, fields),
      priority: fields.has('slave_priority') ? intField(fields, 'slave_priority') : null,
    };
  }
  throw new RedisError(`INFO replication: unknown role ${role ?? '(missing)'}`);
}

/** `INFO persistence memory replication` as the facts the config roll and `config check` use. */
export function parseInstanceFacts(text: unknown): InstanceFacts {
  if (typeof text !== 'string') throw new RedisError(`INFO persistence memory replication: expected text, got ${typeof text}`);
  const f = parseInfoFields(text);
  const role = f.get('role');
  if (role !== 'master' && role !== 'slave') throw new RedisError(`INFO replication: unknown role ${role ?? '(missing)'}`);
  const flag = (name: string) => f.get(name) === '1';
  const aofEnabled = flag('aof_enabled');
  return {
    role,
    loading: flag('loading') || flag('async_loading'),
    aofRewriting: flag('aof_rewrite_in_progress') || flag('aof_rewrite_scheduled'),
    aofEnabled,
    aofRewriteFailed: aofEnabled && f.get('aof_last_bgrewrite_status') === 'err',
    bgsaving: flag('rdb_bgsave_in_progress'),
    unsavedChanges: intField(f, 'rdb_changes_since_last_save'),
    usedMemory: intField(f, 'used_memory') - (f.has('mem_not_counted_for_evict') ? intField(f, 'mem_not_counted_for_evict') : 0),
    maxmemory: intField(f, 'maxmemory'),
    maxmemoryPolicy: f.get('maxmemory_policy') ?? 'noeviction',
    systemMemory: f.has('total_system_memory') ? intField(f, 'total_system_memory') : 0,
    replOffset: intField(f, 'master_repl_offset'),
    linkUp: role === 'slave' ? f.get('master_link_status') === 'up' : null,
    syncing: flag('master_sync_in_progress'),
  };
}

/**
 * `INFO replication persistence` of a replica as the progress of its full sync in bytes, or null
 * when none is under way (model/full-sync-progress.ts says which field moves when). Redis shows an
 * unknown total as 0 (or -1 in older versions): null here, never a total of 0.
 */
export function parseFullSyncProgress(text: unknown): FullSyncProgress | null {
  if (typeof text !== 'string') throw new RedisError(`INFO replication persistence: expected text, got ${typeof text}`);
  const f = parseInfoFields(text);
  const known = (total: number) => (total > 0 ? total : null);
  // A replica loading an RDB from the socket is also "in sync": the load is what moves then.
  if (f.get('loading') === '1' || f.get('async_loading') === '1') {
    return { phase: 'load', bytes: intField(f, 'loading_loaded_bytes'), totalBytes: known(intField(f, 'loading_total_bytes')) };
  }
  if (f.get('master_sync_in_progress') === '1') {
    return { phase: 'transfer', bytes: intField(f, 'master_sync_read_bytes'), totalBytes: known(intField(f, 'master_sync_total_bytes')) };
  }
  return null;
}
