/**
 * Test-side Redis access: one client per address, disconnected after the file.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll } from 'vitest';
import { parseReplicationInfo } from '../../src/redis/info.js';
import type { ReplicationInfo } from '../../src/model/replication-info.js';

/** `options`: e.g. the username and password of a password-protected cluster. */
export function useRedisClients(options: RedisOptions = {}) {
  const clients = new Map<string, Redis>();
  afterAll(() => clients.forEach((c) => c.disconnect()));
  const at = (address: string): Redis => {
    let client = clients.get(address);
    if (!client) {
      const i = address.lastIndexOf(':');
      client = new Redis({ host: address.slice(0, i), port: Number(address.slice(i + 1)), maxRetriesPerRequest: 1, retryStrategy: () => 100, ...options });
      client.on('error', () => undefined);
      clients.set(address, client);
    }
    return client;
  };
  const replication = async (address: string): Promise<ReplicationInfo> => parseReplicationInfo(await at(address).call('INFO', 'replication'));
  return { at, replication };
}
