/**
 * The leader lock: one key, `election/leader`, created by whoever gets there first and bound to
 * that replica's lease. The create revision of the key is the leader's fencing token: every write
 * a leader makes compares it, so a deposed leader's writes fail instead of landing late.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from 'winston';
import { NotLeaderError, errorMessage } from '../model/errors.js';
import type { Fence } from '../store/cluster-store.js';
import { etcdCall } from '../store/etcd.js';
import type { Keys } from '../store/keys.js';
import type { Session } from './session.js';

export interface LeaderEvents {
  elected: [fence: Fence];
  deposed: [reason: string];
}

export class LeaderElection extends EventEmitter<LeaderEvents> {
  private fence: Fence | null = null;
  private watcher: Watcher | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private campaigning: Promise<void> | null = null;

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    private readonly session: Session,
    readonly controllerId: string,
    private readonly log: Logger,
  ) {
    super();
    session.once('lost', (reason) => this.depose(`lease lost: ${reason}`));
  }

  /** Starts campaigning: now, whenever the leader key disappears, and periodically as a safety net. */
  async start(): Promise<void> {
    this.watcher = await etcdCall('watch leader key', () => this.etcd.watch().key(this.keys.leader()).create());
    this.watcher.on('delete', () => void this.campaign());
    this.watcher.on('put', (kv) => {
      if (this.fence && kv.create_revision !== this.fence.createRevision) this.depose('another controller holds the leader key');
    });
    this.watcher.on('error', (err) => this.log.warn('leader watch error', { error: errorMessage(err) }));
    await this.campaign();
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
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.watcher?.cancel().catch(() => undefined);
    const fence = this.fence;
    if (!fence) return;
    this.depose('resigned');
    await etcdCall('resign', () =>
      this.etcd.if(fence.key, 'Create', '==', fence.createRevision).then(this.etcd.delete().key(fence.key)).commit(),
    ).catch((err) => this.log.warn('resign failed; the lease will expire instead', { error: errorMessage(err) }));
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
    if (this.stopped || !this.session.isAlive()) return;
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
