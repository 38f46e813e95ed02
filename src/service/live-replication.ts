/**
 * Offsets read from Redis now, for `cluster show` (CLI and API). Health views in etcd are written
 * only when an instance's state changes, so the offset in a view is as old as that change: an
 * operator asking "how far behind is this slave" wants the number now. Each instance gets one
 * `INFO replication` with a bounded timeout; one that does not answer says so, and the view's
 * offset is then shown with its age.
 */
import { errorMessage } from '../model/errors.js';
import { replicationInfo } from '../redis/commands.js';
import type { RedisPool } from '../redis/pool.js';
import { withTimeout } from '../util/timeout.js';

export interface LiveReading {
  /** When it was read (ISO time). */
  at: string;
  role: 'master' | 'slave' | 'unknown';
  /** The replication offset now; null when the instance did not answer. */
  offset: number | null;
  error: string | null;
}

/** At most this many reads in flight at once: a big cluster must not open a thousand connections. */
const CONCURRENCY = 32;

export async function readLive(pool: RedisPool, addresses: string[], timeoutMs: number): Promise<Map<string, LiveReading>> {
  const out = new Map<string, LiveReading>();
  // Loading the credentials (cfgctl) is not the instances' time.
  await pool.prepare().catch(() => undefined);
  const queue = [...addresses];
  const worker = async () => {
    for (let address = queue.shift(); address !== undefined; address = queue.shift()) {
      try {
        const info = await withTimeout(replicationInfo(pool, address), timeoutMs, `INFO replication on ${address}`);
        out.set(address, { at: new Date().toISOString(), role: info.role, offset: info.offset, error: null });
      } catch (err) {
        out.set(address, { at: new Date().toISOString(), role: 'unknown', offset: null, error: errorMessage(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, addresses.length) }, worker));
  return out;
}
