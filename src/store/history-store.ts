/**
 * The history of a cluster: what the controller decided and did, and why. Keys sort by time;
 * the list is bounded, the oldest entries are trimmed.
 */
import { Range, type Etcd3 } from 'etcd3';
import { NotLeaderError } from '../model/errors.js';
import { historyEntrySchema, type HistoryEntry } from '../model/schemas.js';
import { decodeAll, encode, etcdCall, type ProblemHandler } from './etcd.js';
import { whileFenced, type Fence } from './fence.js';
import type { Keys } from './keys.js';

export const DEFAULT_HISTORY_LIMIT = 1000;

let sequence = 0;

/** A key suffix that sorts by time and is unique across writers. */
function sortableId(at: Date, controller: string): string {
  sequence = (sequence + 1) % 1_000_000;
  return `${String(at.getTime()).padStart(15, '0')}-${String(sequence).padStart(6, '0')}-${controller}`;
}

export class HistoryStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    private readonly limit = DEFAULT_HISTORY_LIMIT,
  ) {}

  /**
   * An entry as a key and value, for a writer that stores it in the same transaction as the change
   * it records (a task's step and its history entry land together or not at all); `trim` after.
   */
  entryPut(entry: HistoryEntry): { key: string; value: string } {
    return { key: this.keys.historyEntry(entry.cluster, sortableId(new Date(entry.at), entry.controller)), value: encode(entry) };
  }

  /** Appends an entry; with a fence, only while the writer still holds the leader lock. */
  async append(entry: HistoryEntry, fence?: Fence): Promise<void> {
    const { key, value } = this.entryPut(entry);
    const put = this.etcd.put(key).value(value);
    if (fence) {
      const res = await etcdCall('append history', () => whileFenced(this.etcd, fence).then(put).commit());
      if (!res.succeeded) throw new NotLeaderError('history not written: this controller no longer holds the leader lock');
    } else {
      await etcdCall('append history', () => put.exec());
    }
    await this.trim(entry.cluster);
  }

  /** The newest `count` entries, oldest first. */
  async list(cluster: string, count = 100, onProblem?: ProblemHandler): Promise<HistoryEntry[]> {
    const res = await etcdCall(`read history of ${cluster}`, () =>
      this.etcd.getAll().prefix(this.keys.history(cluster)).sort('Key', 'Descend').limit(count).exec(),
    );
    return decodeAll(res.kvs, historyEntrySchema, onProblem).reverse();
  }

  /** Keeps the newest `limit` entries of a cluster. */
  async trim(cluster: string): Promise<void> {
    const prefix = this.keys.history(cluster);
    const count = await etcdCall('count history', () => this.etcd.getAll().prefix(prefix).count());
    if (count <= this.limit) return;
    const oldest = await etcdCall('read oldest history', () =>
      this.etcd.getAll().prefix(prefix).sort('Key', 'Ascend').limit(count - this.limit).keys(),
    );
    const last = oldest[oldest.length - 1];
    if (last) await etcdCall('trim history', () => this.etcd.delete().range(new Range(prefix, `${last}\0`)).exec());
  }
}
