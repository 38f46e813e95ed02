/**
 * The leader lock: one key, `election/leader`, created by whoever gets there first and bound to
 * that replica's lease. The create revision of the key is the leader's fencing token: every write
 * a leader makes compares it, so a deposed leader's writes fail instead of landing late.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from 'winston';
import { NotLeaderError, errorMessage } from '../model/errors.js';
import { etcdCall } from '../store/etcd.js';
import { whileFenced, type Fence } from '../store/fence.js';
import type { Keys } from '../store/keys.js';
import type { Session } from './session.js';

/**
 * etcd sends progress notifications on a quiet watch only every 10 minutes by default
 * (--experimental-watch-progress-notify-interval), so a steady-state leader watch is normally
 * silent: re-creating it once a minute costs one request and bounds how long a watch stuck on a
 * hung member can go unnoticed. The periodic campaign (every TTL) covers the time in between.
 */
const WATCH_QUIET_MS = 60_000;

export interface LeaderEvents {
  elected: [fence: Fence];
  deposed: [reason: string];
  /** The leader key, as this replica last saw it: its create revision names one term of one leader. */
  leader: [createRevision: string, holder: string];
}

/** What leader-only code needs: whether it may act, and the token to fence its writes with. */
export interface LeaderLock {
  isLeader(): boolean;
  /** The fencing token for a leader-only write; throws NotLeaderError if this replica may not act. */
  requireFence(): Fence;
}

export class LeaderElection extends EventEmitter<LeaderEvents> implements LeaderLock {
  private fence: Fence | null = null;
  private watcher: Watcher | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private campaigning: Promise<void> | null = null;
  /** No campaign before this time (performance.now()): set when the leader stepped aside. */
  private holdUntil = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private lastWatchNews = 0;
  private rewatching = false;

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    private readonly session: Session,
    readonly controllerId: string,
    private readonly log: Logger,
  ) {
    super();
    session.onLost((reason) => {
      this.depose(`lease lost: ${reason}`);
      this.halt();
    });
  }

  /** Starts campaigning: now, whenever the leader key disappears, and periodically as a safety net. */
  async start(): Promise<void> {
    await this.watch();
    this.watchdog = setInterval(() => void this.checkWatch(), Math.min(WATCH_QUIET_MS / 4, 5000));
    await this.campaign();
  }

  /** Stops campaigning and watching without touching the key (the session is gone or going). */
  halt(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    void this.watcher?.cancel().catch(() => undefined);
    this.watcher = null;
  }

  private async watch(): Promise<void> {
    const watcher = await etcdCall('watch leader key', () => this.etcd.watch().key(this.keys.leader()).create());
    if (this.stopped) return void (await watcher.cancel().catch(() => undefined));
    this.lastWatchNews = performance.now();
    // Progress notifications arrive as 'data' too (etcd3 asks for them on every watch).
    const news = () => (this.lastWatchNews = performance.now());
    watcher.on('data', news);
    watcher.on('connected', news);
    watcher.on('delete', () => void this.campaign());
    watcher.on('put', (kv) => {
      this.emit('leader', kv.create_revision, kv.value.toString());
      if (this.fence && kv.create_revision !== this.fence.createRevision) this.depose('another controller holds the leader key');
    });
    watcher.on('error', (err) => this.log.warn('leader watch error', { error: errorMessage(err) }));
    this.watcher = watcher;
  }

  /**
   * A watch on a member that hangs can stay open and silent for ever. A watch with neither an
   * event nor a progress notification for WATCH_QUIET_MS is re-created (on whichever member etcd3
   * picks), and a campaign runs at once in case a delete was missed meanwhile.
   */
  private async checkWatch(): Promise<void> {
    if (this.stopped || this.rewatching || performance.now() - this.lastWatchNews < WATCH_QUIET_MS) return;
    this.rewatching = true;
    try {
      const old = this.watcher;
      this.watcher = null;
      void old?.cancel().catch(() => undefined);
      await this.watch();
      this.log.debug('leader watch re-created after a quiet period', { quietMs: WATCH_QUIET_MS });
      void this.campaign();
    } catch (err) {
      this.log.warn('cannot re-create the leader watch; will try again', { error: errorMessage(err) });
    } finally {
      this.rewatching = false;
    }
  }

  isLeader(): boolean {
    return this.fence !== null && this.session.isAlive();
  }

  /** The fencing token for a leader-only write; throws if this replica may not act. */
  requireFence(): Fence {
    if (!this.fence || !this.session.isAlive()) throw new NotLeaderError(`controller ${this.controllerId} is not the leader`);
    return this.fence;
  }

  /** Gives the lock up at once (SIGTERM), so that another replica takes over without waiting for the TTL. */
  async resign(): Promise<void> {
    this.halt();
    const fence = this.fence;
    if (!fence) return;
    this.depose('resigned');
    await etcdCall('resign', () =>
      whileFenced(this.etcd, fence).then(this.etcd.delete().key(fence.key)).commit(),
    ).catch((err) => this.log.warn('resign failed; the lease will expire instead', { error: errorMessage(err) }));
  }

  /**
   * Gives the lock up for a while but goes on campaigning afterwards: a leader that sees less than
   * the other replicas lets one of them lead. If none takes the lock, this one takes it back once
   * `holdMs` has passed.
   */
  async stepAside(holdMs: number, reason: string): Promise<void> {
    const fence = this.fence;
    if (!fence) return;
    this.holdUntil = performance.now() + holdMs;
    this.depose(reason);
    await etcdCall('step aside', () =>
      whileFenced(this.etcd, fence).then(this.etcd.delete().key(fence.key)).commit(),
    ).catch((err) => this.log.warn('could not give the lock up; the lease keeps it until it expires', { error: errorMessage(err) }));
  }

  private campaign(): Promise<void> {
    // One attempt at a time; a delete event during an attempt just causes the next one.
    this.campaigning ??= this.tryAcquire().finally(() => {
      this.campaigning = null;
      if (!this.stopped && this.session.isAlive()) {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => void this.campaign(), this.session.ttlMs);
      }
    });
    return this.campaigning;
  }

  private async tryAcquire(): Promise<void> {
    if (this.stopped || !this.session.isAlive() || performance.now() < this.holdUntil) return;
    const key = this.keys.leader();
    try {
      const res = await etcdCall('campaign', () =>
        this.etcd
          .if(key, 'Create', '==', 0)
          .then(this.etcd.put(key).value(this.controllerId).lease(this.session.leaseId))
          .else(this.etcd.get(key))
          .commit(),
      );
      // Whatever the transaction said, the key is the truth (a retried, applied transaction can report failure).
      const holder = res.succeeded ? null : res.responses[0]?.response_range.kvs[0];
      if (res.succeeded) this.emit('leader', res.header.revision, this.controllerId);
      else if (holder) this.emit('leader', holder.create_revision, holder.value.toString());
      const createRevision = res.succeeded ? res.header.revision : holder?.lease === this.session.leaseId ? holder.create_revision : null;
      if (createRevision && !this.fence && this.session.isAlive() && !this.stopped) {
        this.fence = { key, createRevision };
        this.log.info('elected leader', { controller: this.controllerId, fence: createRevision });
        this.emit('elected', this.fence);
      }
    } catch (err) {
      this.log.warn('campaign failed', { error: errorMessage(err) });
    }
  }

  private depose(reason: string): void {
    if (!this.fence) return;
    this.fence = null;
    this.log.warn('no longer leader', { controller: this.controllerId, reason });
    this.emit('deposed', reason);
  }
}
