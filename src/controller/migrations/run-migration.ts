/**
 * A slot migration as the leader runs it (docs/migration.md): a persisted state machine, like a
 * failover, that any new leader carries on from `next`:
 *
 *   survey -> prepare -> hold-barrier [-> big-keys] -> moving -> move -> commit -> commit-barrier -> done
 *
 * - survey: the big keys of the moving slots (big-keys.ts), which must not move by one MIGRATE.
 * - prepare: the route marks the slots `prepare` (new epoch): proxies hold their commands.
 * - hold-barrier: every live proxy has drained that epoch (nothing it sent before can still land
 *   on a source), then a short grace for a proxy cut off from etcd that follows the route through
 *   a controller. Not reached in time: the migration is undone (the route as before) and fails.
 * - big-keys: while the slots are held, each big key is copied in chunks and dropped at the source.
 * - moving: the route marks them `moving`: proxies move a key before running a command on it.
 * - move: the key mover passes over each source until a pass finds no key of the slots left.
 * - commit: the route gives the slots to their new shards (new epoch); then a barrier.
 *
 * Cancel before `commit` turns the migration round (`reverse`): the same steps move the keys that
 * went back where they came from, and the route ends as it was. Pause stops the mover between
 * batches; the slots stay `moving` and proxies keep moving keys on access.
 */
import { performance } from 'node:perf_hooks';
import { NotLeaderError, errorMessage } from '../../model/errors.js';
import {
  CANCELLABLE_STEPS,
  effectiveMoves,
  expandRanges,
  keysMayHaveMoved,
  migrationFinished,
  migrationSlots,
  movesText,
  routeCommitted,
  routeWithPhase,
  routeWithoutMigration,
  type MigrationRecord,
} from '../../model/migration.js';
import type { Route } from '../../model/schemas.js';
import type { BigKeyMover } from '../../migration/big-keys.js';
import type { KeyMover, MoveTarget } from '../../migration/mover.js';
import type { MigrationStore, StoredMigration } from '../../store/migration-store.js';
import { describeBarrier, waitForProxies } from '../barrier.js';
import { holdBarrier } from '../hold-barrier.js';
import type { ControllerMetrics } from '../metrics.js';
import { RecordRun, sleep, type RecordRunDeps } from '../record-run.js';
import { Pacer } from '../../util/pacer.js';

export interface MigrationDeps extends RecordRunDeps {
  migrations: MigrationStore;
  mover: KeyMover;
  bigKeys: BigKeyMover;
  /** Elements per chunk of a big key (for the history). */
  bigKeyChunk: number;
  /** Hold barriers that may time out before the migration is undone. */
  holdBarrierAttempts: number;
  /** How often progress is written while keys move. */
  progressEveryMs: number;
  /** Wait before retrying a pass that failed (a source or target down, a failover under way). */
  retryMs: number;
  /** While big keys are copied: how often the route is published again to keep the proxies' hold. */
  holdRenewMs: number;
  metrics: Pick<ControllerMetrics, 'migrationKeys' | 'migrationSlotsPending' | 'migrationSteps'>;
}

export const MIGRATION_DEFAULTS = { cutoffGraceMs: 1000, holdBarrierAttempts: 3, progressEveryMs: 1000, retryMs: 1000, holdRenewMs: 3000 };

export class MigrationRun extends RecordRun<MigrationRecord> {
  constructor(
    protected override readonly deps: MigrationDeps,
    stored: StoredMigration,
  ) {
    super(deps, deps.migrations, stored, ['pause', 'cancel', 'rate']);
  }

  get migration(): MigrationRecord {
    return this.record;
  }

  /** An admin's cancel that has not turned the migration round yet. */
  protected override get cancelAsked(): boolean {
    return this.migration.cancel !== null && !this.migration.reverse;
  }

  /** One step (the loop that runs them, and re-reads the record before each, is RecordRun's). */
  protected async step(): Promise<void> {
    switch (this.migration.next) {
      case 'survey':
        await this.survey();
        break;
      case 'big-keys':
        await this.moveBigKeys();
        break;
      case 'prepare':
        await this.publish('prepare', 'hold-barrier', (r) => routeWithPhase(r, { moves: effectiveMoves(this.migration) }, 'prepare'));
        break;
      case 'hold-barrier':
        await this.holdBarrier();
        break;
      case 'moving':
        await this.publish('moving', 'move', (r) => routeWithPhase(r, { moves: effectiveMoves(this.migration) }, 'moving'), { movingSince: new Date().toISOString() });
        break;
      case 'move':
        await this.moveKeys();
        break;
      case 'commit':
        await this.publish('commit', 'commit-barrier', (r) => (this.migration.reverse ? routeWithoutMigration(r) : routeCommitted(r, this.migration)));
        break;
      case 'commit-barrier': {
        const detail = await this.barrier();
        await this.persist('commit-barrier', this.migration.reverse ? 'cancelled' : 'done', '-', detail);
        break;
      }
      case 'undo':
        await this.publish('undo', 'undo-barrier', routeWithoutMigration);
        break;
      case 'undo-barrier':
        await this.persist('undo-barrier', 'failed', '-', `${await this.barrier()}; the route is as before the migration`, { error: this.migration.error });
        break;
      default:
        await this.persist(this.migration.next, 'failed', '-', `unknown step ${this.migration.next}`);
    }
  }

  /**
   * An admin's cancel: before any key moved, the route is simply put back; once keys may have
   * moved, the migration turns round. Pause and resume are read by the mover (between batches).
   */
  protected async takeAdminWishes(): Promise<boolean> {
    const m = this.migration;
    // Resumed while no leader watched it (or while the previous one was going): say so once.
    if (m.state === 'paused' && !m.pause) await this.persist('resume', 'running', m.next, 'resumed by an admin');
    if (!m.cancel || m.reverse || !CANCELLABLE_STEPS.has(m.next)) return true;
    const by = `cancelled by ${m.cancel.by}`;
    if (!keysMayHaveMoved(m)) {
      const route = await this.deps.clusters.get(m.cluster);
      if (route.route.migrating.length > 0) await this.writeRoute(routeWithoutMigration);
      await this.persist('cancel', 'cancelled', '-', `${by} before any key moved: the route is as before`);
      return false;
    }
    await this.persist('cancel', 'running', 'survey', `${by}: the keys that moved go back where they came from, then the route is as before`, { reverse: true, pause: false, bigKeys: [] });
    return true;
  }

  /** Writes the route change of a step (unless the route already has it) and records the step. */
  private async publish(step: string, next: string, change: (route: Route) => Route, patch: Partial<MigrationRecord> = {}): Promise<void> {
    const { before, after } = await this.writeRoute(change);
    await this.persist(step, 'running', next, `route epoch ${before} -> ${after}: ${this.describe(step)}`, { ...patch, epochBefore: this.migration.epochBefore ?? before, epochAfter: after });
  }


  private describe(step: string): string {
    const moves = movesText(effectiveMoves(this.migration));
    if (step === 'prepare') return `slots ${moves} prepare to move: proxies hold their commands`;
    if (step === 'moving') return `slots ${moves} are moving: proxies move a key before running a command on it`;
    if (step === 'undo') return 'no slot migrates';
    return this.migration.reverse ? `slots ${moves} are back with their owners` : `slots ${moves} now belong to their new shards`;
  }

  /** Strict: the mover must not start while a proxy may still write to a source under an older route. */
  private async holdBarrier(): Promise<void> {
    const held = await holdBarrier(this.deps, this.migration.cluster, this.deps.holdBarrierAttempts, this.label);
    if (held.drained) {
      await this.persist('hold-barrier', 'running', this.migration.bigKeys.length > 0 ? 'big-keys' : 'moving', held.why);
      return;
    }
    const failed = `proxies did not drain the hold epoch ${held.epoch} in ${held.attempts} tries (${held.why}): no key may move while one of them could still write to a source`;
    await this.persist('hold-barrier', 'running', 'undo', failed, { error: failed });
  }

  /** The big keys of the moving slots, on each source as the route names it now. */
  private async survey(): Promise<void> {
    const route = (await this.deps.clusters.get(this.migration.cluster)).route;
    const masters = new Map(route.shards.map((s) => [s.id, s.master]));
    const bigKeys: MigrationRecord['bigKeys'] = [];
    // Every source at once: they are separate Redis processes.
    const moves = effectiveMoves(this.migration);
    const found = await Promise.all(moves.map((move) => this.deps.bigKeys.find(masters.get(move.from)!, new Set(expandRanges(move.slots)), route.slotCount)));
    moves.forEach((move, i) => {
      for (const k of found[i]!) bigKeys.push({ key: k.key.toString('base64'), from: move.from, to: move.to, type: k.type, elements: k.elements });
    });
    const detail = bigKeys.length
      ? `${bigKeys.length} big keys will move in chunks while their slots are held: ${bigKeys.slice(0, 5).map((k) => `${Buffer.from(k.key, 'base64').toString()} (${k.type}, ${k.elements} ${k.type === 'string' ? 'bytes' : 'elements'})`).join(', ')}${bigKeys.length > 5 ? ', ...' : ''}`
      : 'no big key in the moving slots';
    await this.persist('survey', 'running', 'prepare', detail, { bigKeys });
  }

  /** Each big key in chunks, while the proxies hold the slots (so nobody writes it meanwhile). */
  private async moveBigKeys(): Promise<void> {
    const route = (await this.deps.clusters.get(this.migration.cluster)).route;
    const shards = new Map(route.shards.map((s) => [s.id, s]));
    let moved = 0;
    let elements = 0;
    const started = performance.now();
    // The copy may outlast the proxies' hold (10 s): the route is published again (same phase, a
    // new epoch) every few seconds meanwhile, which tells every proxy the hold is wanted still.
    let keepHolding: Promise<unknown> = Promise.resolve();
    const holdAlive = setInterval(() => {
      keepHolding = keepHolding.then(() => this.writeRoute((r) => ({ ...r, epoch: r.epoch + 1, updatedAt: new Date().toISOString() }))).catch((err) => {
        this.deps.log.warn(`migration ${this.migration.id}: could not renew the proxies' hold: ${errorMessage(err)}`, { cluster: this.migration.cluster });
      });
    }, this.deps.holdRenewMs);
    try {
      for (const [i, k] of this.migration.bigKeys.entries()) {
        this.deps.election.requireFence();
        const target = shards.get(k.to)!;
        const done = await this.deps.bigKeys.move(shards.get(k.from)!.master, target.master, Buffer.from(k.key, 'base64'), `__cfgserver:migrating:${this.migration.id}:${i}`, target.slaves.length > 0 ? 1 : 0);
        if (done) {
          moved++;
          elements += k.elements;
        }
      }
    } finally {
      clearInterval(holdAlive);
      await keepHolding;
    }
    const ms = Math.round(performance.now() - started);
    if (moved > 0) this.deps.metrics.migrationKeys.inc({ cluster: this.migration.cluster }, moved);
    await this.persist('big-keys', 'running', 'moving', `${moved} big keys (${elements} elements) copied in chunks of ${this.deps.bigKeyChunk} and dropped at their sources in ${ms} ms`, { keysMoved: this.migration.keysMoved + moved });
  }

  /** Non-strict: the route is published already; a timeout is recorded, naming who was behind. */
  private async barrier(): Promise<string> {
    const stored = await this.deps.clusters.get(this.migration.cluster);
    const outcome = await waitForProxies(this.deps.proxies, this.migration.cluster, stored.route.epoch, { timeoutMs: stored.spec.failover.barrierTimeoutMs, log: this.deps.log });
    return describeBarrier(outcome);
  }

  /** Passes over every source until one finds no key of the moving slots; pauses and cancels between batches. */
  private async moveKeys(): Promise<void> {
    let lastWrite = performance.now();
    let failures = 0;
    for (;;) {
      // Resumed while a pass was being cut short, or while it waited: said once, here.
      if (this.migration.state === 'paused' && !this.migration.pause && !this.cancelAsked) await this.persist('resume', 'running', 'move', 'resumed by an admin');
      const route = (await this.deps.clusters.get(this.migration.cluster)).route;
      let seen = 0;
      let moved = 0;
      let stopped = false;
      let sources: string[] = [];
      try {
        // The sources are separate Redis processes: pass over them at once.
        const passes = this.passesOver(route);
        sources = passes.map(([source]) => source);
        const sofar = passes.map(() => ({ moved: 0, seen: 0 }));
        let saving = false;
        // An admin's --rate holds for all sources together; it is read afresh for every batch.
        const pacer = new Pacer(() => this.migration.rate);
        const results = await Promise.all(
          passes.map(([source, targets], i) =>
            this.deps.mover.pass({ source, slotCount: route.slotCount, targets }, async (counts) => {
              this.deps.election.requireFence();
              const batch = counts.seen - sofar[i]!.seen;
              sofar[i] = { moved: counts.moved, seen: counts.seen };
              await pacer.took(batch);
              if (!saving && performance.now() - lastWrite >= this.deps.progressEveryMs) {
                saving = true;
                lastWrite = performance.now();
                await this.saveProgress(sum(sofar, 'moved'), sum(sofar, 'seen')).finally(() => (saving = false));
              }
              return !this.migration.pause && !this.cancelAsked;
            }),
          ),
        );
        for (const result of results) {
          seen += result.seen;
          moved += result.moved;
          if (result.unconfirmed > 0) this.deps.log.warn(`migration ${this.migration.id}: ${result.unconfirmed} batches moved without every slave of the target confirming them in time`, { cluster: this.migration.cluster });
          if (!result.complete) stopped = true;
        }
        failures = 0;
      } catch (err) {
        if (err instanceof NotLeaderError) throw err;
        this.roundBase = -1;
        failures++;
        // A source or target down (its failover will name a new master in the route), or etcd slow.
        if (failures === 1 || failures % 30 === 0) {
          await this.note('move', `keys could not be moved (${errorMessage(err)}); retrying every ${this.deps.retryMs} ms against the masters the route names`, 'failed');
        }
        await sleep(this.deps.retryMs);
        await this.refresh();
        continue;
      }
      await this.saveProgress(moved, seen, stopped ? 'stopped' : 'complete');
      await this.refresh(); // a pause or cancel asked during a pass too short to write progress
      if (this.cancelAsked) return; // the loop in run() turns the migration round
      if (this.migration.pause) {
        await this.waitWhilePaused('move', 'paused by an admin: the leader moves no key; proxies still move the keys clients touch', this.deps.retryMs);
        continue;
      }
      if (stopped) continue;
      // One whole pass leaves no key of the moving slots behind: every write to them goes to the
      // target meanwhile. A source whose master changed during it (a failover) may have brought
      // back keys the old one had dropped but not replicated: then another pass.
      const after = (await this.deps.clusters.get(this.migration.cluster)).route;
      const sameMasters = this.passesOver(after).every(([source], i) => source === sources[i]);
      if (seen === 0 || sameMasters) {
        const why = seen === 0 ? `a pass found no key of the moving slots left` : `a whole pass moved every key of the moving slots, with the same masters throughout`;
        await this.persist('move', 'running', 'commit', `${why} (${this.migration.passes} passes; ${this.migration.keysMoved} keys moved by the leader)`);
        return;
      }
    }
  }

  /** The sources to pass over, each with where each of its moving slots goes, as the route names them now. */
  private passesOver(route: Route): [string, Map<number, MoveTarget>][] {
    const masterOf = new Map(route.shards.map((s) => [s.id, s]));
    const bySource = new Map<string, Map<number, MoveTarget>>();
    for (const move of effectiveMoves(this.migration)) {
      const source = masterOf.get(move.from)!.master;
      const target = masterOf.get(move.to)!;
      const targets = bySource.get(source) ?? new Map<number, MoveTarget>();
      for (const slot of expandRanges(move.slots)) targets.set(slot, { address: target.master, replicas: target.slaves.length > 0 ? 1 : 0 });
      bySource.set(source, targets);
    }
    return [...bySource];
  }

  /** `keysMoved` when the current round of passes began (-1: no round under way). */
  private roundBase = -1;

  /**
   * The counts of the current round of passes so far; `end`: the round is over ('complete': it
   * went through every source, and counts as a pass; 'stopped': a pause or cancel cut it short).
   */
  private async saveProgress(moved: number, seen: number, end: 'complete' | 'stopped' | null = null): Promise<void> {
    if (this.roundBase < 0) this.roundBase = this.migration.keysMoved;
    const base = this.roundBase;
    const counted = base + moved - this.migration.keysMoved;
    if (counted > 0) this.deps.metrics.migrationKeys.inc({ cluster: this.migration.cluster }, counted);
    await this.update((m) => ({ ...m, keysMoved: base + moved, keysSeen: seen, passes: m.passes + (end === 'complete' ? 1 : 0) }));
    if (end) this.roundBase = -1;
  }

  /** Metrics of the steps and of the slots still to move. */
  protected override stepped(step: string, state: string): void {
    const { cluster } = this.migration;
    this.deps.metrics.migrationSteps.inc({ cluster, step, state });
    this.deps.metrics.migrationSlotsPending.set({ cluster }, migrationFinished(this.migration) ? 0 : migrationSlots(this.migration).length);
  }
}

function sum(counts: { moved: number; seen: number }[], field: 'moved' | 'seen'): number {
  return counts.reduce((n, c) => n + c[field], 0);
}
