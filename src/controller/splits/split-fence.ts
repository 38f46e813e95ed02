/**
 * The source's write fence while a split's new master streams from it (docs/split.md "The write
 * fence during a split").
 *
 * The fence (docs/failover.md) is `min-replicas-to-write 1` on a master with a live slave: cut off
 * from its slaves, it stops acknowledging writes, so a failover that promotes one of them loses
 * none. A split's new master, once its full sync is done and the stream flows, is one more replica
 * of the source and Redis counts it too: with the shard's own slaves cut off, the source would go on
 * acknowledging writes that only the new master holds, and a failover of the source (which
 * promotes an own slave and abandons the split) would lose them. So while the new master streams,
 * the source needs one more good replica: `min-replicas-to-write` n + 1. It is raised only once the
 * stream flows (a replica in its full sync is not counted: raised earlier, the source would refuse
 * every write for the length of the sync), and put back just before the new master's promotion and
 * in the undo (a few milliseconds in which the new master still counts, instead of writes refused).
 *
 * What was raised is written to the split record before the CONFIG SET, so that a new leader, the
 * cut-over or an abort puts back exactly that; the leader's own fence planning keeps the raised
 * value meanwhile (planWriteFence's `raised`). Never rewritten to the file: a source that restarts
 * comes back with its own setting. A fence that is off (no live own slave) is not raised: Redis
 * would then count the new master alone.
 */
import { errorMessage } from '../../model/errors.js';
import type { SplitRecord } from '../../model/split.js';
import { writeFenceInForce } from '../../redis/commands.js';
import type { RedisPool } from '../../redis/pool.js';

export type FenceRaise = NonNullable<SplitRecord['fenceRaise']>;
/** Writes the split record's `fenceRaise` (fenced). */
export type SaveFenceRaise = (raise: FenceRaise) => Promise<void>;

async function setMinReplicas(pool: Pick<RedisPool, 'call'>, address: string, value: number): Promise<void> {
  await pool.call(address, 'CONFIG', 'SET', 'min-replicas-to-write', value);
}

/**
 * Raises the source's fence by one (the new master streams from it), or makes sure a raise recorded
 * earlier (by this leader or one before it) is in force. Returns what is raised, for the sync step's
 * history entry, or null when nothing is (the fence is off, or was changed since by someone else).
 */
export async function raiseSourceFence(pool: RedisPool, split: SplitRecord, save: SaveFenceRaise): Promise<string | null> {
  let raise = split.fenceRaise;
  if (raise?.restored) return null;
  const now = await writeFenceInForce(pool, split.sourceMaster);
  if (!raise) {
    if (now.minReplicas === 0) return null;
    raise = { instance: split.sourceMaster, from: now.minReplicas, to: now.minReplicas + 1, restored: false };
    await save(raise);
  } else if (now.minReplicas !== raise.from && now.minReplicas !== raise.to) {
    return null;
  }
  if (now.minReplicas !== raise.to) await setMinReplicas(pool, raise.instance, raise.to);
  return `min-replicas-to-write ${raise.from} -> ${raise.to} on ${raise.instance}: ${split.shard.master} streams from it and must not count as one of its own slaves`;
}

/**
 * Puts the source's fence back where the split raised it (left alone when someone changed it since:
 * the leader turned it off, a restart). Returns what it did or could not do, or null when nothing was raised.
 */
export async function lowerSourceFence(pool: RedisPool, split: SplitRecord, save: SaveFenceRaise): Promise<string | null> {
  const raise = split.fenceRaise;
  if (!raise || raise.restored) return null;
  let text: string;
  try {
    const now = await writeFenceInForce(pool, raise.instance);
    if (now.minReplicas === raise.to) {
      await setMinReplicas(pool, raise.instance, raise.from);
      text = `min-replicas-to-write ${raise.to} -> ${raise.from} on ${raise.instance}`;
    } else {
      text = `min-replicas-to-write on ${raise.instance} is ${now.minReplicas} (changed since the split raised it to ${raise.to}): left as it is`;
    }
  } catch (err) {
    // Unreachable (a failover under way): it restarts with its own file, or becomes a slave, unfenced.
    text = `min-replicas-to-write on ${raise.instance} not put back (${errorMessage(err)}): it restarts with its own setting`;
  }
  await save({ ...raise, restored: true });
  return text;
}
