/**
 * The nutcracker (twemproxy) configuration of a cluster, rendered from its route: the operator's
 * pool settings kept, the pool's servers replaced by each shard's master under the shard's id as
 * its name. Pure: no file or process here (docs/twemproxy.md).
 *
 * Why names: nutcracker's ketama hashes a server by its name when it has one, so a new master
 * under the same name (after a failover) keeps every key on its shard. Without names it hashes
 * `host:port`, and a failover would move about 1/N of the keys to other shards.
 */
import { parse as parseYaml } from 'yaml';
import { ValidationError, errorMessage } from '../model/errors.js';
import { splitAddress } from '../model/address.js';
import { countSlots } from '../model/route.js';
import type { Route } from '../model/schemas.js';

/** A pool's settings other than `servers`, as nutcracker reads them: scalars only. */
export type PoolSettings = Record<string, string | number | boolean>;

/** The operator's nutcracker file: pools in their order, each with its settings. */
export interface NutcrackerTemplate {
  pools: { name: string; settings: PoolSettings; servers: string[] }[];
}

export interface RenderOptions {
  /** The pool cfgserver owns; null: the template's only pool, or one named after the cluster. */
  pool: string | null;
  /** HOST:PORT clients connect to: overrides the template's `listen`. */
  listen: string | null;
  /**
   * The cluster's Redis password (its newest; docs/redis-auth.md), rendered as the pool's
   * `redis_auth`; null: none stored, the template's own setting stays.
   */
  password?: string | null;
}

/** Settings cfgserver sets itself whatever the template says, and why they cannot differ. */
const FORCED: PoolSettings = {
  // The shards are Redis instances; nutcracker's memcache protocol would not talk to them.
  redis: true,
  // Consistent hashing by server name: the key-to-shard map survives a change of master address.
  distribution: 'ketama',
};

/**
 * Settings refused with the reason: nutcracker would place keys on other shards than their own.
 * `auto_eject_hosts: true` takes a dead master off the ring, so its keys are written to other
 * shards until it is back, and those writes are then unreachable (or read stale).
 */
function refusals(settings: PoolSettings): string[] {
  const problems: string[] = [];
  if (settings['auto_eject_hosts'] === true) problems.push('auto_eject_hosts: true would send the keys of a shard whose master is down to other shards; cfgserver fails the master over instead (leave it false)');
  const distribution = settings['distribution'];
  if (distribution !== undefined && distribution !== 'ketama') problems.push(`distribution: ${String(distribution)} does not keep keys on their shard when servers change; cfgserver renders ketama`);
  if (settings['redis'] === false) problems.push('redis: false is the memcache protocol; a cfgserver cluster is Redis');
  return problems;
}

/**
 * Settings that work but that the operator should know about, for the agent's log at start.
 * nutcracker's default hash, fnv1a_64, spreads keys badly over a ketama ring (measured with two
 * shards: 200 keys tw:1..tw:200 all but one on one shard; random keys 1:3). The agent does not
 * change it: on a running deployment another hash would move keys to other shards.
 */
export function templateWarnings(template: NutcrackerTemplate, pool: string): string[] {
  const settings = template.pools.find((p) => p.name === pool)?.settings ?? {};
  const hash = settings['hash'] ?? 'fnv1a_64';
  return hash === 'fnv1a_64' ? [`pool ${pool} hashes keys with fnv1a_64 (nutcracker's default), which spreads keys unevenly over a ketama ring; a new deployment should say hash: murmur (changing it on a running one moves keys)`] : [];
}

/** Parses the operator's nutcracker YAML; anything nutcracker would not read is a ValidationError. */
export function parseTemplate(text: string, source: string): NutcrackerTemplate {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ValidationError(`${source} is not valid YAML: ${errorMessage(err).split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return { pools: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ValidationError(`${source}: a nutcracker file is a mapping of pool names to pool settings`);
  const pools: NutcrackerTemplate['pools'] = [];
  for (const [name, body] of Object.entries(doc as Record<string, unknown>)) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new ValidationError(`${source}: pool name ${JSON.stringify(name)} has characters nutcracker does not take`);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ValidationError(`${source}: pool ${name} is not a mapping of settings`);
    const settings: PoolSettings = {};
    let servers: string[] = [];
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      if (key === 'servers') {
        if (!Array.isArray(value) || value.some((s) => typeof s !== 'string')) throw new ValidationError(`${source}: pool ${name}: servers is a list of "host:port:weight [name]"`);
        servers = value as string[];
      } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        settings[key] = value;
      } else {
        throw new ValidationError(`${source}: pool ${name}: ${key} is not a plain value`);
      }
    }
    pools.push({ name, settings, servers });
  }
  return { pools };
}

/** A server of the pool: a shard's master, under the shard's id. */
export interface PoolMember {
  name: string;
  address: string;
}

/**
 * The pool's members: every shard that owns slots, in route order. A shard without slots is not in
 * the pool: adding one (cfgctl shard add) must not put it on the ring, where it would take keys
 * from the others. Slots otherwise mean nothing here; nutcracker places keys.
 */
export function poolMembers(route: Route): PoolMember[] {
  return route.shards.filter((s) => countSlots(s.slots) > 0).map((s) => ({ name: s.id, address: s.master }));
}

/** nutcracker's server line: `host:port:weight name`, weight 1 for every shard. */
function serverLine(m: PoolMember): string {
  return `${m.address}:1 ${m.name}`;
}

/** What changed between two pools, for the log and history: "s0 10.0.0.1:6379 -> 10.0.0.2:6379". */
export function poolChanges(before: readonly PoolMember[], after: readonly PoolMember[]): string {
  const old = new Map(before.map((m) => [m.name, m.address]));
  const now = new Set(after.map((m) => m.name));
  const parts: string[] = [];
  for (const m of after) {
    const was = old.get(m.name);
    if (was === undefined) parts.push(`${m.name} ${m.address} added`);
    else if (was !== m.address) parts.push(`${m.name} ${was} -> ${m.address}`);
  }
  for (const m of before) if (!now.has(m.name)) parts.push(`${m.name} removed`);
  return parts.length ? parts.join(', ') : 'pool unchanged';
}

/** Which template pool cfgserver owns, by the rules of RenderOptions.pool. */
export function poolName(template: NutcrackerTemplate, options: RenderOptions, cluster: string): string {
  if (options.pool !== null) return options.pool;
  if (template.pools.length === 1) return template.pools[0]!.name;
  if (template.pools.length === 0) return cluster;
  throw new ValidationError(`the nutcracker file has ${template.pools.length} pools (${template.pools.map((p) => p.name).join(', ')}): say which one is cluster ${cluster}'s with --pool`);
}

/**
 * The whole nutcracker file for `route`: every pool of the template as it was, except cfgserver's,
 * whose servers come from the route, with `listen` from the options when given and the forced
 * settings. Refuses (ValidationError) settings that would misplace keys, and a pool with no listen.
 */
export function renderNutcracker(template: NutcrackerTemplate, route: Route, options: RenderOptions): string {
  const name = poolName(template, options, route.cluster);
  const existing = template.pools.find((p) => p.name === name);
  const settings: PoolSettings = { ...(existing?.settings ?? {}) };
  const problems = refusals(settings);
  if (problems.length) throw new ValidationError(`pool ${name}: ${problems.join('; ')}`);
  if (options.listen !== null) {
    splitAddress(options.listen);
    settings['listen'] = options.listen;
  }
  if (settings['listen'] === undefined) throw new ValidationError(`pool ${name} has no listen address: give --listen HOST:PORT or put listen: in the template`);
  Object.assign(settings, FORCED);
  // nutcracker authenticates to every server with redis_auth (and asks its own clients for it).
  if (options.password) settings['redis_auth'] = options.password;
  const servers = poolMembers(route).map(serverLine);
  if (servers.length === 0) throw new ValidationError(`cluster ${route.cluster} has no shard that owns slots: nutcracker needs at least one server (cfgctl slots assign ${route.cluster} --even)`);
  const pools = existing ? template.pools.map((p) => (p.name === name ? { name, settings, servers } : p)) : [...template.pools, { name, settings, servers }];
  return pools.map((p) => poolText(p.name, p.settings, p.servers)).join('');
}

/** The address clients reach the rendered pool at (its `listen`). */
export function renderedListen(template: NutcrackerTemplate, options: RenderOptions, cluster: string): string {
  const name = poolName(template, options, cluster);
  const listen = options.listen ?? template.pools.find((p) => p.name === name)?.settings['listen'];
  if (typeof listen !== 'string') throw new ValidationError(`pool ${name} has no listen address: give --listen HOST:PORT or put listen: in the template`);
  return listen;
}

/**
 * One pool in the block style nutcracker's own examples use. Strings that are not plain words are
 * double-quoted (YAML's double quotes read JSON escapes), so `hash_tag: "{}"` or a password with
 * a `#` survives.
 */
function poolText(name: string, settings: PoolSettings, servers: string[]): string {
  const lines = [`${name}:`];
  for (const [key, value] of Object.entries(settings)) lines.push(`  ${key}: ${scalar(value)}`);
  lines.push('  servers:');
  for (const server of servers) lines.push(`   - ${scalar(server)}`);
  return lines.join('\n') + '\n';
}

function scalar(value: string | number | boolean): string {
  if (typeof value !== 'string') return String(value);
  return /^[A-Za-z0-9_./:@-][A-Za-z0-9_./:@ -]*$/.test(value) && !/ $/.test(value) && !/^(true|false|yes|no|on|off|null|~|[-+]?[0-9.]+)$/i.test(value) ? value : JSON.stringify(value);
}
