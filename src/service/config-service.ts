/**
 * What an admin can ask about a cluster's desired Redis configuration (`cfgctl config`, the HTTP
 * API). Everything is checked before anything is written: the key must be a parameter of the
 * cluster's Redis (asked of a reachable instance), not one cfgserver keeps for itself, and its
 * value of the right kind. The leader applies what is stored (controller/config-applier.ts).
 */
import type { Etcd3 } from 'etcd3';
import { z } from 'zod';
import { NotFoundError, RedisError, RefusedError, ValidationError, errorMessage } from '../model/errors.js';
import { historyEntry } from '../model/history.js';
import {
  CONFIG_ROLES,
  MANAGED_KEYS,
  configKey,
  configKeys,
  filterConfig,
  redisConfigSchema,
  sameValue,
  scopeSettings,
  scopeText,
  valueProblem,
  withScopeSettings,
  type ConfigRole,
  type ConfigScope,
  type RedisConfig,
} from '../model/redis-config.js';
import { findShard, instancesOf } from '../model/route.js';
import { clusterName, parseInput, type Route } from '../model/schemas.js';
import { desiredPerInstance } from '../controller/config-plan.js';
import { configGet, instanceFacts, redisVersion } from '../redis/commands.js';
import { CHECKED_KEYS, adviseConfig, backlogCover, type BacklogCover, type CheckedInstance, type ConfigWarning, type ShardWriteRate } from '../model/config-advice.js';
import type { RedisPool } from '../redis/pool.js';
import { ClusterStore } from '../store/cluster-store.js';
import { ConfigStore, type StoredConfig } from '../store/config-store.js';
import { HistoryStore } from '../store/history-store.js';
import type { Keys } from '../store/keys.js';
import { withTimeout } from '../util/timeout.js';

/** How long one instance may take to answer a check or a diff read. */
const READ_TIMEOUT_MS = 2000;

export interface ConfigDiffKey {
  key: string;
  desired: string;
  actual: string | null;
  state: 'ok' | 'drift';
}

export interface ConfigDiffInstance {
  instance: string;
  shard: string;
  role: ConfigRole;
  state: 'ok' | 'drift' | 'unreachable';
  error: string | null;
  keys: ConfigDiffKey[];
}

/** An instance's Redis configuration as `cluster show` marks it. */
export interface InstanceConfigMark {
  /** `unmanaged`: the desired config names no key for it. */
  state: 'in-sync' | 'drifted' | 'unreachable' | 'unmanaged';
  /** The keys that differ, with the desired value and the instance's (null: not read). */
  drifted: { key: string; desired: string; actual: string | null }[];
  error: string | null;
}

export function configMark(d: ConfigDiffInstance): InstanceConfigMark {
  const drifted = d.state === 'drift' ? d.keys.filter((k) => k.state === 'drift').map(({ key, desired, actual }) => ({ key, desired, actual })) : [];
  const state = d.state === 'unreachable' ? 'unreachable' : d.keys.length === 0 ? 'unmanaged' : d.state === 'drift' ? 'drifted' : 'in-sync';
  return { state, drifted, error: d.error };
}

const DEFAULT_SAMPLE_MS = 1000;
const DEFAULT_BACKLOG_SECONDS = 60;
const sampleMsSchema = z.coerce.number().int().min(100).max(60_000);
const backlogSecondsSchema = z.coerce.number().int().min(1).max(86_400);

/** What `config check` found: each master's write rate, the window each backlog covers, the warnings. */
export interface ConfigCheckReport {
  cluster: string;
  sampleMs: number;
  minBacklogSeconds: number;
  rates: ShardWriteRate[];
  backlogs: BacklogCover[];
  warnings: ConfigWarning[];
}

export class ConfigService {
  readonly store: ConfigStore;
  private readonly clusters: ClusterStore;
  private readonly history: HistoryStore;

  constructor(
    etcd: Etcd3,
    keys: Keys,
    private readonly redis?: RedisPool,
  ) {
    this.store = new ConfigStore(etcd, keys);
    this.clusters = new ClusterStore(etcd, keys);
    this.history = new HistoryStore(etcd, keys);
  }

  /** The desired config, with only the keys matching `pattern` (a CONFIG GET-style glob) if given. */
  async get(name: string, pattern?: string): Promise<StoredConfig> {
    const route = await this.route(name);
    const stored = await this.store.read(route.cluster);
    return pattern ? { ...stored, config: filterConfig(stored.config, pattern) } : stored;
  }

  /** `config set NAME KEY VALUE ...` in one scope. */
  async set(name: string, pairs: Record<string, string>, scope: ConfigScope = {}, by = 'admin'): Promise<StoredConfig> {
    const route = await this.route(name);
    const where = this.checkScope(route, scope);
    if (Object.keys(pairs).length === 0) throw new ValidationError('say what to set: KEY VALUE [KEY VALUE ...]');
    const checked = this.checkSettings(pairs);
    await this.checkKnownToRedis(route, Object.keys(checked));
    const { config, revision } = await this.store.read(route.cluster);
    const next = withScopeSettings(config, where, { ...scopeSettings(config, where), ...checked });
    return this.write(route.cluster, next, revision, `set ${Object.entries(checked).map(([k, v]) => `${k}=${v}`).join(' ')} for ${scopeText(where)} by ${by}`);
  }

  /** `config set NAME -f FILE` and PUT: the whole desired config replaced by this one. */
  async replace(name: string, file: unknown, by = 'admin'): Promise<StoredConfig> {
    const route = await this.route(name);
    const config = parseInput(redisConfigSchema, file ?? {}, 'config file');
    for (const id of Object.keys(config.shards)) this.checkScope(route, { shard: id });
    for (const settings of [config.global, config.roles.master ?? {}, config.roles.slave ?? {}, ...Object.values(config.shards)]) this.checkSettings(settings);
    const keys = configKeys(config);
    if (keys.length) await this.checkKnownToRedis(route, keys);
    const { revision } = await this.store.read(route.cluster);
    return this.write(route.cluster, config, revision, `config replaced (${keys.length} keys) by ${by}`);
  }

  /**
   * `config unset NAME KEY ...`: cfgserver stops managing the keys in that scope. Redis keeps the
   * value it has; nothing is reverted.
   */
  async unset(name: string, keys: string[], scope: ConfigScope = {}, by = 'admin'): Promise<StoredConfig> {
    const route = await this.route(name);
    const where = this.checkScope(route, scope);
    if (keys.length === 0) throw new ValidationError('say which keys to unset');
    const { config, revision } = await this.store.read(route.cluster);
    const settings = scopeSettings(config, where);
    const missing = keys.filter((k) => !(k in settings));
    if (missing.length) throw new NotFoundError(`not set for ${scopeText(where)}: ${missing.join(', ')}`);
    for (const k of keys) delete settings[k];
    return this.write(route.cluster, withScopeSettings(config, where, settings), revision, `unset ${keys.join(' ')} for ${scopeText(where)} by ${by}`);
  }

  /** Desired against what every instance answers now to CONFIG GET. */
  async diff(name: string): Promise<ConfigDiffInstance[]> {
    return this.diffRoute(await this.route(name));
  }

  /**
   * The same comparison for a route already read (`cluster show` marks drift per instance with
   * it), each instance given at most `timeoutMs` to answer.
   */
  async diffRoute(route: Route, timeoutMs = READ_TIMEOUT_MS): Promise<ConfigDiffInstance[]> {
    const { config } = await this.store.read(route.cluster);
    const pool = this.pool();
    return Promise.all(
      desiredPerInstance(route, config).map(async (t): Promise<ConfigDiffInstance> => {
        const base = { instance: t.instance, shard: t.shard, role: t.role };
        const keys = Object.keys(t.settings);
        if (keys.length === 0) return { ...base, state: 'ok', error: null, keys: [] };
        try {
          const actual = await withTimeout(configGet(pool, t.instance, keys), timeoutMs, `CONFIG GET on ${t.instance}`);
          const rows = Object.entries(t.settings).map(([key, desired]): ConfigDiffKey => {
            const now = actual.get(key) ?? null;
            return { key, desired, actual: now, state: now !== null && sameValue(key, desired, now) ? 'ok' : 'drift' };
          });
          return { ...base, state: rows.some((r) => r.state === 'drift') ? 'drift' : 'ok', error: null, keys: rows };
        } catch (err) {
          return { ...base, state: 'unreachable', error: errorMessage(err), keys: Object.entries(t.settings).map(([key, desired]) => ({ key, desired, actual: null, state: 'drift' })) };
        }
      }),
    );
  }

  /**
   * `config check NAME`: recommended-settings warnings with their reasons (model/config-advice.ts).
   * Reads a few settings and INFO of every instance, then each master's offset again after
   * `sampleMs` for its write rate, which says how long a disconnection each backlog covers.
   */
  async check(name: string, options: { sampleMs?: unknown; minBacklogSeconds?: unknown } = {}): Promise<ConfigCheckReport> {
    const sampleMs = parseInput(sampleMsSchema, options.sampleMs ?? DEFAULT_SAMPLE_MS, 'sample time (ms)');
    const minBacklogSeconds = parseInput(backlogSecondsSchema, options.minBacklogSeconds ?? DEFAULT_BACKLOG_SECONDS, 'minimum backlog (s)');
    const { spec, route } = await this.clusters.get(parseInput(clusterName, name, 'cluster name'));
    const pool = this.pool();
    const targets = route.shards.flatMap((s) => [{ instance: s.master, shard: s.id, role: 'master' as const }, ...s.slaves.map((instance) => ({ instance, shard: s.id, role: 'slave' as const }))]);
    const started = Date.now();
    const readAt = new Map<string, number>();
    const instances = await Promise.all(
      targets.map(async (t): Promise<CheckedInstance> => {
        try {
          const [settings, facts] = await withTimeout(Promise.all([configGet(pool, t.instance, [...CHECKED_KEYS]), instanceFacts(pool, t.instance)]), READ_TIMEOUT_MS, `CONFIG GET and INFO on ${t.instance}`);
          readAt.set(t.instance, Date.now());
          return { ...t, settings, facts, error: null };
        } catch (err) {
          return { ...t, settings: null, facts: null, error: errorMessage(err) };
        }
      }),
    );
    await new Promise((r) => setTimeout(r, Math.max(0, sampleMs - (Date.now() - started))));
    const rates = await Promise.all(
      route.shards.map(async (s): Promise<ShardWriteRate> => {
        const first = instances.find((i) => i.instance === s.master)?.facts;
        const second = first ? await withTimeout(instanceFacts(pool, s.master), READ_TIMEOUT_MS, `INFO on ${s.master}`).catch(() => null) : null;
        const sampledMs = Math.max(1, Date.now() - (readAt.get(s.master) ?? started));
        // A restart in between (the offset went back) measures nothing.
        const bytesPerSecond = first && second && second.replOffset >= first.replOffset ? ((second.replOffset - first.replOffset) * 1000) / sampledMs : null;
        return { shard: s.id, master: s.master, bytesPerSecond, sampledMs };
      }),
    );
    const ctx = { autoFailover: spec.failover.auto, paused: spec.paused, downAfterMs: spec.probe.downAfterMs, minBacklogSeconds };
    return { cluster: route.cluster, sampleMs, minBacklogSeconds, rates, backlogs: backlogCover(instances, rates), warnings: adviseConfig(instances, rates, ctx) };
  }

  private async route(name: string): Promise<Route> {
    return (await this.clusters.get(parseInput(clusterName, name, 'cluster name'))).route;
  }

  private pool(): RedisPool {
    if (!this.redis) throw new ValidationError('this admin service has no Redis connection: config checks need one');
    return this.redis;
  }

  private checkScope(route: Route, scope: ConfigScope): ConfigScope {
    if (scope.role && scope.shard) throw new ValidationError('say --role or --shard, not both');
    if (scope.role && !CONFIG_ROLES.includes(scope.role)) throw new ValidationError(`a role is master or slave, not ${scope.role}`);
    if (scope.shard && !findShard(route, scope.shard)) throw new NotFoundError(`cluster ${route.cluster} has no shard ${scope.shard}`);
    return scope.shard ? { shard: scope.shard } : scope.role ? { role: scope.role } : {};
  }

  /** Names and values checked without asking Redis: malformed, managed, or a value of the wrong kind. */
  private checkSettings(pairs: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [rawKey, value] of Object.entries(pairs)) {
      const key = parseInput(configKey, rawKey.toLowerCase(), 'Redis parameter name');
      const why = MANAGED_KEYS[key];
      if (why) throw new RefusedError(`${key} is managed by cfgserver: ${why}`);
      if (typeof value !== 'string') throw new ValidationError(`the value of ${key} must be a string`);
      const problem = valueProblem(key, value);
      if (problem) throw new ValidationError(problem);
      out[key] = value;
    }
    return out;
  }

  /** Every key must be a parameter the cluster's Redis answers CONFIG GET for (asked of the first instance that answers). */
  private async checkKnownToRedis(route: Route, keys: string[]): Promise<void> {
    const pool = this.pool();
    const failures: string[] = [];
    for (const instance of instancesOf(route)) {
      try {
        const [known, version] = await withTimeout(Promise.all([configGet(pool, instance, keys), redisVersion(pool, instance)]), READ_TIMEOUT_MS, `CONFIG GET on ${instance}`);
        const unknown = keys.filter((k) => !known.has(k));
        if (unknown.length) throw new ValidationError(`unknown parameter for Redis ${version}: ${unknown.join(', ')} (CONFIG GET on ${instance} does not know it)`);
        return;
      } catch (err) {
        if (err instanceof ValidationError) throw err;
        failures.push(errorMessage(err));
      }
    }
    throw new RedisError(`no instance of cluster ${route.cluster} answered, so the keys cannot be checked against its Redis; nothing was written${failures.length ? ` (${failures[0]})` : ' (it has no instances)'}`);
  }

  private async write(cluster: string, config: RedisConfig, revision: string, reason: string): Promise<StoredConfig> {
    const newRevision = await this.store.write(cluster, config, revision);
    await this.history.append(historyEntry({ cluster, controller: 'admin', action: 'config:desired', reason, outcome: 'info' }));
    return { config, revision: newRevision };
  }
}
