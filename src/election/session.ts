/**
 * A lease that this process keeps alive itself, so that it knows — from its own monotonic clock —
 * the moment after which etcd may have expired it. The etcd3 client's 'lost' event comes about
 * 2×TTL late; a leader must stop acting before its lease can have expired, not after.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Etcd3, Lease } from 'etcd3';
import { EtcdLeaseInvalidError } from 'etcd3';
import type { Logger } from 'winston';
import { errorMessage } from '../model/errors.js';
import { etcdCall } from '../store/etcd.js';
import { withTimeout } from '../util/timeout.js';

export interface SessionEvents {
  /** The lease is gone or may be: stop everything bound to it. Fired once. */
  lost: [reason: string];
}

export class Session extends EventEmitter<SessionEvents> {
  private deadline: number;
  private closed = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly lease: Lease,
    readonly leaseId: string,
    readonly ttlMs: number,
    grantedAt: number,
    private readonly log: Logger,
  ) {
    super();
    this.deadline = grantedAt + ttlMs - this.safetyMargin();
    this.armExpiry();
    this.scheduleRenewal();
  }

  static async open(etcd: Etcd3, ttlSeconds: number, log: Logger): Promise<Session> {
    const sentAt = performance.now();
    const lease = etcd.lease(ttlSeconds, { autoKeepAlive: false });
    lease.on('lost', () => undefined); // we track loss ourselves; keep the emitter from complaining
    const id = await etcdCall('grant lease', () => lease.grant());
    return new Session(lease, id, ttlSeconds * 1000, sentAt, log);
  }

  /** True while the lease is certainly still alive in etcd. */
  isAlive(): boolean {
    return !this.closed && performance.now() < this.deadline;
  }

  /** Milliseconds left before we must assume the lease expired. */
  remainingMs(): number {
    return this.closed ? 0 : Math.max(0, this.deadline - performance.now());
  }

  /** Ends the session; with revoke, etcd deletes every key bound to the lease at once. */
  async close(revoke = true): Promise<void> {
    if (this.closed) return;
    this.stop();
    if (revoke) await this.lease.revoke().catch((err) => this.log.warn('lease revoke failed', { error: errorMessage(err) }));
    else this.lease.release();
  }

  private safetyMargin(): number {
    return Math.min(500, this.ttlMs / 5);
  }

  private scheduleRenewal(): void {
    this.renewTimer = setTimeout(() => void this.renew(), this.ttlMs / 3);
  }

  private async renew(): Promise<void> {
    if (this.closed) return;
    const sentAt = performance.now();
    try {
      const res = await withTimeout(this.lease.keepaliveOnce(), this.ttlMs / 3, 'lease keep-alive');
      if (this.closed) return;
      const ttl = Number(res.TTL);
      if (!(ttl > 0)) return this.lose('etcd says the lease expired');
      // etcd restarts the TTL when it receives the keep-alive, which is after we sent it.
      this.deadline = sentAt + ttl * 1000 - this.safetyMargin();
      this.armExpiry();
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) return this.lose('etcd says the lease expired');
      this.log.warn('lease keep-alive failed', { error: errorMessage(err), remainingMs: Math.round(this.remainingMs()) });
    }
    if (!this.closed) this.scheduleRenewal();
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(() => this.lose('no keep-alive answered within the lease TTL'), Math.max(0, this.deadline - performance.now()));
  }

  private lose(reason: string): void {
    if (this.closed) return;
    this.stop();
    this.lease.release();
    this.log.error('lease lost', { reason });
    this.emit('lost', reason);
  }

  private stop(): void {
    this.closed = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
  }
}
