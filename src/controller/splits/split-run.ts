/**
 * A shard split by replication as the leader runs it (docs/split.md): a persisted state machine,
 * like a migration, that any new leader carries on from `next`:
 *
 *   attach -> sync -> hold -> hold-barrier -> catchup -> commit -> trim -> done
 *
 * - attach: the new master follows the source's master (REPLICAOF: a full sync), its slaves follow it.
 * - sync: until its link is up and it is close behind (progress recorded: offsets, lag, keys).
 * - hold: the route names the new shard (no slot) and marks the moving slots `prepare`: every proxy
 *   holds their commands; writes to the other slots of the source go on.
 * - hold-barrier: every live proxy drained that epoch, so no write to a moving slot can reach the
 *   source any more.
 * - catchup: the new master reaches the source's offset read after the barrier (every write to the
 *   moving slots is before it), within `catchupMs`; then REPLICAOF NO ONE + CONFIG REWRITE.
 * - commit: the route gives the slots to the new shard (new epoch); proxies release the held commands there.
 * - trim: each master UNLINKs the keys of the slots its shard does not own (split-trim.ts).
 *
 * Anything that fails before `commit` aborts: the route as before (no new shard, nothing held),
 * the new instances detached (REPLICAOF NO ONE), the record failed with the reason. An admin's
 * cancel before `commit` does the same (the record `cancelled`); after it, it is refused. An
 * admin's pause stops the split at its next step boundary: during the sync the new master keeps
 * replicating but the cut-over waits; a cut-over under way ends first; the trim stops unlinking.
 *
 * The loop, the fenced record writes and the hold barrier are shared with the migration
 * (record-run.ts, hold-barrier.ts).
 */
import { performance } from 'node:perf_hooks';
import { NotLeaderError, RedisError, errorMessage } from '../../model/errors.js';
import { expandRanges } from '../../model/migration.js';
import {
  UNPAUSABLE_SPLIT_STEPS,
  routeFeedingSplit,
  routeHolding,
  routeSplit,
  routeTrimmed,
  routeWithoutSplit,
  splitCancelRefusal,
  splitFinished,
  splitText,
  type SplitRecord,
  type SplitSyncProgress,
} from '../../model/split.js';
import { askReplicaAck, fullSyncProgress, isLoadingRefusal, promote, replicaOf, replicationInfo } from '../../redis/commands.js';
import type { RedisPool } from '../../redis/pool.js';
import type { SplitStore, StoredSplit } from '../../store/split-store.js';
import { holdBarrier } from '../hold-barrier.js';
import { RecordDriver, RecordRun, sleep, type RecordRunDeps } from '../record-run.js';
import { trimPass, type TrimCounts } from './split-trim.js';
import { lowerSourceFence, raiseSourceFence, type FenceRaise } from './split-fence.js';
import { applySyncSettings, restoreSyncSettings, type SyncSettings } from './split-sync-settings.js';
import { countSplitStep, type SplitMetrics } from './split-metrics.js';

export interface SplitDeps extends RecordRunDeps {
  splits: SplitStore;
  pool: RedisPool;
  /** The sync is done when the new master is at most this many bytes behind the source. */
  syncLagBytes: number;
  /** How long the cut-over may wait for the new master to reach the source's offset. */
  catchupMs: number;
  /** How often the sync is polled, and progress written; how often a paused split reads its record. */
  pollMs: number;
  trimBatch: number;
  trimScanCount: number;
  /** Asks for the cluster's next leader cycle now rather than a probe interval later (the cut-over runs in it). */
  wake?: (cluster: string) => void;
  /** Where stored steps are counted (split-metrics.ts). */
  metrics?: SplitMetrics;
}

/** How often a new master linked but not yet streaming is asked for its acknowledgement (askReplicaAck). */
export const ACK_ASK_MS = 10;
const ACK_ASK_FOR_MS = 2000;

export const SPLIT_DEFAULTS = { cutoffGraceMs: 1000, syncLagBytes: 1024 * 1024, catchupMs: 1000, pollMs: 50, trimBatch: 200, trimScanCount: 1000 };

/** Steps the leader runs inside its cycle, so that no repair of that cycle sees the half-made shard. */
const INLINE_STEPS: ReadonlySet<string> = new Set(['hold', 'hold-barrier', 'catchup', 'commit']);

const PAUSED_SYNC = 'paused by an admin: the new master keeps replicating; no cut-over until resume';
/** What a pause at each background step boundary means. */
const PAUSED_AT: Record<string, string> = {
  attach: 'paused by an admin before the new instances are attached: nothing changes until resume',
  trim: 'paused by an admin: no key is unlinked until resume (proxies still show only owned keys)',
};

export class SplitRun extends RecordRun<SplitRecord> {
  /** Whether this run is the cut-over inside the leader's cycle, or the background part. */
  readonly inline: boolean;

  constructor(
    protected override readonly deps: SplitDeps,
    stored: StoredSplit,
  ) {
    super(deps, deps.splits, stored, ['pause', 'cancel']);
    this.inline = INLINE_STEPS.has(stored.record.next);
  }

  get split(): SplitRecord {
    return this.record;
  }

  /** Inline: until the cut-over is over; in the background: until it is due. */
  protected override due(): boolean {
    return INLINE_STEPS.has(this.split.next) === this.inline;
  }

  /** A step; one of the cut-over that fails before the commit aborts the split. */
  protected async step(): Promise<void> {
    try {
      await this.stepOnce();
    } catch (err) {
      if (err instanceof NotLeaderError || INLINE_STEPS.has(this.split.next) === false || this.split.next === 'commit') throw err;
      await this.undo('abort', 'failed', `${this.split.next}: ${errorMessage(err)}`);
    }
  }

  /**
   * An admin's cancel or pause, at a step boundary; false when the run must stop here (the split
   * ended, or it is paused inside the leader's cycle: the next cycle looks again).
   */
  protected async takeAdminWishes(): Promise<boolean> {
    const s = this.split;
    if (s.cancel) {
      const refusal = splitCancelRefusal(s);
      if (refusal === null) {
        await this.undo('cancel', 'cancelled', `cancelled by ${s.cancel.by}`);
        return false;
      }
      // Asked just before the commit went through: said, and forgotten.
      await this.update((x) => ({ ...x, cancel: null }));
      await this.note('cancel-refused', `the cancel asked by ${s.cancel.by} came too late: ${refusal}`, 'refused');
    }
    if (UNPAUSABLE_SPLIT_STEPS.has(s.next)) return true;
    if (s.next === 'hold' && s.pause) {
      // The new master keeps replicating meanwhile: on resume the sync is checked again first.
      await this.persist('pause', 'paused', 'sync', PAUSED_SYNC);
      return false;
    }
    // The sync takes its pause itself: it goes on replicating and reporting, and does not end.
    if (this.inline || s.next === 'sync') return true;
    if (!s.pause && s.state !== 'paused') return true;
    await this.waitWhilePaused(s.next, PAUSED_AT[s.next] ?? `paused by an admin at step ${s.next}`, this.deps.pollMs);
    // Resumed, or cancelled while paused: the cancel is taken (or refused) now.
    return this.cancelAsked ? this.takeAdminWishes() : true;
  }

  private async stepOnce(): Promise<void> {
    const s = this.split;
    switch (s.next) {
      case 'attach':
        return this.attach();
      case 'sync':
        return this.sync();
      case 'hold': {
        if (!(await this.sourceUnchanged())) return;
        const { before, after } = await this.writeRoute((r) => routeHolding(r, s));
        return this.persist('hold', 'running', 'hold-barrier', `route epoch ${before} -> ${after}: shard ${s.shard.id} joins the route without slots; proxies hold the commands of slots ${splitText(s)}`, { epochBefore: before });
      }
      case 'hold-barrier': {
        const held = await holdBarrier(this.deps, s.cluster, 1, this.label);
        if (!held.drained) return this.undo('abort', 'failed', `the proxies did not drain the hold epoch ${held.epoch} (${held.why})`);
        return this.persist('hold-barrier', 'running', 'catchup', `${held.why}: no write to the moving slots reaches ${s.sourceMaster} any more`);
      }
      case 'catchup':
        return this.catchup();
      case 'commit': {
        const { before, after } = await this.writeRoute((r) => (r.shards.find((x) => x.id === s.shard.id)?.slots.length ? r : routeSplit(r, s)));
        const holdAt = s.steps.find((x) => x.step === 'hold')?.at;
        const holdMs = holdAt ? Date.now() - Date.parse(holdAt) : null;
        return this.persist('commit', 'running', 'trim', `route epoch ${before} -> ${after}: shard ${s.shard.id} owns slots ${splitText(s)}; the moving slots' commands were held ${holdMs ?? '?'} ms`, { holdMs, epochAfter: after });
      }
      case 'trim':
        return this.trim();
      default:
        return this.persist(s.next, 'failed', '-', `unknown step ${s.next}`, { error: `unknown step ${s.next}` });
    }
  }

  private async attach(): Promise<void> {
    const s = this.split;
    if (!(await this.sourceUnchanged())) return;
    const info = await replicationInfo(this.deps.pool, s.shard.master);
    const tuned = await applySyncSettings(this.deps.pool, s, this.saveSyncSettings);
    const problems: string[] = [];
    if (!(info.role === 'slave' && info.masterAddress === s.sourceMaster)) {
      const rewrite = await replicaOf(this.deps.pool, s.shard.master, s.sourceMaster);
      if (rewrite) problems.push(rewrite);
    }
    for (const slave of s.shard.slaves) {
      const rewrite = await replicaOf(this.deps.pool, slave, s.shard.master);
      if (rewrite) problems.push(rewrite);
    }
    const slaves = s.shard.slaves.length ? `; ${s.shard.slaves.join(', ')} follow ${s.shard.master}` : '';
    await this.persist('attach', 'running', 'sync', `REPLICAOF ${s.sourceMaster} on ${s.shard.master} (a full sync)${tuned ? `; ${tuned}` : ''}${slaves}${problems.length ? ` (${problems.join('; ')})` : ''}`);
  }

  /** Polls the new master until its link is up and it is close behind; the progress is written meanwhile. */
  private async sync(): Promise<void> {
    const s = this.split;
    let lastWrite = 0;
    // A link up is not yet a stream: after a diskless full sync Redis 7.0 sends the replica nothing
    // until its first REPLCONF ACK, up to a second later (FIELD-NOTES). A PUBLISH (replicated, no
    // key written) marks an offset the new master must reach to prove the stream flows.
    let streamed: number | null = null;
    let lastRead = performance.now();
    let linkedAt = 0;
    let lastAckAsked = 0;
    let fenceText: string | null = null;
    let feedingText: string | null = null;
    for (;;) {
      this.deps.election.requireFence();
      if (performance.now() - lastRead >= 1000) {
        lastRead = performance.now();
        await this.refresh();
      }
      // A cancel is taken at the top of the run's loop; a pause is said now and the sync goes on.
      if (this.cancelAsked) return;
      await this.notePause('sync', PAUSED_SYNC);
      if (!(await this.sourceUnchanged())) return;
      const [mine, source] = await Promise.all([replicationInfo(this.deps.pool, s.shard.master), replicationInfo(this.deps.pool, s.sourceMaster)]);
      if (mine.role !== 'slave' || mine.masterAddress !== s.sourceMaster) return this.undo('abort', 'failed', `${s.shard.master} no longer replicates from ${s.sourceMaster} (someone changed it)`);
      const linkUp = mine.linkUp === true;
      const lagBytes = Math.max(0, source.offset - mine.offset);
      const sync: SplitSyncProgress = { linkUp, offset: mine.offset, sourceOffset: source.offset, lagBytes, keys: mine.keys, fullSyncBytes: null, fullSyncTotalBytes: null, at: new Date().toISOString() };
      // Linked, the new master may acknowledge the source's offsets any moment: WAIT on the source
      // must count one replica fewer from now on (docs/split.md "WAIT during a split").
      if (linkUp && feedingText === null) {
        const { before, after } = await this.writeRoute((r) => routeFeedingSplit(r, s));
        feedingText = before === after ? '' : `route epoch ${before} -> ${after}: ${s.source} feeds ${s.shard.master}, which proxies do not count for WAIT`;
      }
      if (linkUp && streamed === null) {
        await this.deps.pool.call(s.sourceMaster, 'PUBLISH', '__cfgserver:split', s.id);
        streamed = (await replicationInfo(this.deps.pool, s.sourceMaster)).offset;
        linkedAt = performance.now();
      }
      // Linked but the stream not flowing yet: the new master's acknowledgement is asked for now
      // rather than waited for (up to a second). Harmless when the stream already flows.
      // Asked for 2 s at most: past that the replica's own once-a-second acknowledgements have come.
      if (linkUp && streamed !== null && mine.offset < streamed && performance.now() - lastAckAsked >= ACK_ASK_MS && performance.now() - linkedAt < ACK_ASK_FOR_MS) {
        lastAckAsked = performance.now();
        // Only speed: without it the stream starts at the new master's own next acknowledgement.
        await askReplicaAck(this.deps.pool, s.shard.master).catch(() => undefined);
      }
      // The stream flows: from now on the new master counts for the source's fence, which must
      // count only the shard's own slaves (split-fence.ts). Once in force (said with the sync's
      // end) it is not read again; a fence that is off is looked at again next time round.
      if (linkUp && streamed !== null && mine.offset >= streamed && fenceText === null && !this.split.fenceRaise?.restored) {
        fenceText = await raiseSourceFence(this.deps.pool, this.split, this.saveFenceRaise);
      }
      if (linkUp && streamed !== null && mine.offset >= streamed && lagBytes <= this.deps.syncLagBytes && !this.split.pause) {
        const restored = await restoreSyncSettings(this.deps.pool, this.split, this.saveSyncSettings);
        // Retried from the sync at the next cycle: the source must not keep the split's settings.
        if (!restored.complete) throw new RedisError(restored.text);
        return this.persist('sync', 'running', 'hold', `${s.shard.master} is in sync: link up and streaming, offset ${mine.offset}, ${lagBytes} bytes behind ${s.sourceMaster}, ${mine.keys ?? '?'} keys${restored.text ? `; ${restored.text}` : ''}${fenceText ? `; ${fenceText}` : ''}${feedingText ? `; ${feedingText}` : ''}`, { sync });
      }
      if (performance.now() - lastWrite >= 1000) {
        lastWrite = performance.now();
        // Read only for the record (a second INFO): the link is down for the whole full sync. Only
        // progress: a reply it cannot read leaves the bytes unknown rather than fail the sync.
        const bytes = linkUp ? null : await fullSyncProgress(this.deps.pool, s.shard.master).catch(() => null);
        await this.update((x) => ({ ...x, sync: { ...sync, fullSyncBytes: bytes?.bytes ?? null, fullSyncTotalBytes: bytes?.totalBytes ?? null } }));
      }
      // Paused, the sync may last: a look a second (the progress is written as often) spares etcd.
      await sleep(this.split.pause ? 1000 : linkUp ? 10 : this.deps.pollMs);
    }
  }

  private async catchup(): Promise<void> {
    const s = this.split;
    const mine = await replicationInfo(this.deps.pool, s.shard.master);
    if (mine.role === 'master') {
      const fence = await lowerSourceFence(this.deps.pool, this.split, this.saveFenceRaise);
      return this.persist('catchup', 'running', 'commit', `${s.shard.master} is a master already (promoted before a leader change)${fence ? `; ${fence}` : ''}`);
    }
    // Writes to the moving slots all came before this offset: the barrier says none is in flight.
    const target = (await replicationInfo(this.deps.pool, s.sourceMaster)).offset;
    const started = performance.now();
    let offset = mine.offset;
    while (offset < target) {
      if (performance.now() - started > this.deps.catchupMs) return this.undo('abort', 'failed', `${s.shard.master} did not reach offset ${target} within ${this.deps.catchupMs} ms (at ${offset})`);
      await sleep(2);
      offset = (await replicationInfo(this.deps.pool, s.shard.master)).offset;
    }
    // Put back just before the promotion: after it the source would count one good replica fewer
    // than it asks for and refuse writes to its other slots until then.
    const fence = await lowerSourceFence(this.deps.pool, this.split, this.saveFenceRaise);
    const rewrite = await promote(this.deps.pool, s.shard.master);
    await this.persist('catchup', 'running', 'commit', `${s.shard.master} reached offset ${offset} >= ${target} in ${Math.round(performance.now() - started)} ms; ${fence ? `${fence}; ` : ''}REPLICAOF NO ONE${rewrite ? ` (${rewrite})` : ' + CONFIG REWRITE'}`);
  }

  /**
   * Both passes at once (separate Redis processes); progress written after each batch at most once
   * a second. An admin's pause (seen when that write meets theirs) stops both after their batch.
   */
  private async trim(): Promise<void> {
    const s = this.split;
    const route = (await this.deps.clusters.get(s.cluster)).route;
    const moved = new Set(expandRanges(s.slots));
    const masters = new Map(route.shards.map((x) => [x.id, x.master]));
    let lastWrite = performance.now();
    const sofar = { source: { ...s.trim.source }, shard: { ...s.trim.shard } };
    const side = async (which: 'source' | 'shard', master: string, foreign: (slot: number) => boolean): Promise<void> => {
      if (sofar[which].done) return;
      const base = { ...sofar[which] };
      const result = await trimPass(this.deps.pool, { master, slotCount: route.slotCount, foreign, rate: s.trimRate, scanCount: this.deps.trimScanCount, batch: this.deps.trimBatch }, async (c: TrimCounts) => {
        this.deps.election.requireFence();
        sofar[which] = { scanned: base.scanned + c.scanned, removed: base.removed + c.removed, done: false };
        if (performance.now() - lastWrite >= 1000) {
          lastWrite = performance.now();
          await this.update((x) => ({ ...x, trim: { ...sofar } }));
        }
        return !this.split.pause;
      });
      sofar[which] = { scanned: base.scanned + result.scanned, removed: base.removed + result.removed, done: result.complete };
    };
    await Promise.all([
      side('source', masters.get(s.source) ?? s.sourceMaster, (slot) => moved.has(slot)),
      side('shard', masters.get(s.shard.id) ?? s.shard.master, (slot) => !moved.has(slot)),
    ]);
    if (!sofar.source.done || !sofar.shard.done) {
      // Stopped by a pause: what is done is kept, the run's loop waits for the resume.
      await this.update((x) => ({ ...x, trim: { ...sofar } }));
      return;
    }
    // Only now may proxies count the two shards' keys with DBSIZE again (docs/split.md).
    const { before, after } = await this.writeRoute((r) => routeTrimmed(r, s));
    const unmarked = before === after ? '' : `; route epoch ${before} -> ${after}: ${s.source} and ${s.shard.id} no longer trimming`;
    await this.persist('trim', 'done', '-', `${sofar.source.removed} keys of slots ${splitText(s)} unlinked on ${s.source}, ${sofar.shard.removed} keys of the other slots on ${s.shard.id}: every key is on the shard that owns its slot${unmarked}`, { trim: sofar });
  }

  /** False (after aborting) when a failover changed the source's master: the new one does not feed ours. */
  private async sourceUnchanged(): Promise<boolean> {
    const route = (await this.deps.clusters.get(this.split.cluster)).route;
    const master = route.shards.find((x) => x.id === this.split.source)?.master;
    if (master === this.split.sourceMaster) return true;
    await this.undo('abort', 'failed', `the master of shard ${this.split.source} is ${master ?? 'gone'} now, not ${this.split.sourceMaster} (a failover): the split is abandoned`);
    return false;
  }

  /**
   * Before the commit only (an abort, or an admin's cancel): the route as before the split (no new
   * shard, nothing held), the new instances detached (REPLICAOF NO ONE; their data left as it is),
   * the record ended with the reason. The source never stopped owning its slots and keys.
   */
  private async undo(step: 'abort' | 'cancel', state: 'failed' | 'cancelled', reason: string): Promise<void> {
    const s = this.split;
    let route = '';
    const current = (await this.deps.clusters.get(s.cluster)).route;
    if (current.shards.some((x) => x.id === s.shard.id && x.master === s.shard.master) || current.migrating.length > 0) {
      const { before, after } = await this.writeRoute((r) => routeWithoutSplit(r, s));
      route = `; route epoch ${before} -> ${after}: as before the split`;
    }
    // Before the new master goes: detached first, the source would refuse writes until this.
    const fence = await lowerSourceFence(this.deps.pool, this.split, this.saveFenceRaise);
    const detached: string[] = [];
    const stuck: string[] = [];
    for (const instance of [s.shard.master, ...s.shard.slaves]) {
      await this.detach(instance).then(
        () => detached.push(instance),
        (err) => stuck.push(`${instance} could not be detached: ${errorMessage(err)}`),
      );
    }
    const what = `${detached.length ? `; ${detached.join(', ')} detached (REPLICAOF NO ONE), their data left as it is` : ''}${stuck.length ? `; ${stuck.join('; ')}` : ''}`;
    const restored = (await restoreSyncSettings(this.deps.pool, this.split, this.saveSyncSettings)).text;
    await this.persist(step, state, '-', `${reason}${route}${what}${restored ? `; ${restored}` : ''}${fence ? `; ${fence}` : ''}`, { error: reason });
  }

  /**
   * REPLICAOF NO ONE, after the load under way if any: a new master loading the RDB from the socket
   * answers LOADING to it (and to CONFIG SET) until the load ends; its load ends by itself (done, or
   * failed with the source). Leadership is checked between tries.
   */
  private async detach(instance: string): Promise<void> {
    for (;;) {
      try {
        await this.deps.pool.call(instance, 'REPLICAOF', 'NO', 'ONE');
        return;
      } catch (err) {
        if (!isLoadingRefusal(err)) throw err;
        this.deps.election.requireFence();
        await sleep(this.deps.pollMs);
      }
    }
  }

  private readonly saveSyncSettings = (syncSettings: SyncSettings): Promise<void> => this.update((x) => ({ ...x, syncSettings }));
  private readonly saveFenceRaise = (fenceRaise: FenceRaise): Promise<void> => this.update((x) => ({ ...x, fenceRaise }));

  /** Each stored step counted in the metrics (split-metrics.ts). */
  protected override stepped(step: string): void {
    if (this.deps.metrics) countSplitStep(this.deps.metrics, this.split, step, new Date());
  }
}

/**
 * Runs each cluster's unfinished split on the leader: the attach, the sync and the trim in the
 * background (they last long), the cut-over inside the leader's cycle (it is bounded), so that the
 * cycle's repairs never see the new shard in the route before its master is promoted.
 */
export class SplitDriver extends RecordDriver {
  /** Each cluster's split as this leader last loaded it, for raisedFences. */
  private readonly runs = new Map<string, SplitRun>();

  constructor(deps: SplitDeps) {
    super(deps.log, async (cluster) => {
      const active = await deps.splits.active(cluster);
      deps.metrics?.splitRunning.set(cluster, [{ labels: {}, value: active ? 1 : 0 }]);
      if (!active) {
        this.runs.delete(cluster);
        return null;
      }
      const run = new SplitRun(deps, active);
      this.runs.set(cluster, run);
      const s = active.record;
      return {
        label: run.label,
        inline: run.inline,
        run: () => run.run(),
        said: (started) => (started ? `split ${s.id} (${splitText(s)}) runs from step ${s.next}` : `split ${s.id}: cut-over ${run.split.state === 'failed' ? `failed: ${run.split.error}` : run.split.state === 'paused' ? 'not begun: paused' : 'done'}`),
        // The sync ended: the cut-over starts at the cluster's next cycle, now rather than a probe interval later.
        ended: () => {
          if (!splitFinished(run.split) && INLINE_STEPS.has(run.split.next)) deps.wake?.(cluster);
        },
      };
    });
  }

  /**
   * The source fences the cluster's unfinished split has raised and not put back (split-fence.ts),
   * as master -> min-replicas-to-write: the leader's fence planning keeps them.
   */
  raisedFences(cluster: string): Map<string, number> {
    const split = this.runs.get(cluster)?.split;
    const raise = split && !splitFinished(split) ? split.fenceRaise : null;
    return raise && !raise.restored ? new Map([[raise.instance, raise.to]]) : new Map();
  }
}
