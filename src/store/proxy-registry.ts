/**
 * Live proxies of a cluster: `clusters/<c>/proxies/<id>`, each bound to its proxy's lease, with
 * the route epoch it has applied and drained — what the controller's barrier waits on.
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { MalformedValueError, errorMessage } from '../model/errors.js';
import { proxyInfoSchema, type ProxyInfo, type ProxyInfoInput } from '../model/schemas.js';
import { decodeAll, decodeKv, encode, etcdCall, type ProblemHandler } from './etcd.js';
import type { Keys } from './keys.js';
import { etcdSource, type KvSource } from './kv-source.js';

/** One registration as found in etcd: decoded, or the reason it does not decode. */
export type ProxyRegistration = { id: string; info: ProxyInfo; problem?: undefined } | { id: string; info?: undefined; problem: MalformedValueError };

/** What a watch on the registrations reports, in etcd's order. */
export interface RegistrationEvents {
  /** A registration was written (`registration`) or its key deleted (null: lease expired, or the proxy stopped). */
  change(id: string, registration: ProxyRegistration | null): void;
  /** The watch ended (e.g. cancelled by a compaction): read again and watch again. */
  error(err: Error): void;
}

export class ProxyRegistry {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    /** Where reads come from: etcd itself unless a controller gives its mirror (kv-source.ts). */
    private readonly source: KvSource = etcdSource(etcd),
  ) {}

  async put(info: ProxyInfoInput, leaseId: string): Promise<void> {
    await etcdCall('register proxy', () => this.etcd.put(this.keys.proxy(info.cluster, info.id)).value(encode(info)).lease(leaseId).exec());
  }

  async list(cluster: string, onProblem?: ProblemHandler): Promise<ProxyInfo[]> {
    const kvs = await this.source.prefix(this.keys.proxies(cluster), `list proxies of ${cluster}`);
    return decodeAll(kvs, proxyInfoSchema, onProblem).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Every registration of the cluster, malformed ones included, and the etcd revision they were read at. */
  async snapshot(cluster: string): Promise<{ revision: bigint; registrations: ProxyRegistration[] }> {
    const res = await etcdCall(`read proxies of ${cluster}`, () => this.etcd.getAll().prefix(this.keys.proxies(cluster)).exec());
    const registrations = res.kvs.flatMap((kv) => {
      const registration = this.registration(cluster, kv);
      return registration ? [registration] : [];
    });
    return { revision: BigInt(res.header.revision), registrations };
  }

  /**
   * Watches the cluster's registrations from `fromRevision` (the snapshot's revision + 1, so that
   * no change between the read and the watch is missed). etcd3 resumes a disconnected watch from
   * the last revision it delivered; only a watch that ends (`error`) needs a new snapshot.
   */
  async watch(cluster: string, fromRevision: bigint, on: RegistrationEvents): Promise<{ cancel(): Promise<void> }> {
    const watcher: Watcher = await etcdCall(`watch proxies of ${cluster}`, () =>
      this.etcd.watch().prefix(this.keys.proxies(cluster)).startRevision(fromRevision.toString()).create(),
    );
    watcher.on('put', (kv) => {
      const registration = this.registration(cluster, kv);
      if (registration) on.change(registration.id, registration);
    });
    watcher.on('delete', (kv) => {
      const id = this.keys.parseProxyKey(cluster, kv.key.toString());
      if (id) on.change(id, null);
    });
    watcher.on('error', (err) => on.error(err instanceof Error ? err : new Error(errorMessage(err))));
    return { cancel: () => watcher.cancel().catch(() => undefined) };
  }

  private registration(cluster: string, kv: IKeyValue): ProxyRegistration | null {
    const id = this.keys.parseProxyKey(cluster, kv.key.toString());
    if (!id) return null;
    try {
      return { id, info: decodeKv(kv, proxyInfoSchema) };
    } catch (err) {
      if (err instanceof MalformedValueError) return { id, problem: err };
      throw err;
    }
  }
}
