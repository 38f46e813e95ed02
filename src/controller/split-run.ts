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
 * the new master detached (REPLICAOF NO ONE), the record failed with the reason.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'winston';
import type { LeaderLock } from '../election/leader-election.js';
import { ConflictError, NotLeaderError, RedisError, errorMessage } from '../model/errors.js';
import { historyEntry } from '../model/history.js';
import { expandRanges } from '../model/migration.js';
import type { HistoryEntry, Route } from '../model/schemas.js';
import { routeHolding, routeSplit, routeTrimmed, routeWithoutSplit, splitFinished, splitText, type SplitRecord } from '../model/split.js';
import { promote, replicaOf, replicationInfo } from '../redis/commands.js';
import type { RedisPool } from '../redis/pool.js';
import type { ClusterStore } from '../store/cluster-store.js';
import type { HistoryStore } from '../store/history-store.js';
import type { ProxyRegistry } from '../store/proxy-registry.js';
import type { SplitStore, StoredSplit } from '../store/split-store.js';
import { describeBarrier, waitForProxies } from './barrier.js';
import { describeGuarded, waitForGuardedProxies, type ControllerApiClient } from './guarded-proxies.js';
import type { ControllerRegistry } from '../store/controller-registry.js';
import { trimPass, type TrimCounts } from './split-trim.js';
import { applySyncSettings, restoreSyncSettings, type SyncSettings } from './split-sync-settings.js';
import { countSplitStep, type SplitMetrics } from './split-metrics.js';

export interface SplitDeps {
  controllerId: string;
  clusters: ClusterStore;
  splits: SplitStore;
  history: HistoryStore;
  proxies: ProxyRegistry;
  election: LeaderLock;
  pool: RedisPool;
  log: Logger;
  /** The controllers, asked for the proxies that follow the route through their API (as the migration's hold barrier does). */
  registry: Pick<ControllerRegistry, 'list'>;
  controllerApi(): ControllerApiClient | undefined;
  /** Only when some controller cannot be asked: how long a proxy cut off from etcd may take to learn the route. */
  cutoffGraceMs: number;
  /** The sync is done when the new master is at most this many bytes behind the source. */
  syncLagBytes: number;
  /** How long the cut-over may wait for the new master to reach the source's offset. */
  catchupMs: number;
  /** How often the sync is polled, and progress written. */
  pollMs: number;
  trimBatch: number;
  trimScanCount: number;
  /** Asks for the cluster's next leader cycle now rather than a probe interval later (the cut-over runs in it). */
  wake?: (cluster: string) => void;
  /** Where stored steps are counted (split-metrics.ts). */
  metrics?: SplitMetrics;
}

export const SPLIT_DEFAULTS = { cutoffGraceMs: 1000, syncLagBytes: 1024 * 1024, catchupMs: 1000, pollMs: 50, trimBatch: 200, trimScanCount: 1000 };

/** Steps the leader runs inside its cycle, so that no repair of that cycle sees the half-made shard. */
const INLINE_STEPS: ReadonlySet<string> = new Set(['hold', 'hold-barrier', 'catchup', 'commit']);

export class SplitRun {
  private stepStarted = performance.now();

  constructor(
    private readonly deps: SplitDeps,
    private stored: StoredSplit,
  ) {}

  get split(): SplitRecord {
    return this.stored.split;
  }

  /** Runs until the split ends, or (with `inline`) until the cut-over is over, or (without) until it is due. */
  async run(inline: boolean): Promise<void> {
    while (!splitFinished(this.split) && INLINE_STEPS.has(this.split.next) === inline) {
      this.deps.election.requireFence();
      try {
        await this.step();
      } catch (err) {
        if (err instanceof NotLeaderError || INLINE_STEPS.has(this.split.next) === false || this.split.next === 'commit') throw err;
        await this.abort(`${this.split.next}: ${errorMessage(err)}`);
      }
    }
  }

  private async step(): Promise<void> {
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
        const { route, spec } = await this.deps.clusters.get(s.cluster);
        const outcome = await waitForProxies(this.deps.proxies, s.cluster, route.epoch, { timeoutMs: spec.failover.barrierTimeoutMs, log: this.deps.log });
        if (outcome.timedOut) return this.abort(`the proxies did not drain the hold epoch ${route.epoch} (${describeBarrier(outcome)})`);
        // Proxies cut off from etcd are not in the registry, yet may forward on a route a
        // controller confirmed: each must have drained the epoch too (docs/migration.md).
        const guarded = await waitForGuardedProxies(this.deps.registry, s.cluster, route.epoch, { timeoutMs: spec.failover.barrierTimeoutMs, api: this.deps.controllerApi() });
        const why = `${describeBarrier(outcome)}; ${describeGuarded(guarded, route.epoch, this.deps.cutoffGraceMs)}`;
        if (guarded.kind === 'behind') return this.abort(`proxies following the route through a controller did not drain the hold epoch ${route.epoch} (${why})`);
        if (guarded.kind === 'unknown') await sleep(this.deps.cutoffGraceMs);
        return this.persist('hold-barrier', 'running', 'catchup', `${why}: no write to the moving slots reaches ${s.sourceMaster} any more`);
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
    for (;;) {
      this.deps.election.requireFence();
      if (!(await this.sourceUnchanged())) return;
      const [mine, source] = await Promise.all([replicationInfo(this.deps.pool, s.shard.master), replicationInfo(this.deps.pool, s.sourceMaster)]);
      if (mine.role !== 'slave' || mine.masterAddress !== s.sourceMaster) return this.abort(`${s.shard.master} no longer replicates from ${s.sourceMaster} (someone changed it)`);
      const linkUp = mine.linkUp === true;
      const lagBytes = Math.max(0, source.offset - mine.offset);
      const sync = { linkUp, offset: mine.offset, sourceOffset: source.offset, lagBytes, keys: mine.keys, at: new Date().toISOString() };
      if (linkUp && streamed === null) {
        await this.deps.pool.call(s.sourceMaster, 'PUBLISH', '__cfgserver:split', s.id);
        streamed = (await replicationInfo(this.deps.pool, s.sourceMaster)).offset;
      }
      if (linkUp && streamed !== null && mine.offset >= streamed && lagBytes <= this.deps.syncLagBytes) {
        const restored = await restoreSyncSettings(this.deps.pool, this.split, this.saveSyncSettings);
        // Retried from the sync at the next cycle: the source must not keep the split's settings.
        if (!restored.complete) throw new RedisError(restored.text);
        return this.persist('sync', 'running', 'hold', `${s.shard.master} is in sync: link up and streaming, offset ${mine.offset}, ${lagBytes} bytes behind ${s.sourceMaster}, ${mine.keys ?? '?'} keys${restored.text ? `; ${restored.text}` : ''}`, { sync });
      }
      if (performance.now() - lastWrite >= 1000) {
        lastWrite = performance.now();
        await this.update((x) => ({ ...x, sync }));
      }
      await sleep(linkUp ? 10 : this.deps.pollMs);
    }
  }

  private async catchup(): Promise<void> {
    const s = this.split;
    const mine = await replicationInfo(this.deps.pool, s.shard.master);
    if (mine.role === 'master') return this.persist('catchup', 'running', 'commit', `${s.shard.master} is a master already (promoted before a leader change)`);
    // Writes to the moving slots all came before this offset: the barrier says none is in flight.
    const target = (await replicationInfo(this.deps.pool, s.sourceMaster)).offset;
    const started = performance.now();
    let offset = mine.offset;
    while (offset < target) {
      if (performance.now() - started > this.deps.catchupMs) return this.abort(`${s.shard.master} did not reach offset ${target} within ${this.deps.catchupMs} ms (at ${offset})`);
      await sleep(2);
      offset = (await replicationInfo(this.deps.pool, s.shard.master)).offset;
    }
    const rewrite = await promote(this.deps.pool, s.shard.master);
    await this.persist('catchup', 'running', 'commit', `${s.shard.master} reached offset ${offset} >= ${target} in ${Math.round(performance.now() - started)} ms; REPLICAOF NO ONE${rewrite ? ` (${rewrite})` : ' + CONFIG REWRITE'}`);
  }

  /** Both passes at once (separate Redis processes); progress written after each batch at most once a second. */
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
        return true;
      });
      sofar[which] = { scanned: base.scanned + result.scanned, removed: base.removed + result.removed, done: result.complete };
    };
    await Promise.all([
      side('source', masters.get(s.source) ?? s.sourceMaster, (slot) => moved.has(slot)),
      side('shard', masters.get(s.shard.id) ?? s.shard.master, (slot) => !moved.has(slot)),
    ]);
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
    await this.abort(`the master of shard ${this.split.source} is ${master ?? 'gone'} now, not ${this.split.sourceMaster} (a failover): the split is abandoned`);
    return false;
  }

  /** Before the commit only: the route as before the split, the new master detached, the record failed. */
  private async abort(reason: string): Promise<void> {
    const s = this.split;
    let route = '';
    const current = (await this.deps.clusters.get(s.cluster)).route;
    if (current.shards.some((x) => x.id === s.shard.id && x.master === s.shard.master) || current.migrating.length > 0) {
      const { before, after } = await this.writeRoute((r) => routeWithoutSplit(r, s));
      route = `; route epoch ${before} -> ${after}: as before the split`;
    }
    const detached = await this.deps.pool.call(s.shard.master, 'REPLICAOF', 'NO', 'ONE').then(
      () => `; ${s.shard.master} detached (REPLICAOF NO ONE), its data left as it is`,
      (err) => `; ${s.shard.master} could not be detached: ${errorMessage(err)}`,
    );
    const restored = (await restoreSyncSettings(this.deps.pool, this.split, this.saveSyncSettings)).text;
    await this.persist('abort', 'failed', '-', `${reason}${route}${detached}${restored ? `; ${restored}` : ''}`, { error: reason });
  }

  private readonly saveSyncSettings = (syncSettings: SyncSettings): Promise<void> => this.update((x) => ({ ...x, syncSettings }));

  private async writeRoute(change: (route: Route) => Route): Promise<{ before: number; after: number }> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.deps.clusters.get(this.split.cluster);
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

  private async update(change: (s: SplitRecord) => SplitRecord): Promise<void> {
    const next = { ...change(this.split), controller: this.deps.controllerId, updatedAt: new Date().toISOString() };
    const revision = await this.deps.splits.update(next, this.stored.revision, this.deps.election.requireFence());
    this.stored = { split: next, revision };
  }

  /** Records a step: the record (state, next), the history, the log. */
  private async persist(step: string, state: SplitRecord['state'], next: string, detail: string, patch: Partial<SplitRecord> = {}): Promise<void> {
    const durationMs = Math.round(performance.now() - this.stepStarted);
    await this.update((s) => ({ ...s, ...patch, state, next, steps: [...s.steps, { step, at: new Date().toISOString(), durationMs, detail }] }));
    if (this.deps.metrics) countSplitStep(this.deps.metrics, this.split, step, new Date());
    await this.record(step, detail, state === 'running' ? 'info' : state, durationMs);
    this.stepStarted = performance.now();
  }

  private async record(step: string, detail: string, outcome: HistoryEntry['outcome'], durationMs: number | null): Promise<void> {
    const s = this.split;
    const entry = historyEntry({ cluster: s.cluster, controller: this.deps.controllerId, action: `split:${step}`, reason: `${detail} [split ${s.id}: ${s.reason}]`, outcome, durationMs });
    this.deps.log.log(outcome === 'failed' ? 'warn' : 'info', `split ${s.id}: ${step}: ${detail}`, { cluster: s.cluster, next: s.next, state: s.state, durationMs });
    await this.deps.history.append(entry, this.deps.election.requireFence()).catch((err) => {
      if (err instanceof NotLeaderError) throw err;
      this.deps.log.warn('could not record history', { error: errorMessage(err) });
    });
  }
}

/**
 * Runs each cluster's unfinished split on the leader: the attach, the sync and the trim in the
 * background (they last long), the cut-over inside the leader's cycle (it is bounded), so that the
 * cycle's repairs never see the new shard in the route before its master is promoted.
 */
export class SplitDriver {
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly deps: SplitDeps) {}

  /** Carries the cluster's unfinished split on; says what it did, or null. */
  async carryOn(cluster: string): Promise<string | null> {
    const running = (value: number) => this.deps.metrics?.splitRunning.set(cluster, [{ labels: {}, value }]);
    if (this.running.has(cluster)) {
      running(1);
      return null;
    }
    const active = await this.deps.splits.active(cluster);
    running(active ? 1 : 0);
    if (!active) return null;
    const run = new SplitRun(this.deps, active);
    if (INLINE_STEPS.has(active.split.next)) {
      await run.run(true);
      return `split ${active.split.id}: cut-over ${run.split.state === 'failed' ? `failed: ${run.split.error}` : 'done'}`;
    }
    const background = run
      .run(false)
      .catch((err) => {
        if (err instanceof NotLeaderError) return;
        // Retried from its recorded step at the next cycle.
        this.deps.log.warn(`split ${active.split.id}: ${errorMessage(err)}; retrying at the next cycle`, { cluster });
      })
      .finally(() => {
        this.running.delete(cluster);
        if (!splitFinished(run.split) && INLINE_STEPS.has(run.split.next)) this.deps.wake?.(cluster);
      });
    this.running.set(cluster, background);
    return `split ${active.split.id} (${splitText(active.split)}) runs from step ${active.split.next}`;
  }

  /** Waits for the runs under way (they stop once this replica stops leading). */
  async settle(ms = 2000): Promise<void> {
    await Promise.race([Promise.allSettled([...this.running.values()]), new Promise((r) => setTimeout(r, ms).unref())]);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
