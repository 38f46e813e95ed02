/**
 * The Redis commands the controller sends, each checked for the answer Redis documents.
 */
import { RedisError } from '../model/errors.js';
import { parseReplicationInfo, type ReplicationInfo } from './info.js';
import { splitAddress, type RedisPool } from './pool.js';

export async function replicationInfo(pool: RedisPool, address: string): Promise<ReplicationInfo> {
  return parseReplicationInfo(await pool.call(address, 'INFO', 'replication'));
}

/** Makes `address` a replica of `master`. */
export async function replicaOf(pool: RedisPool, address: string, master: string): Promise<void> {
  const { host, port } = splitAddress(master);
  expectOk(address, 'REPLICAOF', await pool.call(address, 'REPLICAOF', host, port));
}

/** Makes `address` a master (it keeps its data). */
export async function promote(pool: RedisPool, address: string): Promise<void> {
  expectOk(address, 'REPLICAOF NO ONE', await pool.call(address, 'REPLICAOF', 'NO', 'ONE'));
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
