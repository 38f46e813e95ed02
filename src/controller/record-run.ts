/**
 * What a migration and a split share as the leader runs them (docs/migration.md, docs/split.md):
 * a persisted record whose `next` step any new leader carries on from. This file holds the part
 * that does not depend on the kind of record:
 *
 * - `RecordRun`: the step loop (the fence, the record read again for an admin's pause or cancel,
 *   the step); writes a change of the record fenced, keeping what an admin wrote meanwhile; records
 *   a step — the record and its history entry in one fenced transaction — and logs it; writes
 *   route changes; waits while paused.
 * - `RecordDriver`: starts the cluster's unfinished record on the leader, one run per cluster, in
 *   the background (or, for a split's bounded cut-over, inside the leader's cycle).
 *
 * The steps themselves are the subclasses' (migrations/run-migration.ts, splits/split-run.ts).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'winston';
import type { LeaderLock } from '../election/leader-election.js';
import { ConflictError, NotLeaderError, errorMessage } from '../model/errors.js';
import { historyEntry } from '../model/history.js';
import type { HistoryEntry, Route, TaskStep } from '../model/schemas.js';
import type { ClusterStore } from '../store/cluster-store.js';
import type { HistoryStore } from '../store/history-store.js';
import type { RecordStore, RunRecord, StoredRecord } from '../store/record-store.js';
import type { HoldBarrierDeps } from './hold-barrier.js';

/** What every record run needs: the stores, the lock, the log, and what the hold barrier asks. */
export interface RecordRunDeps extends HoldBarrierDeps {
  controllerId: string;
  clusters: ClusterStore;
  history: HistoryStore;
  election: LeaderLock;
  log: Logger;
}

/** The fields a record run reads and writes on any record (model/migration.ts `leaderRunFields`). */
export interface LeaderRunRecord extends RunRecord {
  next: string;
  reason: string;
  controller: string | null;
  updatedAt: string;
  steps: TaskStep[];
  pause: boolean;
  cancel: { by: string; at: string } | null;
  error: string | null;
}

export abstract class RecordRun<R extends LeaderRunRecord> {
  private stepStarted = performance.now();

  constructor(
    protected readonly deps: RecordRunDeps,
    private readonly store: RecordStore<R>,
    private stored: StoredRecord<R>,
    /** Fields an admin may change while the leader runs the record: kept when the leader's write meets theirs. */
    private readonly adminFields: readonly (keyof R)[],
  ) {}

  get record(): R {
    return this.stored.record;
  }

  /**
   * Runs the record's steps until it ends, or `due` says the rest is not this run's (a split's
   * cut-over runs inside the leader's cycle), or this replica stops leading (NotLeaderError). Before
   * each step: the fence, the record read again, an admin's pause or cancel taken.
   */
  async run(): Promise<void> {
    while (!this.store.kind.finished(this.record) && this.due()) {
      this.deps.election.requireFence();
      await this.refresh();
      if (!(await this.takeAdminWishes()) || this.store.kind.finished(this.record)) return;
      await this.step();
    }
  }

  /** Whether the next step is this run's to take. */
  protected due(): boolean {
    return true;
  }

  /** An admin's pause or cancel at a step boundary; false when the run must stop here. */
  protected abstract takeAdminWishes(): Promise<boolean>;

  /** The record's next step: its side effect, then `persist`. */
  protected abstract step(): Promise<void>;

  /** "split 0017...-split-ab12": for logs. */
  get label(): string {
    return `${this.store.kind.noun} ${this.record.id}`;
  }

  /** An admin's cancel that the run has still to act on. */
  protected get cancelAsked(): boolean {
    return this.record.cancel !== null;
  }

  /** Reads the record again: an admin's pause or cancel written since. */
  protected async refresh(): Promise<void> {
    this.stored = await this.store.get(this.record.cluster, this.record.id);
  }

  /** Writes a change of the record (fenced), keeping what an admin wrote meanwhile; `also` in the same transaction. */
  protected async update(change: (r: R) => R, also: { key: string; value: string }[] = []): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const next = { ...change(this.record), controller: this.deps.controllerId, updatedAt: new Date().toISOString() };
      try {
        const revision = await this.store.update(next, this.stored.revision, this.deps.election.requireFence(), also);
        this.stored = { record: next, revision };
        return;
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= 5) throw err;
        const fresh = await this.store.get(this.record.cluster, this.record.id);
        const kept = Object.fromEntries(this.adminFields.map((f) => [f, fresh.record[f]])) as Partial<R>;
        this.stored = { record: { ...this.record, ...kept }, revision: fresh.revision };
      }
    }
  }

  /**
   * Records a step: the record (state, next) and its history entry in one fenced transaction (a
   * leader killed right after a step cannot leave it unrecorded), then the log.
   */
  protected async persist(step: string, state: R['state'], next: string, detail: string, patch: Partial<R> = {}): Promise<void> {
    const durationMs = Math.round(performance.now() - this.stepStarted);
    const at = new Date().toISOString();
    const outcome = state === 'running' || state === 'paused' ? 'info' : (state as HistoryEntry['outcome']);
    const entry = this.deps.history.entryPut(this.entry(step, detail, outcome, durationMs));
    await this.update((r) => ({ ...r, ...patch, state, next, steps: [...r.steps, { step, at, durationMs, detail }] }), [entry]);
    this.stepped(step, state);
    this.logLine(step, detail, outcome, durationMs);
    await this.deps.history.trim(this.record.cluster).catch((err) => this.deps.log.warn('could not trim history', { error: errorMessage(err) }));
    this.stepStarted = performance.now();
  }

  /** Told after every step recorded (metrics). */
  protected stepped(_step: string, _state: string): void {}

  /** A history entry and a log line about the record that is no step (a retry worth saying, a late cancel). */
  protected async note(step: string, detail: string, outcome: HistoryEntry['outcome'], durationMs: number | null = null): Promise<void> {
    this.logLine(step, detail, outcome, durationMs);
    await this.deps.history.append(this.entry(step, detail, outcome, durationMs), this.deps.election.requireFence()).catch((err) => {
      if (err instanceof NotLeaderError) throw err;
      this.deps.log.warn('could not record history', { error: errorMessage(err) });
    });
  }

  private entry(step: string, detail: string, outcome: HistoryEntry['outcome'], durationMs: number | null): HistoryEntry {
    const r = this.record;
    const noun = this.store.kind.noun;
    return historyEntry({ cluster: r.cluster, controller: this.deps.controllerId, action: `${noun}:${step}`, reason: `${detail} [${noun} ${r.id}: ${r.reason}]`, outcome, durationMs });
  }

  private logLine(step: string, detail: string, outcome: HistoryEntry['outcome'], durationMs: number | null): void {
    const r = this.record;
    this.deps.log.log(outcome === 'failed' || outcome === 'cancelled' ? 'warn' : 'info', `${this.store.kind.noun} ${r.id}: ${step}: ${detail}`, { cluster: r.cluster, next: r.next, state: r.state, durationMs });
  }

  /** Writes a route change (unless the route has it already: `change` answers the same route). */
  protected async writeRoute(change: (route: Route) => Route): Promise<{ before: number; after: number }> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.deps.clusters.get(this.record.cluster);
      const next = change(current.route);
      if (next === current.route) return { before: current.route.epoch, after: current.route.epoch };
      try {
        await this.deps.clusters.writeRoute(next, current.routeRevision, this.deps.election.requireFence());
        return { before: current.route.epoch, after: next.epoch };
      } catch (err) {
        // A failover published a new master meanwhile: read again and apply the change to it.
        if (!(err instanceof ConflictError) || attempt >= 5) throw err;
      }
    }
  }

  /** An admin's pause or resume at a step boundary, said once each: the record shows `paused` while it lasts. */
  protected async notePause(next: string, paused: string): Promise<void> {
    if (this.record.pause && this.record.state !== 'paused' && !this.cancelAsked) await this.persist('pause', 'paused', next, paused);
    else if (!this.record.pause && this.record.state === 'paused') await this.persist('resume', 'running', next, 'resumed by an admin');
  }

  /** Paused at `next` until an admin resumes or cancels (read every `everyMs`). */
  protected async waitWhilePaused(next: string, paused: string, everyMs: number): Promise<void> {
    await this.notePause(next, paused);
    while (this.record.pause && !this.cancelAsked) {
      await sleep(everyMs);
      this.deps.election.requireFence();
      await this.refresh();
    }
    await this.notePause(next, paused);
  }
}

/** A run the driver can start: inside the leader's cycle (`inline`) or in the background. */
export interface DrivenRun {
  /** "split 0017...-split-ab12": for the log. */
  readonly label: string;
  readonly inline: boolean;
  run(): Promise<void>;
  /** What the cycle says after an inline run, or when a background run starts. */
  said(started: boolean): string;
  /** After a background run ended (it may have left the record at an inline step). */
  ended?(): void;
}

/**
 * Runs each cluster's unfinished record on the leader. One run per cluster per replica; a run ends
 * when the record does, or when this replica stops leading — a new leader carries on from `next`.
 */
export class RecordDriver {
  private readonly running = new Map<string, Promise<void>>();

  constructor(
    private readonly log: Logger,
    private readonly load: (cluster: string) => Promise<DrivenRun | null>,
  ) {}

  /** Carries the cluster's unfinished record on unless it runs here already; says what it did, or null. */
  async carryOn(cluster: string): Promise<string | null> {
    if (this.running.has(cluster)) return null;
    const run = await this.load(cluster);
    if (!run) return null;
    if (run.inline) {
      await run.run();
      return run.said(false);
    }
    const background = run
      .run()
      .catch((err) => {
        if (err instanceof NotLeaderError) return;
        // Retried from its recorded step at the next cycle.
        this.log.warn(`${run.label} stopped: ${errorMessage(err)}; carrying on at the next cycle`, { cluster });
      })
      .finally(() => {
        this.running.delete(cluster);
        run.ended?.();
      });
    this.running.set(cluster, background);
    return run.said(true);
  }

  /** Waits (at most `ms`) for the runs to end: they end at their next step once this replica no longer leads. */
  async settle(ms = 2000): Promise<void> {
    await Promise.race([Promise.allSettled([...this.running.values()]), new Promise((r) => setTimeout(r, ms).unref())]);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
