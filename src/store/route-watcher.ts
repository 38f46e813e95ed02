/**
 * RouteWatcher: how a Node program (the proxy, a smart client, a benchmark) follows the route of
 * one cluster. It reads the route at start-up, then watches it. It never applies an older or equal
 * epoch, keeps its last good route while etcd is unreachable or a value is malformed, and emits
 * every change it applies.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { MalformedValueError, errorMessage } from '../model/errors.js';
import { routeSchema, type Route } from '../model/schemas.js';
import { createEtcd, decodeKv, etcdCall, type EtcdOptions } from './etcd.js';
import { Keys } from './keys.js';

export interface RouteWatcherOptions {
  cluster: string;
  /** An etcd client to share, or the options to create one (closed by stop()). */
  etcd: Etcd3 | EtcdOptions;
  prefix?: string;
  /** Delay between attempts while etcd cannot be read. */
  retryMs?: number;
}

export interface RouteWatcherEvents {
  /** A newer route was applied. */
  change: [route: Route, previous: Route | null];
  /** A value in etcd did not decode, or was not newer; the last good route stays. */
  invalid: [error: Error];
  /** etcd could not be reached; the last good route stays. */
  unreachable: [error: Error];
  /** The route key was deleted (the cluster was deleted); the last good route stays. */
  deleted: [];
}

export class RouteWatcher extends EventEmitter<RouteWatcherEvents> {
  private route: Route | null = null;
  private watcher: Watcher | null = null;
  private stopped = false;
  private readonly etcd: Etcd3;
  private readonly ownsClient: boolean;
  private readonly key: string;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RouteWatcherOptions) {
    super();
    this.ownsClient = !('watch' in options.etcd);
    this.etcd = 'watch' in options.etcd ? options.etcd : createEtcd(options.etcd);
    this.key = new Keys(options.prefix).route(options.cluster);
  }

  /** The route in use, or null before the first good one. */
  current(): Route | null {
    return this.route;
  }

  /** Reads the route (retrying until etcd answers) and starts watching. Resolves with the route read, if any. */
  async start(): Promise<Route | null> {
    await this.connect();
    return this.route;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = null;
    if (this.ownsClient) this.etcd.close();
  }

  private async connect(): Promise<void> {
    while (!this.stopped) {
      try {
        const res = await etcdCall('read route', () => this.etcd.get(this.key).exec());
        const kv = res.kvs[0];
        if (kv) this.apply(kv);
        await this.watchFrom(BigInt(res.header.revision) + 1n);
        return;
      } catch (err) {
        this.emit('unreachable', err instanceof Error ? err : new Error(errorMessage(err)));
        await new Promise((r) => setTimeout(r, this.options.retryMs ?? 1000));
      }
    }
  }

  private async watchFrom(revision: bigint): Promise<void> {
    const watcher = await this.etcd.watch().key(this.key).startRevision(revision.toString()).create();
    if (this.stopped) return void (await watcher.cancel());
    this.watcher = watcher;
    watcher.on('put', (kv) => this.apply(kv));
    watcher.on('delete', () => this.emit('deleted'));
    watcher.on('disconnected', (err) => this.emit('unreachable', err));
    // A watch cancelled by compaction (or anything else) ends: read again, then watch again.
    watcher.on('error', (err) => {
      this.emit('unreachable', err);
      void watcher.cancel().catch(() => undefined);
      if (this.watcher === watcher) this.watcher = null;
      if (!this.stopped) this.restartTimer = setTimeout(() => void this.connect(), this.options.retryMs ?? 1000);
    });
  }

  private apply(kv: IKeyValue): void {
    let next: Route;
    try {
      next = decodeKv(kv, routeSchema);
    } catch (err) {
      this.emit('invalid', err as MalformedValueError);
      return;
    }
    if (next.cluster !== this.options.cluster) {
      this.emit('invalid', new MalformedValueError(kv.key.toString(), `route names cluster ${next.cluster}, expected ${this.options.cluster}`));
      return;
    }
    const previous = this.route;
    if (previous && next.epoch <= previous.epoch) {
      if (next.epoch < previous.epoch) this.emit('invalid', new MalformedValueError(kv.key.toString(), `epoch ${next.epoch} is older than the applied epoch ${previous.epoch}; ignored`));
      return;
    }
    this.route = next;
    this.emit('change', next, previous);
  }
}
