/**
 * The desired Redis configuration of a cluster (`clusters/<c>/config`): settings for every
 * instance, optionally overridden per role and per shard. Values are strings, as Redis takes them.
 * Here too: which keys cfgserver keeps for itself, what kind of value a known key takes, and how
 * two spellings of one value compare (Redis answers `maxmemory 100mb` with bytes).
 */
import { z } from 'zod';
import { shardId } from './schemas.js';

/** A parameter name as CONFIG GET takes it, without glob characters (one key, never a pattern). */
export const configKey = z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'a Redis parameter is lowercase letters, digits and "-"');

const settings = z.record(configKey, z.string().max(1024));
export type ConfigSettings = z.infer<typeof settings>;

export const CONFIG_ROLES = ['master', 'slave'] as const;
export type ConfigRole = (typeof CONFIG_ROLES)[number];

export const redisConfigSchema = z.strictObject({
  global: settings.default({}),
  roles: z.strictObject({ master: settings.optional(), slave: settings.optional() }).default({}),
  shards: z.record(shardId, settings).default({}),
});
export type RedisConfig = z.infer<typeof redisConfigSchema>;

export const EMPTY_CONFIG: RedisConfig = { global: {}, roles: {}, shards: {} };

/** Where a setting applies: every instance, one role, or one shard. */
export type ConfigScope = { role?: ConfigRole; shard?: string };

/** Keys cfgserver sets itself, or that belong to how the host runs Redis: refused, with why. */
export const MANAGED_KEYS: Readonly<Record<string, string>> = {
  replicaof: 'the controller sets each instance\'s role from the route (REPLICAOF)',
  slaveof: 'the controller sets each instance\'s role from the route (REPLICAOF)',
  port: 'the address is the instance\'s identity in the route; change the route instead',
  bind: 'the address is the instance\'s identity in the route; change the route instead',
  dir: 'where the data lives belongs to the host, and a wrong dir loses the data on restart',
  dbfilename: 'where the data lives belongs to the host, and a wrong name loses the data on restart',
  'min-replicas-to-write': 'the leader keeps the write fence itself (docs/failover.md)',
  'min-replicas-max-lag': 'the leader keeps the write fence itself (docs/failover.md)',
  'min-slaves-to-write': 'the leader keeps the write fence itself (docs/failover.md)',
  'min-slaves-max-lag': 'the leader keeps the write fence itself (docs/failover.md)',
  requirepass: 'passwords belong to the security settings, never to stored configuration',
  masterauth: 'passwords belong to the security settings, never to stored configuration',
  masteruser: 'replication credentials belong to the security settings',
  aclfile: 'ACL users belong to the security settings',
  unixsocket: 'cfgserver reaches instances over TCP at their route address',
  daemonize: 'how the process runs belongs to its supervisor, and cannot change at run time',
  logfile: 'where the process logs belongs to its supervisor',
  pidfile: 'how the process runs belongs to its supervisor',
};

const MEMORY_KEYS = new Set(['maxmemory', 'repl-backlog-size', 'client-query-buffer-limit', 'proto-max-bulk-len', 'active-defrag-ignore-bytes', 'maxmemory-clients']);
const BOOLEAN_KEYS = new Set([
  'appendonly', 'activedefrag', 'lazyfree-lazy-eviction', 'lazyfree-lazy-expire', 'lazyfree-lazy-server-del', 'lazyfree-lazy-user-del', 'lazyfree-lazy-user-flush',
  'replica-lazy-flush', 'replica-read-only', 'replica-serve-stale-data', 'repl-diskless-sync', 'repl-disable-tcp-nodelay', 'stop-writes-on-bgsave-error',
  'rdbcompression', 'rdbchecksum', 'aof-use-rdb-preamble', 'no-appendfsync-on-rewrite', 'protected-mode', 'activerehashing', 'latency-tracking',
]);
const INTEGER_KEYS = new Set([
  'timeout', 'tcp-keepalive', 'hz', 'maxclients', 'maxmemory-samples', 'repl-timeout', 'repl-ping-replica-period', 'repl-backlog-ttl', 'replica-priority',
  'slowlog-log-slower-than', 'slowlog-max-len', 'latency-monitor-threshold', 'lua-time-limit', 'busy-reply-threshold', 'auto-aof-rewrite-percentage',
  'hash-max-listpack-entries', 'zset-max-listpack-entries', 'set-max-intset-entries', 'list-compress-depth', 'repl-diskless-sync-delay',
]);
const ENUM_KEYS: Readonly<Record<string, readonly string[]>> = {
  'maxmemory-policy': ['volatile-lru', 'allkeys-lru', 'volatile-lfu', 'allkeys-lfu', 'volatile-random', 'allkeys-random', 'volatile-ttl', 'noeviction'],
  appendfsync: ['always', 'everysec', 'no'],
  loglevel: ['debug', 'verbose', 'notice', 'warning'],
};

/** Redis's own units: k/m/g are powers of 1000, kb/mb/gb powers of 1024; case does not matter. */
const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1e3, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 };

/** Bytes of a memory size (`100mb`, `1gb`, `4096`), or null when it is not one. */
export function memoryBytes(value: string): number | null {
  const m = /^(\d+)([a-z]*)$/i.exec(value.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  return m && unit !== undefined ? Number(m[1]) * unit : null;
}

/** A byte count for people: `6291456` -> `6.0 MiB`. */
export function bytesText(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) (value /= 1024), unit++;
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Why `value` is no value for `key`, or null when it is one (or its kind is not known here). */
export function valueProblem(key: string, value: string): string | null {
  if (MEMORY_KEYS.has(key) && memoryBytes(value) === null) return `${key} takes a memory size like 4096, 100mb or 1gb, not "${value}"`;
  if (BOOLEAN_KEYS.has(key) && !/^(yes|no)$/i.test(value)) return `${key} takes yes or no, not "${value}"`;
  if (INTEGER_KEYS.has(key) && !/^-?\d+$/.test(value)) return `${key} takes an integer, not "${value}"`;
  const choices = ENUM_KEYS[key];
  if (choices && !choices.includes(value.toLowerCase())) return `${key} takes one of ${choices.join(', ')}, not "${value}"`;
  return null;
}

/**
 * Whether Redis's answer to CONFIG GET means the desired value: memory sizes compare in bytes,
 * `save` by its numbers, `client-output-buffer-limit` class by class (Redis answers every class,
 * in bytes, and calls `replica` `slave`); the leader also remembers other spellings it has seen.
 */
export function sameValue(key: string, desired: string, actual: string): boolean {
  if (MEMORY_KEYS.has(key)) return memoryBytes(desired) === memoryBytes(actual);
  if (key === 'client-output-buffer-limit') return sameOutputLimits(desired, actual);
  const words = (v: string) => v.trim().toLowerCase().split(/\s+/).join(' ');
  return words(desired) === words(actual);
}

/** `class hard soft seconds` groups, limits in bytes, or null when the value is not of that shape. */
function outputLimits(value: string): Map<string, string> | null {
  const words = value.trim().toLowerCase().split(/\s+/);
  if (words.length === 0 || words.length % 4 !== 0) return null;
  const out = new Map<string, string>();
  for (let i = 0; i < words.length; i += 4) {
    const [cls, hard, soft, seconds] = words.slice(i, i + 4) as [string, string, string, string];
    out.set(cls === 'replica' ? 'slave' : cls, `${memoryBytes(hard)} ${memoryBytes(soft)} ${seconds}`);
  }
  return out;
}

/** Every class the desired value names has those limits in Redis's answer (it names the others too). */
function sameOutputLimits(desired: string, actual: string): boolean {
  const want = outputLimits(desired);
  const have = outputLimits(actual);
  return want !== null && have !== null && [...want].every(([cls, limits]) => have.get(cls) === limits);
}

/** The settings one instance should have: global, then its role's, then its shard's (the most specific wins). */
export function effectiveConfig(config: RedisConfig, shard: string, role: ConfigRole): ConfigSettings {
  return { ...config.global, ...(config.roles[role] ?? {}), ...(config.shards[shard] ?? {}) };
}

/** The settings of one scope (a copy), and a config with them replaced. */
export function scopeSettings(config: RedisConfig, scope: ConfigScope): ConfigSettings {
  if (scope.shard) return { ...(config.shards[scope.shard] ?? {}) };
  if (scope.role) return { ...(config.roles[scope.role] ?? {}) };
  return { ...config.global };
}

export function withScopeSettings(config: RedisConfig, scope: ConfigScope, values: ConfigSettings): RedisConfig {
  const empty = Object.keys(values).length === 0;
  if (scope.shard) {
    const shards = { ...config.shards };
    if (empty) delete shards[scope.shard];
    else shards[scope.shard] = values;
    return { ...config, shards };
  }
  if (scope.role) {
    const roles = { ...config.roles };
    if (empty) delete roles[scope.role];
    else roles[scope.role] = values;
    return { ...config, roles };
  }
  return { ...config, global: values };
}

export function scopeText(scope: ConfigScope): string {
  return scope.shard ? `shard ${scope.shard}` : scope.role ? `role ${scope.role}` : 'every instance';
}

/** Every key the config names in any scope. */
export function configKeys(config: RedisConfig): string[] {
  const all = [config.global, config.roles.master ?? {}, config.roles.slave ?? {}, ...Object.values(config.shards)];
  return [...new Set(all.flatMap((s) => Object.keys(s)))].sort();
}

/** The config with only the keys matching a CONFIG GET-style glob (`*`, `?`). */
export function filterConfig(config: RedisConfig, pattern: string): RedisConfig {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  const keep = (s: ConfigSettings) => Object.fromEntries(Object.entries(s).filter(([k]) => re.test(k)));
  const roles: RedisConfig['roles'] = {};
  for (const role of CONFIG_ROLES) if (config.roles[role]) roles[role] = keep(config.roles[role]!);
  return { global: keep(config.global), roles, shards: Object.fromEntries(Object.entries(config.shards).map(([id, s]) => [id, keep(s)])) };
}
