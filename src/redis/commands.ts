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
