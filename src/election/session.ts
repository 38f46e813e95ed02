/**
 * A lease that this process keeps alive itself, so that it knows — from its own monotonic clock —
 * the moment after which etcd may have expired it. The etcd3 client's 'lost' event comes about
 * 2×TTL late; a leader must stop acting before its lease can have expired, not after.
 *
 * Timing, with T the TTL (T = 3 s by default for controllers, 2 s in tests):
 * - etcd restarts the TTL when its leader handles a keep-alive, which is after we sent it. So a
 *   keep-alive sent at `s` (our monotonic clock) and answered with TTL t proves the lease lives
 *   until at least `s + t` — measured from the *send* time, never from the answer. A new etcd
 *   leader extends every lease on promotion, so a leader change only ever lengthens that.
 * - We claim the lease until `s + t − margin`, margin = min(500 ms, T/5): room for the rate
 *   difference between clocks and for a timer that fires late on a busy machine.
 * - A keep-alive goes every T/6, each attempt with its own timeout A = min(500 ms, T/12). An
 *   attempt that is not answered in A (a hung member, or one whose Raft leader is gone) is followed
 *   at once by one on every endpoint, and again every A, without cancelling any: a late answer
 *   still counts, from its own send time, so a short A costs a few more streams, never a lease.
 *   With T = 3 s: the budget after the last answered send is 2.5 s; the next keep-alive leaves at
 *   0.5 s, so at least 2 s remain, tried every 0.25 s — a hung member costs 0.25 s, and when
 *   etcd's own leader hangs or dies (1–2 s to elect the next one, during which no member can renew
 *   anything) a fresh attempt reaches the new leader within 0.25 s of its election. With T = 2 s:
 *   1.6 s budget, next send at 0.33 s, attempts every 0.17 s. (The old schedule, every T/3 with a
 *   T/3 timeout and the attempt cancelled, gave up after one slow reply plus one more.)
 * - Keep-alives stick to the endpoint that last answered, so a healthy session costs one stream
 *   per keep-alive on one member.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'winston';
import { errorMessage } from '../model/errors.js';
import { createEtcd, endpointsOf, etcdCall, securityOf } from '../store/etcd.js';

export interface SessionEvents {
  /** The lease is gone or may be: stop everything bound to it. Fired once. */
  lost: [reason: string];
}

export interface SessionOptions {
  /** Called once when the lease is lost; in place before the lease exists, so no loss is missed. */
  onLost?: (reason: string) => void;
}

interface KeepAliveChannel {
  endpoint: string;
  client: Etcd3;
  /** Whether we made this client (and close it). */
  owned: boolean;
}

export class Session extends EventEmitter<SessionEvents> {
  private deadline: number;
  private closed = false;
  private lostReason: string | null = null;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private current = 0;
  /** Send time of the last keep-alive etcd answered: what the deadline is measured from. */
  private lastAnsweredSend: number;
  readonly intervalMs: number;
  readonly attemptTimeoutMs: number;

  private constructor(
    private readonly etcd: Etcd3,
    private readonly channels: KeepAliveChannel[],
    readonly leaseId: string,
    readonly ttlMs: number,
    grantedAt: number,
    private readonly log: Logger,
    onLost?: (reason: string) => void,
  ) {
    super();
    if (onLost) this.once('lost', onLost);
    this.intervalMs = ttlMs / 6;
    this.attemptTimeoutMs = Math.min(500, ttlMs / 12);
    this.lastAnsweredSend = grantedAt;
    this.deadline = grantedAt + ttlMs - this.safetyMargin();
    this.armExpiry();
    this.scheduleRenewal(this.intervalMs);
  }

  static async open(etcd: Etcd3, ttlSeconds: number, log: Logger, options: SessionOptions = {}): Promise<Session> {
    const sentAt = performance.now();
    const res = await etcdCall('grant lease', () => etcd.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }));
    const ttlMs = ttlSeconds * 1000;
    // One client per endpoint, so that a keep-alive that a member does not answer is retried on
    // another member for sure (etcd3 picks a member at random for each call).
    const endpoints = endpointsOf(etcd);
    const channels: KeepAliveChannel[] =
      endpoints && endpoints.length > 1
        ? endpoints.map((endpoint) => ({ endpoint, client: createEtcd({ endpoints: [endpoint], callTimeoutMs: ttlMs, retries: 0, security: securityOf(etcd) }), owned: true }))
        : [{ endpoint: endpoints?.[0] ?? 'etcd', client: etcd, owned: false }];
    const granted = Number(res.TTL) * 1000;
    return new Session(etcd, channels, String(res.ID), granted > 0 ? Math.min(granted, ttlMs) : ttlMs, sentAt, log, options.onLost);
  }

  /** True while the lease is certainly still alive in etcd. */
  isAlive(): boolean {
    return !this.closed && performance.now() < this.deadline;
  }

  /** Milliseconds left before we must assume the lease expired. */
  remainingMs(): number {
    return this.closed ? 0 : Math.max(0, this.deadline - performance.now());
  }

  /** The endpoint the keep-alives currently go to. */
  get endpoint(): string {
    return this.channels[this.current]!.endpoint;
  }

  /** Why the lease was lost, once it was. */
  get lost(): string | null {
    return this.lostReason;
  }

  /**
   * Calls `listener` once when the lease is lost — at once (on the next tick) if it already was:
   * a listener attached after an `await` cannot miss a loss that happened during it.
   */
  onLost(listener: (reason: string) => void): void {
    if (this.lostReason !== null) {
      const reason = this.lostReason;
      queueMicrotask(() => listener(reason));
    } else this.once('lost', listener);
  }

  /** Ends the session; with revoke, etcd deletes every key bound to the lease at once. */
  async close(revoke = true): Promise<void> {
    if (this.closed) return;
    this.stop();
    if (revoke) {
      await etcdCall('revoke lease', () => this.etcd.leaseClient.leaseRevoke({ ID: this.leaseId })).catch((err) =>
        this.log.warn('lease revoke failed', { error: errorMessage(err) }),
      );
    }
    this.closeChannels();
  }

  private safetyMargin(): number {
    return Math.min(500, this.ttlMs / 5);
  }

  private scheduleRenewal(delayMs: number): void {
    this.renewTimer = setTimeout(() => void this.renew(), Math.max(0, delayMs));
  }

  /**
   * One keep-alive round: first to the endpoint that answered last; if that is not answered
   * within A, to every endpoint at once, again every A, until one answers or the lease may be
   * gone. Fanning out matters when etcd's own leader hangs: every member then stalls until a new
   * leader is elected, and only a keep-alive sent after that election can be answered in time.
   */
  private async renew(): Promise<void> {
    const roundStart = performance.now();
    let answered = false;
    let waves = 0;
    let wave = [this.current];
    const all = this.channels.map((_, i) => i);
    while (!this.closed && !answered && performance.now() < this.deadline) {
      waves++;
      const attempts = wave.map((i) =>
        this.keepAlive(i).then((ok) => {
          if (ok) answered = true;
          return ok;
        }),
      );
      const outcome = await Promise.race([anyTrue(attempts), sleep(this.attemptTimeoutMs).then(() => 'timeout' as const)]);
      if (answered || this.closed) break;
      // Every endpoint refused at once (etcd down): do not spin; the deadline timer decides.
      if (outcome === false) await sleep(Math.min(100, this.attemptTimeoutMs));
      wave = all;
    }
    if (waves > 1 && !this.closed) {
      this.log.warn(answered ? 'lease keep-alive answered only after retrying on every etcd endpoint' : 'lease keep-alive unanswered', {
        waves,
        tookMs: Math.round(performance.now() - roundStart),
        endpoint: this.endpoint,
        remainingMs: Math.round(this.remainingMs()),
      });
    }
    if (!this.closed) this.scheduleRenewal(roundStart + this.intervalMs - performance.now());
  }

  /** One keep-alive on one endpoint; resolves true when etcd answered that the lease lives. */
  private async keepAlive(index: number): Promise<boolean> {
    const channel = this.channels[index]!;
    const sentAt = performance.now();
    let stream: Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>> | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      stream = await channel.client.leaseClient.leaseKeepAlive();
      const s = stream;
      const res = await new Promise<{ TTL: string }>((resolve, reject) => {
        // A stream is never left waiting longer than the lease can last.
        timer = setTimeout(() => reject(new Error('keep-alive stream timed out')), this.ttlMs);
        s.on('data', resolve);
        s.on('error', reject);
        s.write({ ID: this.leaseId });
      });
      if (this.closed) return false;
      const ttl = Number(res.TTL);
      if (!(ttl > 0)) {
        this.lose('etcd says the lease expired');
        return false;
      }
      this.current = index;
      if (sentAt > this.lastAnsweredSend) {
        this.lastAnsweredSend = sentAt;
        this.deadline = Math.max(this.deadline, sentAt + ttl * 1000 - this.safetyMargin());
        this.armExpiry();
      }
      return true;
    } catch (err) {
      if (!this.closed) this.log.debug('lease keep-alive failed', { endpoint: channel.endpoint, error: errorMessage(err), remainingMs: Math.round(this.remainingMs()) });
      return false;
    } finally {
      clearTimeout(timer);
      try {
        // Half-close first: etcd3 treats an error on a stream that is still writable (our own
        // CANCELLED included) as a failed host and closes the whole connection — every watch of
        // this client with it. Ended first, the cancel is only ours.
        stream?.end();
        stream?.cancel();
      } catch {
        // already ended
      }
    }
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(() => this.lose('no keep-alive answered within the lease TTL'), Math.max(0, this.deadline - performance.now()));
  }

  private lose(reason: string): void {
    if (this.closed) return;
    this.stop();
    this.closeChannels();
    this.lostReason = reason;
    this.log.error('lease lost', { reason, lease: this.leaseId, sinceLastAnsweredMs: Math.round(performance.now() - this.lastAnsweredSend) });
    this.emit('lost', reason);
  }

  private stop(): void {
    this.closed = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
  }

  private closeChannels(): void {
    for (const c of this.channels) if (c.owned) c.client.close();
  }
}

/** True as soon as one of `attempts` is true; false once all of them are false. */
function anyTrue(attempts: Promise<boolean>[]): Promise<boolean> {
  return new Promise((resolve) => {
    let pending = attempts.length;
    for (const a of attempts) {
      void a.then((ok) => {
        if (ok) resolve(true);
        else if (--pending === 0) resolve(false);
      });
    }
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
