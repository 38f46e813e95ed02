/**
 * The trim after a split (docs/split.md): one SCAN over a master, UNLINKing in batches the keys of
 * the slots its shard no longer owns, paced so that its clients keep their latency. UNLINK frees
 * values in a background thread; each batch is one command. Keys of owned slots are never touched.
 */
import type { RedisPool } from '../../redis/pool.js';
import { keySlot } from '../../model/slot.js';
import { scanPages } from '../../redis/named-calls.js';
import { Pacer } from '../../util/pacer.js';

export interface TrimSpec {
  master: string;
  slotCount: number;
  /** Whether a key's slot is foreign to this master's shard now. */
  foreign: (slot: number) => boolean;
  /** Keys per second at most (null: no limit). */
  rate: number | null;
  scanCount: number;
  batch: number;
}

export interface TrimCounts {
  scanned: number;
  removed: number;
}

/** One whole pass; `progress` is told after every batch and may stop the pass by answering false. */
export async function trimPass(pool: RedisPool, spec: TrimSpec, progress: (sofar: TrimCounts) => Promise<boolean>): Promise<TrimCounts & { complete: boolean }> {
  const client = pool.client(spec.master);
  const pacer = new Pacer(() => spec.rate);
  const counts: TrimCounts = { scanned: 0, removed: 0 };
  let pending: Buffer[] = [];
  const flush = async (): Promise<boolean> => {
    if (pending.length === 0) return true;
    const keys = pending;
    pending = [];
    counts.removed += await client.unlink(...keys);
    await pacer.took(keys.length);
    return progress(counts);
  };
  for await (const keys of scanPages(spec.master, client, spec.scanCount)) {
    counts.scanned += keys.length;
    for (const key of keys) {
      if (!spec.foreign(keySlot(key, spec.slotCount))) continue;
      pending.push(key);
      if (pending.length >= spec.batch && !(await flush())) return { ...counts, complete: false };
    }
  }
  if (!(await flush())) return { ...counts, complete: false };
  return { ...counts, complete: true };
}
