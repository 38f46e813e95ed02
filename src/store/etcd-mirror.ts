/**
 * A copy of everything under the deployment's prefix except history, kept by one watch: what a
 * controller replica reads every cycle (the cluster list, credentials, health views, the
 * registry, settings, desired configs, proxy registrations) comes from here instead of one etcd
 * request per read. An idle deployment of 100 clusters then costs etcd nothing but the leader's
 * one fresh read of each cluster's route and tasks per cycle (docs/scale.md).
 *
 * Consistency. The copy is loaded with a few range reads (history left out: it is large and no
 * cycle reads it), then a watch from the oldest of their revisions replays everything since. A
 * put is applied only when newer than the value held, and a delete only when later than it, so
 * ranges read at different revisions and the replayed events converge on etcd's state. Events
 * come in revision order; `reach(revision)` waits until a write of this process is in the copy.
 * The watch carries etcd's "require leader" (etcd.ts): a member cut off from its quorum cancels
 * it at once, and gRPC keep-alive pings detect a hung member under it.
 *
 * Until the copy is loaded, and from a watch that broke until it is loaded again, reads go to
 * etcd directly: a reader never gets an older copy than it would have had without the mirror.
 * A broken watch is never resumed (etcd3 resumes from the revision of its last "created" answer,
 * which can skip events); the copy is loaded again instead.
 */
import { EventEmitter } from 'node:events';
import { Range, type Etcd3, type IKeyValue, type IWatchResponse, type Watcher } from 'etcd3';
import type { Logger } from 'winston';
import { errorMessage } from '../model/errors.js';
import { etcdCall } from './etcd.js';
import type { Keys } from './keys.js';
import { etcdSource, type KvSource } from './kv-source.js';

export interface EtcdMirrorEvents {
  /** A key under the prefix changed (history excepted): after the copy holds the change. */
  change: [key: string];
  /** The copy was (re)loaded: every key may have changed. */
  synced: [];
}

/** Keys of one cluster apart from the rest: a cluster's reads scan its own keys only. */
const GLOBAL = '';

export class EtcdMirror extends EventEmitter<EtcdMirrorEvents> implements KvSource {
  /** Per cluster name (GLOBAL for the keys of no cluster), key → value. */
  private readonly byCluster = new Map<string, Map<string, IKeyValue>>();
  private synced = false;
  /** Every event up to this revision is in the copy. */
  private revision = 0n;
  private watcher: Watcher | null = null;
  private stopped = false;
  private loading: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<{ revision: bigint; done(reached: boolean): void }>();
  private readonly direct: KvSource;
  /** Times the copy was loaded (for tests and the log). */
  loads = 0;

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    private readonly log?: Logger,
    private readonly retryMs = 500,
  ) {
    super();
    this.direct = etcdSource(etcd);
  }

  /** Starts loading the copy; reads go to etcd until it is loaded. */
  start(): void {
    this.load();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.markStale();
    const w = this.watcher;
    this.watcher = null;
    await w?.cancel().catch(() => undefined);
  }

  /** Whether reads are served from the copy. */
  isSynced(): boolean {
    return this.synced;
  }

  async get(key: string, what: string): Promise<IKeyValue | undefined> {
    if (!this.synced) return this.direct.get(key, what);
    return this.mapOf(key)?.get(key);
  }

  async prefix(prefix: string, what: string): Promise<IKeyValue[]> {
    if (!this.synced) return this.direct.prefix(prefix, what);
    const out: IKeyValue[] = [];
    for (const [key, kv] of this.mapOf(prefix) ?? []) if (key.startsWith(prefix)) out.push(kv);
    return out.sort((a, b) => Buffer.compare(a.key, b.key));
  }

  /** Whether the key exists, or undefined when the copy is not loaded (ask etcd). */
  has(key: string): boolean | undefined {
    return this.synced ? this.mapOf(key)?.has(key) === true : undefined;
  }

  /**
   * Resolves true once the copy holds every change up to `revision` (a write's own revision),
   * false after `timeoutMs` or when the copy is not loaded: then read etcd directly.
   */
  reach(revision: string | bigint, timeoutMs: number): Promise<boolean> {
    const want = BigInt(revision);
    if (this.synced && this.revision >= want) return Promise.resolve(true);
    if (!this.synced) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        revision: want,
        done: (reached: boolean) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private clusterOf(key: string): string {
    return this.keys.clusterOfKey(key) ?? GLOBAL;
  }

  private mapOf(key: string): Map<string, IKeyValue> | undefined {
    return this.byCluster.get(this.clusterOf(key));
  }

  private load(): void {
    if (this.stopped || this.loading) return;
    this.loading = this.loadOnce()
      .catch((err) => {
        this.log?.warn('cannot load the etcd copy; reading etcd directly meanwhile', { error: errorMessage(err) });
        if (!this.stopped) this.retryTimer = setTimeout(() => this.load(), this.retryMs);
      })
      .finally(() => (this.loading = null));
  }

  /** The key ranges to load: the whole prefix but each cluster's history. */
  private async ranges(): Promise<Range[]> {
    const root = Range.prefix(`${this.keys.prefix}/`);
    const clusters = Range.prefix(this.keys.clusters());
    const index = await etcdCall('list clusters', () => this.etcd.getAll().prefix(this.keys.clusterIndex()).keys());
    const names = index.map((k) => k.slice(this.keys.clusterIndex().length));
    return [
      new Range(root.start, clusters.start),
      new Range(clusters.end, root.end),
      ...names.flatMap((name) => {
        const all = Range.prefix(this.keys.cluster(name));
        const history = Range.prefix(this.keys.history(name));
        return [new Range(all.start, history.start), new Range(history.end, all.end)];
      }),
    ];
  }

  private async loadOnce(): Promise<void> {
    const ranges = await this.ranges();
    const reads = await Promise.all(ranges.map((r) => etcdCall('load the etcd copy', () => this.etcd.getAll().inRange(r).exec())));
    const from = reads.reduce((min, r) => (BigInt(r.header.revision) < min ? BigInt(r.header.revision) : min), BigInt(reads[0]!.header.revision));
    this.byCluster.clear();
    for (const res of reads) for (const kv of res.kvs) this.put(kv);
    this.revision = from;
    // Listeners go on before the watch is created: answers that follow its creation in the same
    // read of the stream are emitted before an awaited create() would return.
    const watcher = this.etcd.watch().prefix(`${this.keys.prefix}/`).startRevision(String(from + 1n)).watcher();
    this.watcher = watcher;
    // A watch given up on may still deliver a late answer: only the current one moves the copy.
    watcher.on('data', (res) => {
      if (this.watcher === watcher) this.apply(res);
    });
    const broken = (err: unknown) => {
      if (this.watcher !== watcher) return;
      this.watcher = null;
      this.markStale();
      this.log?.warn('the etcd watch behind the copy broke; loading it again, reading etcd directly meanwhile', { error: errorMessage(err) });
      void watcher.cancel().catch(() => undefined);
      if (!this.stopped) this.retryTimer = setTimeout(() => this.load(), this.retryMs);
    };
    watcher.on('disconnected', broken);
    watcher.on('error', broken);
    // A watch that breaks before it is created has its reload scheduled by `broken` already.
    await new Promise<void>((resolve) => {
      watcher.once('connected', () => resolve());
      watcher.once('error', () => resolve());
      watcher.once('disconnected', () => resolve());
    });
    if (this.stopped || this.watcher !== watcher) return;
    this.synced = true;
    this.loads++;
    this.emit('synced');
    this.wakeWaiters();
  }

  private markStale(): void {
    this.synced = false;
    for (const w of [...this.waiters]) w.done(false);
  }

  private apply(res: IWatchResponse): void {
    for (const event of res.events) {
      const key = event.kv.key.toString();
      if (this.keys.isHistoryKey(key)) continue;
      const changed = event.type === 'Put' ? this.put(event.kv) : this.delete(key, BigInt(event.kv.mod_revision));
      if (changed && this.synced) this.emit('change', key);
    }
    const revision = BigInt(res.header.revision);
    if (revision > this.revision) this.revision = revision;
    this.wakeWaiters();
  }

  /** Holds the value unless the copy has a newer one; true when it changed the copy. */
  private put(kv: IKeyValue): boolean {
    const key = kv.key.toString();
    const cluster = this.clusterOf(key);
    let map = this.byCluster.get(cluster);
    if (!map) this.byCluster.set(cluster, (map = new Map()));
    const held = map.get(key);
    if (held && BigInt(held.mod_revision) >= BigInt(kv.mod_revision)) return false;
    map.set(key, kv);
    return true;
  }

  /** Drops the key unless the copy holds a value written after the delete. */
  private delete(key: string, at: bigint): boolean {
    const map = this.mapOf(key);
    const held = map?.get(key);
    if (!map || !held || BigInt(held.mod_revision) >= at) return false;
    map.delete(key);
    if (map.size === 0) this.byCluster.delete(this.clusterOf(key));
    return true;
  }

  private wakeWaiters(): void {
    for (const w of [...this.waiters]) if (this.revision >= w.revision) w.done(true);
  }
}
