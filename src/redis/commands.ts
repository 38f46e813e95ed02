/**
 * The Redis commands the controller sends, each checked for the answer Redis documents.
 */
import { RedisError, errorMessage } from '../model/errors.js';
import { parseReplicationInfo, type ReplicationInfo } from './info.js';
import { splitAddress, type RedisPool } from './pool.js';

/**
 * INFO replication, with the keyspace section: whether a master the route no longer names may be
 * wiped depends on whether it holds any key (Redis >= 7.0 takes several sections in one INFO).
 */
export async function replicationInfo(pool: RedisPool, address: string): Promise<ReplicationInfo> {
  return parseReplicationInfo(await pool.call(address, 'INFO', 'replication', 'keyspace'));
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

/** Makes `address` a master (it keeps its data), in its config file too. */
export async function promote(pool: RedisPool, address: string): Promise<RewriteProblem> {
  expectOk(address, 'REPLICAOF NO ONE', await pool.call(address, 'REPLICAOF', 'NO', 'ONE'));
  return rewriteConfig(pool, address);
}

/**
 * CONFIG REWRITE, so that a restart keeps the role we gave: a promoted slave whose file still says
 * `replicaof` would come back as a slave of its old master. The role change itself has happened
 * whatever this answers, so a failure is returned for the caller to report, never thrown.
 */
export async function rewriteConfig(pool: RedisPool, address: string): Promise<RewriteProblem> {
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
