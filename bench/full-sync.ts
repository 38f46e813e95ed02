/**
 * One full sync timed the way a split's sync step waits for it (split-run.ts): from `REPLICAOF`
 * until the replica's link is up, and until it has applied a PUBLISH sent after that (the stream
 * flows). Shared by bench/split-sync (the sync alone, per setting) and bench/split (the floor under
 * a split's time, in the same run as the split and the migration it is compared with).
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { ACK_ASK_MS } from '../src/controller/splits/split-run.js';
import { askReplicaAck } from '../src/redis/commands.js';
import type { RedisPool } from '../src/redis/pool.js';

export function infoField(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

export interface FullSyncTimes {
  /** Milliseconds from REPLICAOF until the link is up (the RDB made, sent and loaded). */
  linkUp: number;
  /** Milliseconds from REPLICAOF until the stream flows. */
  streamed: number;
}

/**
 * `replica` (at `replicaAddress`) made a replica of `sourcePort` on 127.0.0.1, polled every 5 ms; with
 * `kick`, asked for its acknowledgement every ACK_ASK_MS while linked and not streaming, as a split does.
 */
export async function timeFullSync(o: { source: Redis; replica: Redis; sourcePort: number; replicaAddress: string; pool: RedisPool; kick: boolean }): Promise<FullSyncTimes> {
  const started = performance.now();
  await o.replica.replicaof('127.0.0.1', String(o.sourcePort));
  let linkUp = 0;
  let mark = -1;
  let kicked = 0;
  for (;;) {
    const info = await o.replica.info('replication');
    const now = performance.now() - started;
    if (!linkUp && infoField(info, 'master_link_status') === 'up') {
      linkUp = now;
      await o.source.publish('__bench', 'x');
      mark = Number(infoField(await o.source.info('replication'), 'master_repl_offset'));
    }
    if (linkUp && Number(infoField(info, 'slave_repl_offset')) >= mark) return { linkUp, streamed: now };
    if (o.kick && linkUp && now - kicked >= ACK_ASK_MS) {
      kicked = now;
      await askReplicaAck(o.pool, o.replicaAddress);
    }
    await new Promise((res) => setTimeout(res, 5));
  }
}
