/**
 * A replica's whole part in the election, for as long as it runs: open a session, let the owner
 * bind its keys to it, campaign; and after *any* failure — etcd unreachable, a lease lost, a
 * campaign or watch that could not start — do it all again after a capped, jittered back-off.
 * A replica is never left up, healthy-looking and inert.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'winston';
import { NotLeaderError, errorMessage } from '../model/errors.js';
import type { Fence } from '../store/fence.js';
import type { Keys } from '../store/keys.js';
import { LeaderElection, type LeaderLock } from './leader-election.js';
import { Session } from './session.js';

export interface ElectorOptions {
  etcd: Etcd3;
  keys: Keys;
  id: string;
  ttlSeconds: number;
  log: Logger;
  /** Runs under each new session before campaigning (a replica registers itself under its lease). */
  onSession?: (session: Session) => Promise<void>;
  /** Back-off between attempts: doubles from initialMs up to maxMs, with jitter. */
  backoff?: { initialMs: number; maxMs: number };
}

export interface ElectorEvents {
  elected: [fence: Fence];
  deposed: [reason: string];
  /** A new session is in place (the previous one, if any, is gone with its keys). */
  session: [session: Session];
  /** The leader key as seen (its create revision and holder), by any session of this replica. */
  leader: [createRevision: string, holder: string];
}

export class Elector extends EventEmitter<ElectorEvents> implements LeaderLock {
  private session: Session | null = null;
  private election: LeaderElection | null = null;
  private stopped = false;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** Attempts that failed in a row: what the back-off grows with. */
  private failures = 0;
  private readonly stopSignal: Promise<string>;
  private signalStop!: () => void;

  constructor(private readonly o: ElectorOptions) {
    super();
    this.stopSignal = new Promise((resolve) => (this.signalStop = () => resolve('stopped')));
  }

  /** Starts the loop in the background; it ends only with stop(). */
  start(): void {
    this.running ??= this.run();
  }

  isLeader(): boolean {
    return this.election?.isLeader() ?? false;
  }

  requireFence(): Fence {
    if (!this.election) throw new NotLeaderError(`controller ${this.o.id} is not the leader`);
    return this.election.requireFence();
  }

  /** Sessions that ended (failed to start or were lost) since the last one that lasted. */
  get failedAttempts(): number {
    return this.failures;
  }

  currentSession(): Session | null {
    return this.session?.isAlive() ? this.session : null;
  }

  /** Resigns (so that another replica takes over at once), revokes the lease and ends the loop. */
  async stop(): Promise<void> {
    // Taken before the loop wakes up and lets go of them.
    const { election, session } = this;
    this.stopped = true;
    this.signalStop();
    this.wake?.();
    await election?.resign();
    await session?.close(true);
    await this.running;
  }

  /** Gives the lock up and does not campaign for `holdMs` (see LeaderElection.stepAside). */
  async stepAside(holdMs: number, reason: string): Promise<void> {
    await this.election?.stepAside(holdMs, reason);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const started = performance.now();
      let reason: string;
      try {
        reason = await this.oneSession();
      } catch (err) {
        reason = errorMessage(err);
        this.election?.halt();
        // A session opened before the failure must not keep its lease (and its keys) alive.
        void this.session?.close(true);
      }
      this.election = null;
      this.session = null;
      if (this.stopped) break;
      // A session that lived a good while was a success: start the back-off again from the bottom.
      if (performance.now() - started > 4 * this.o.ttlSeconds * 1000) this.failures = 0;
      this.failures++;
      const delayMs = this.backoffMs();
      this.o.log.warn('election: will open a new session and campaign again', { controller: this.o.id, reason, attempt: this.failures, inMs: delayMs });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Opens a session and campaigns under it; resolves with the reason when the session is lost. */
  private async oneSession(): Promise<string> {
    let onLost!: (reason: string) => void;
    const lost = new Promise<string>((resolve) => (onLost = resolve));
    // The listener is in place before the lease exists: a loss during start-up is not missed.
    const session = await Session.open(this.o.etcd, this.o.ttlSeconds, this.o.log, { onLost });
    this.session = session;
    if (this.stopped) {
      await session.close(true);
      return 'stopped';
    }
    await this.o.onSession?.(session);
    this.emit('session', session);
    const election = new LeaderElection(this.o.etcd, this.o.keys, session, this.o.id, this.o.log);
    election.on('elected', (fence) => this.emit('elected', fence));
    election.on('deposed', (reason) => this.emit('deposed', reason));
    election.on('leader', (revision, holder) => this.emit('leader', revision, holder));
    this.election = election;
    await election.start();
    this.o.log.info('campaigning', { controller: this.o.id, lease: session.leaseId, ttlSeconds: this.o.ttlSeconds, endpoint: session.endpoint });
    return Promise.race([lost, this.stopSignal]);
  }

  /** "Equal jitter": half the capped exponential step, plus up to that half again at random. */
  private backoffMs(): number {
    const { initialMs, maxMs } = this.o.backoff ?? { initialMs: 200, maxMs: 5000 };
    const step = Math.min(maxMs, initialMs * 2 ** Math.min(20, this.failures - 1));
    return Math.round(step / 2 + (Math.random() * step) / 2);
  }
}
