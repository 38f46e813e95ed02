/**
 * The Redis commands the controller sends, each checked for the answer Redis documents.
 */
import { RedisError, errorMessage } from '../model/errors.js';
import type { ReplicationInfo } from '../model/replication-info.js';
import { parseFullSyncProgress, parseInstanceFacts, parseReplicationInfo } from './info.js';
import type { FullSyncProgress } from '../model/full-sync-progress.js';
import type { InstanceFacts } from '../model/instance-facts.js';
import { splitAddress } from '../model/address.js';
import type { RedisPool } from './pool.js';

/**
 * INFO replication, with the keyspace section: whether a master the route no longer names may be
 * wiped depends on whether it holds any key (Redis >= 7.0 takes several sections in one INFO).
 */
export async function replicationInfo(pool: RedisPool, address: string): Promise<ReplicationInfo> {
  return parseReplicationInfo(await pool.call(address, 'INFO', 'replication', 'keyspace'));
}

/** The bytes of a replica's full sync so far, or null when none is under way (one INFO of two sections). */
export async function fullSyncProgress(pool: RedisPool, address: string): Promise<FullSyncProgress | null> {
  return parseFullSyncProgress(await pool.call(address, 'INFO', 'replication', 'persistence'));
}

/**
 * Asks a replica to send its master an acknowledgement of its offset now (`REPLCONF GETACK *`).
 * After a diskless full sync a Redis 7.0 master starts the replica's command stream only on an
 * acknowledgement that arrives once it has reaped its fork child; the replica's first one, sent
 * the moment its load ends, often comes earlier and is spent, and the next comes from its
 * once-a-second timer: the stream then starts up to a second late (FIELD-NOTES; measured in
 * docs/split.md). Redis takes GETACK from any client and sends no reply to it, so it goes on a
 * connection of its own, followed by a PING whose answer (paired with the GETACK by the client
 * library, which pairs replies in order) says Redis read it.
 */
export async function askReplicaAck(pool: RedisPool, address: string): Promise<void> {
  await pool.prepare();
  const conn = pool.client(address).duplicate({ lazyConnect: true, connectionName: 'cfgserver-ack', retryStrategy: () => null });
  conn.on('error', () => undefined);
  try {
    await conn.connect();
    const read = conn.call('REPLCONF', 'GETACK', '*');
    conn.ping().catch(() => undefined);
    await read;
  } catch (err) {
    throw new RedisError(`${address}: REPLCONF GETACK failed: ${errorMessage(err)}`, { cause: err });
  } finally {
    conn.disconnect();
  }
}

/** Whether Redis refused a command because it is loading its data set (`-LOADING`): a retry after the load succeeds. */
export function isLoadingRefusal(err: unknown): boolean {
  return /\bLOADING\b/.test(errorMessage(err));
}

/** How hard an instance is working, and its memory and offset (one INFO of three sections). */
export async function instanceFacts(pool: RedisPool, address: string): Promise<InstanceFacts> {
  return parseInstanceFacts(await pool.call(address, 'INFO', 'persistence', 'memory', 'replication'));
}

/**
 * What became of the CONFIG REWRITE after a role change: null when the config file now says the
 * new role (or there is no config file to say anything), else why it could not be written.
 */
export type RewriteProblem = string | null;

/** Makes `address` a replica of `master`, in its config file too. */
export async function replicaOf(pool: RedisPool, address: string, master: string): Promise<RewriteProblem> {
  const { host, port } = splitAddress(master);
  expectOk(address, 'REPLICAOF', await pool.call(address, 'REPLICAOF', host, port));
  return rewriteConfig(pool, address);
}

/**
 * Makes `address` a master (it keeps its data), in its config file too. Its write fence is turned
 * off first: a slave that was once a fenced master still has `min-replicas-to-write 1`, and as a
 * new master without a synced slave it would refuse every write; the leader fences it again once
 * a slave is linked. Best effort like the rewrite: the promotion matters more, and is reported.
 */
export async function promote(pool: RedisPool, address: string): Promise<RewriteProblem> {
  const unfenced = await setWriteFence(pool, address, { minReplicas: 0 }).then(
    () => null,
    (err) => `could not turn the write fence off on ${address}: ${errorMessage(err)}`,
  );
  expectOk(address, 'REPLICAOF NO ONE', await pool.call(address, 'REPLICAOF', 'NO', 'ONE'));
  const rewrite = await rewriteConfig(pool, address);
  return unfenced && rewrite ? `${unfenced}; ${rewrite}` : (unfenced ?? rewrite);
}

/**
 * The write fence (docs/failover.md): `min-replicas-to-write` 1 with a lag bound (more while a split's
 * new master replicates from the master: it must not count as one of the shard's own slaves,
 * docs/split.md), or 0 (off; the lag is then left as it is, since Redis ignores it).
 */
export type WriteFence = { minReplicas: number; maxLagSeconds: number } | { minReplicas: 0 };

/** The fence settings in force on `address` (one CONFIG GET). */
export async function writeFenceInForce(pool: RedisPool, address: string): Promise<{ minReplicas: number; maxLagSeconds: number }> {
  const reply = await pool.call(address, 'CONFIG', 'GET', 'min-replicas-*');
  const values = new Map<string, string>();
  if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) values.set(String(reply[i]), String(reply[i + 1]));
  const minReplicas = Number(values.get('min-replicas-to-write'));
  const maxLagSeconds = Number(values.get('min-replicas-max-lag'));
  if (!Number.isInteger(minReplicas) || !Number.isInteger(maxLagSeconds)) throw new RedisError(`${address}: CONFIG GET min-replicas-* answered ${JSON.stringify(reply)}`);
  return { minReplicas, maxLagSeconds };
}

/**
 * Puts the fence in force unless it already is (so a leader that only needs to learn the lag in
 * force changes nothing). Returns whether it changed, and then what became of the CONFIG REWRITE.
 */
export async function setWriteFence(pool: RedisPool, address: string, wanted: WriteFence): Promise<{ changed: false } | { changed: true; rewrite: RewriteProblem }> {
  // These settings are the controller's, not the operator's: a later operator-managed Redis
  // configuration must leave min-replicas-to-write and min-replicas-max-lag to the leader.
  const now = await writeFenceInForce(pool, address);
  if (now.minReplicas === wanted.minReplicas && (!('maxLagSeconds' in wanted) || now.maxLagSeconds === wanted.maxLagSeconds)) return { changed: false };
  // One CONFIG SET (atomic since Redis 7.0): the lag is never briefly wrong while the fence is on.
  const args = 'maxLagSeconds' in wanted ? ['min-replicas-max-lag', wanted.maxLagSeconds, 'min-replicas-to-write', wanted.minReplicas] : ['min-replicas-to-write', 0];
  expectOk(address, 'CONFIG SET', await pool.call(address, 'CONFIG', 'SET', ...args));
  return { changed: true, rewrite: await rewriteConfig(pool, address) };
}

/**
 * CONFIG REWRITE, so that a restart keeps the role we gave: a promoted slave whose file still says
 * `replicaof` would come back as a slave of its old master. The role change itself has happened
 * whatever this answers, so a failure is returned for the caller to report, never thrown.
 */
export async function rewriteConfig(pool: Pick<RedisPool, 'call'>, address: string): Promise<RewriteProblem> {
  try {
    const reply = await pool.call(address, 'CONFIG', 'REWRITE');
    return typeof reply === 'string' && reply.startsWith('OK') ? null : `CONFIG REWRITE on ${address} answered ${JSON.stringify(reply)}`;
  } catch (err) {
    const message = errorMessage(err);
    // Started without a config file (tests, some containers): there is nothing a restart would re-read.
    if (/running without a config file/i.test(message)) return null;
    return `CONFIG REWRITE on ${address} failed: ${message}`;
  }
}

function expectOk(address: string, command: string, reply: unknown): void {
  if (typeof reply !== 'string' || !reply.startsWith('OK')) throw new RedisError(`${address}: ${command} answered ${JSON.stringify(reply)}`);
}

/** CLIENT PAUSE ms WRITE: write commands block (they do not fail) until unpaused or the time runs out. */
export async function pauseWrites(pool: RedisPool, address: string, ms: number): Promise<void> {
  expectOk(address, 'CLIENT PAUSE', await pool.call(address, 'CLIENT', 'PAUSE', Math.round(ms), 'WRITE'));
}

export async function unpause(pool: RedisPool, address: string): Promise<void> {
  expectOk(address, 'CLIENT UNPAUSE', await pool.call(address, 'CLIENT', 'UNPAUSE'));
}

/** CONFIG GET of several parameters in one round trip (Redis >= 7.0); absent keys are left out. */
export async function configGet(pool: Pick<RedisPool, 'call'>, address: string, keys: string[]): Promise<Map<string, string>> {
  const reply = await pool.call(address, 'CONFIG', 'GET', ...keys);
  if (!Array.isArray(reply)) throw new RedisError(`${address}: CONFIG GET answered ${JSON.stringify(reply)}`);
  const values = new Map<string, string>();
  for (let i = 0; i + 1 < reply.length; i += 2) values.set(String(reply[i]), String(reply[i + 1]));
  return values;
}

/** CONFIG SET of several parameters at once (atomic since Redis 7.0: all or none), then CONFIG REWRITE. */
export async function configSet(pool: RedisPool, address: string, values: [string, string][]): Promise<RewriteProblem> {
  expectOk(address, 'CONFIG SET', await pool.call(address, 'CONFIG', 'SET', ...values.flat()));
  return rewriteConfig(pool, address);
}

/** The Redis version an instance reports (INFO server), e.g. "7.0.15". */
export async function redisVersion(pool: RedisPool, address: string): Promise<string> {
  const info = String(await pool.call(address, 'INFO', 'server'));
  const version = /^redis_version:(\S+)/m.exec(info)?.[1];
  if (!version) throw new RedisError(`${address}: INFO server names no redis_version`);
  return version;
}
