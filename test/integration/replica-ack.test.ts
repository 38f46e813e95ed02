/**
 * askReplicaAck (src/redis/commands.ts): `REPLCONF GETACK *` has no reply, so it goes on a
 * connection of its own; on real redis-servers, with and without a password. What it buys (a
 * stream that starts at once after a diskless full sync, not at the replica's next timed
 * acknowledgement) is measured by bench/replica-ack.ts, not asserted here.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RedisError } from '../../src/model/errors.js';
import { waitFor } from '../../src/playground/processes.js';
import { askReplicaAck, replicaOf, replicationInfo } from '../../src/redis/commands.js';
import { RedisPool } from '../../src/redis/pool.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const pools: RedisPool[] = [];
afterAll(async () => {
  for (const p of pools) await p.close();
});

function pool(password?: string): RedisPool {
  const p = new RedisPool({ timeoutMs: 2000, credentials: password ? () => ({ user: null, passwords: [password] }) : undefined });
  pools.push(p);
  return p;
}

describe('askReplicaAck', () => {
  it('asks a linked replica for an acknowledgement its master records, and leaves the pool answering in order', async () => {
    const master = await world.redis();
    const replica = await world.redis();
    const p = pool();
    await replicaOf(p, replica.address, master.address);
    await waitFor('the replica linked', async () => (await replicationInfo(p, replica.address)).linkUp === true, 10_000);
    await p.call(master.address, 'SET', 'k', 'v');
    const offset = (await replicationInfo(p, master.address)).offset;
    await waitFor('the replica at the write', async () => (await replicationInfo(p, replica.address)).offset >= offset, 10_000);
    await askReplicaAck(p, replica.address);
    // The master's view of the replica's acknowledged offset reaches the write at once.
    await waitFor('the master told the offset', async () => {
      const info = String(await p.call(master.address, 'INFO', 'replication'));
      return Number(/slave0:.*offset=(\d+)/.exec(info)?.[1] ?? -1) >= offset;
    }, 500);
    // The pooled connection never saw the reply-less command: its replies stay paired.
    expect(await p.call(replica.address, 'GET', 'k')).toBe('v');
    expect(await p.call(replica.address, 'PING')).toBe('PONG');
    // On a master it does nothing, and says nothing either.
    await askReplicaAck(p, master.address);
    expect(await p.call(master.address, 'GET', 'k')).toBe('v');
  });

  it('authenticates like the pool, and fails with a RedisError naming the instance', async () => {
    const secured = await world.redis(['--requirepass', 'ack-secret']);
    await askReplicaAck(pool('ack-secret'), secured.address);
    await expect(askReplicaAck(pool('wrong'), secured.address)).rejects.toThrow(RedisError);
    const gone = await world.redis();
    await gone.process.kill9();
    await expect(askReplicaAck(pool(), gone.address)).rejects.toThrow(new RegExp(`${gone.address}: REPLCONF GETACK failed`));
  });
});
