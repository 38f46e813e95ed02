/**
 * An admin's pause, resume, cancel (and a migration's throttle) of a record the leader runs — a
 * migration or a split: written to the record (the leader reads it at its next step boundary or
 * batch) and said in history. One place for both kinds (docs/migration.md, docs/split.md).
 */
import type { LeaderRunRecord } from '../controller/record-run.js';
import { ConflictError, NotFoundError, RefusedError } from '../model/errors.js';
import { historyEntry } from '../model/history.js';
import { clusterName, parseInput } from '../model/schemas.js';
import type { HistoryStore } from '../store/history-store.js';
import type { RecordStore, StoredRecord } from '../store/record-store.js';

export class RecordControls<R extends LeaderRunRecord> {
  constructor(
    private readonly store: RecordStore<R>,
    private readonly history: HistoryStore,
  ) {}

  /** The unfinished record of a cluster, or the one given by id. */
  async pick(name: string, id?: string): Promise<StoredRecord<R>> {
    const cluster = parseInput(clusterName, name, 'cluster name');
    const noun = this.store.kind.noun;
    if (id) return this.store.get(cluster, id);
    const active = await this.store.active(cluster);
    if (!active) throw new NotFoundError(`cluster ${cluster} has no ${noun} under way`);
    return active;
  }

  /**
   * Applies an admin's change to the record (refused once it has ended) and says it in history as
   * `<noun>:<what>`; retried when the leader wrote progress meanwhile.
   */
  async change(name: string, id: string | undefined, by: string, what: string, change: (r: R) => R, detail?: string): Promise<R> {
    const noun = this.store.kind.noun;
    for (let attempt = 1; ; attempt++) {
      const { record, revision } = await this.pick(name, id);
      let changed: R;
      try {
        if (this.store.kind.finished(record)) throw new RefusedError(`${noun} ${record.id} has already ended: ${record.state}`);
        changed = { ...change(record), updatedAt: new Date().toISOString() };
      } catch (err) {
        // A refusal is an answer to an admin too: said in history with its reason; nothing changed.
        if (err instanceof RefusedError) {
          await this.history.append(historyEntry({ cluster: record.cluster, controller: 'admin', action: `${noun}:${what}`, reason: `${what} of ${noun} ${record.id} asked by ${by} refused: ${err.message}`, outcome: 'refused' }));
        }
        throw err;
      }
      try {
        await this.store.update(changed, revision);
      } catch (err) {
        if (err instanceof ConflictError && attempt < 5) continue;
        throw err;
      }
      const reason = `${what}${detail ? ` (${detail})` : ''} of ${noun} ${changed.id} asked by ${by} at step ${changed.next}`;
      await this.history.append(historyEntry({ cluster: changed.cluster, controller: 'admin', action: `${noun}:${what}`, reason, outcome: 'info' }));
      return changed;
    }
  }

  /** A cancel before any leader began the record: it ends here, nothing having changed. */
  static cancelledUnbegun<R extends LeaderRunRecord>(r: R, by: string): R {
    const at = new Date().toISOString();
    return { ...r, state: 'cancelled', next: '-', error: `cancelled by ${by} before a leader began it`, cancel: { by, at }, steps: [{ step: 'cancel', at, durationMs: null, detail: `cancelled by ${by}` }] } as R;
  }
}
