/**
 * Clusters in etcd: the spec and the route of each cluster. Every change is a transaction that
 * compares the revision it read, so two admins racing never overwrite each other.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { closest } from '../util/suggest.js';
import { AlreadyExistsError, ConflictError, MalformedValueError, NotFoundError, NotLeaderError, RefusedError } from '../model/errors.js';
import { clusterSpecSchema, routeSchema, type ClusterSpec, type Route } from '../model/schemas.js';
import { decodeKv, encode, etcdCall } from './etcd.js';
import { fenced, holdsFence, type Fence } from './fence.js';
import { Keys } from './keys.js';
import type { KvSource } from './kv-source.js';

/** A cluster as read from etcd, with the revisions that a later write must compare. */
export interface StoredCluster {
  spec: ClusterSpec;
  route: Route;
  specRevision: string;
  routeRevision: string;
}

export interface ClusterListing {
  clusters: StoredCluster[];
  /** Values that did not decode: reported, never fatal. */
  problems: MalformedValueError[];
}

export class ClusterStore {
  constructor(
    private readonly etcd: Etcd3,
    readonly keys: Keys,
    /** A controller's etcd copy (etcd-mirror.ts), which `list` then reads instead of etcd. */
    private readonly copy?: KvSource,
  ) {}

  /** The current etcd revision; epochs of new routes start above it so that they only ever grow. */
  async currentRevision(): Promise<number> {
    const res = await etcdCall('read revision', () => this.etcd.get(this.keys.leader()).exec());
    return Number(res.header.revision);
  }

  async get(name: string): Promise<StoredCluster> {
    const res = await etcdCall(`read cluster ${name}`, () =>
      this.etcd
        .if(this.keys.spec(name), 'Version', '>', 0)
        .then(this.etcd.get(this.keys.spec(name)), this.etcd.get(this.keys.route(name)))
        .commit(),
    );
    const specKv = res.responses[0]?.response_range.kvs[0];
    const routeKv = res.responses[1]?.response_range.kvs[0];
    if (!res.succeeded || !specKv) throw new NotFoundError(`cluster ${name} does not exist${await this.didYouMean(name)}`);
    if (!routeKv) throw new MalformedValueError(this.keys.route(name), 'the cluster has a spec but no route');
    return this.decode(specKv, routeKv);
  }

  /** A cluster as the copy holds it (it may lag etcd by a watch event: never for decisions). */
  private async copied(copy: KvSource, name: string): Promise<StoredCluster> {
    const [specKv, routeKv] = await Promise.all([copy.get(this.keys.spec(name), `read cluster ${name}`), copy.get(this.keys.route(name), `read cluster ${name}`)]);
    if (!specKv) throw new NotFoundError(`cluster ${name} does not exist`);
    if (!routeKv) throw new MalformedValueError(this.keys.route(name), 'the cluster has a spec but no route');
    return this.decode(specKv, routeKv);
  }

  /** ": did you mean x?" when a known cluster's name is close to `name`; "" otherwise (or when etcd cannot say). */
  private async didYouMean(name: string): Promise<string> {
    try {
      const names = (await this.etcd.getAll().prefix(this.keys.clusterIndex()).keys()).map((k) => k.slice(this.keys.clusterIndex().length));
      const near = closest(name, names);
      return near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : '';
    } catch {
      return '';
    }
  }

  async list(): Promise<ClusterListing> {
    const keys = this.copy ? (await this.copy.prefix(this.keys.clusterIndex(), 'list clusters')).map((kv) => kv.key.toString()) : await etcdCall('list clusters', () => this.etcd.getAll().prefix(this.keys.clusterIndex()).keys());
    const names = keys.map((k) => k.slice(this.keys.clusterIndex().length));
    const listing: ClusterListing = { clusters: [], problems: [] };
    for (const name of names.sort()) {
      try {
        listing.clusters.push(await (this.copy ? this.copied(this.copy, name) : this.get(name)));
      } catch (err) {
        if (err instanceof MalformedValueError) listing.problems.push(err);
        else if (!(err instanceof NotFoundError)) throw err; // deleted while we listed
      }
    }
    return listing;
  }

  async create(spec: ClusterSpec, route: Route): Promise<void> {
    const res = await etcdCall(`create cluster ${spec.name}`, () =>
      this.etcd
        .if(this.keys.spec(spec.name), 'Create', '==', 0)
        .then(
          this.etcd.put(this.keys.spec(spec.name)).value(encode(spec)),
          this.etcd.put(this.keys.route(spec.name)).value(encode(route)),
          this.etcd.put(this.keys.clusterIndexEntry(spec.name)).value(''),
        )
        .commit(),
    );
    if (!res.succeeded) {
      // A retried transaction that was applied the first time also fails its compare: check.
      const now = await this.get(spec.name).catch(() => null);
      if (now && now.spec.createdAt === spec.createdAt && now.route.epoch === route.epoch) return;
      throw new AlreadyExistsError(`cluster ${spec.name} already exists`);
    }
  }

  /**
   * Writes a new route if the stored one is still at `expectRevision`. With a fence, the write
   * also requires that the writer still holds the leader lock.
   */
  async writeRoute(route: Route, expectRevision: string, fence?: Fence): Promise<string> {
    const key = this.keys.route(route.cluster);
    const txn = fenced(this.etcd.if(key, 'Mod', '==', expectRevision), fence);
    const res = await etcdCall(`write route of ${route.cluster}`, () => txn.then(this.etcd.put(key).value(encode(route))).commit());
    if (res.succeeded) return res.header.revision;
    const now = await this.get(route.cluster);
    if (now.route.epoch === route.epoch && encode(now.route) === encode(route)) return now.routeRevision;
    if (fence && !(await holdsFence(this.etcd, fence))) throw new NotLeaderError(`route of ${route.cluster} not written: this controller no longer holds the leader lock`);
    throw new ConflictError(`route of ${route.cluster} changed since it was read (now epoch ${now.route.epoch}); read it again and retry`);
  }

  /**
   * Writes a new spec if the stored one is still at `expectRevision`. `unlessMigrating`: and only
   * if the cluster has no unfinished slot migration (else RefusedError with `refusal`).
   */
  async writeSpec(spec: ClusterSpec, expectRevision: string, options: { unlessMigrating?: boolean; refusal?: string } = {}): Promise<void> {
    const key = this.keys.spec(spec.name);
    const activeMigration = this.keys.activeMigration(spec.name);
    let txn = this.etcd.if(key, 'Mod', '==', expectRevision);
    if (options.unlessMigrating) txn = txn.and(activeMigration, 'Create', '==', 0);
    const res = await etcdCall(`write spec of ${spec.name}`, () => txn.then(this.etcd.put(key).value(encode(spec))).commit());
    if (res.succeeded) return;
    if (options.unlessMigrating) {
      const migrating = await etcdCall(`read active migration of ${spec.name}`, () => this.etcd.get(activeMigration).exec());
      if (migrating.kvs.length > 0) throw new RefusedError(options.refusal ?? `cluster ${spec.name} has a slot migration under way`);
    }
    throw new ConflictError(`cluster ${spec.name} changed since it was read; read it again and retry`);
  }

  async delete(name: string): Promise<void> {
    const res = await etcdCall(`delete cluster ${name}`, () =>
      this.etcd
        .if(this.keys.spec(name), 'Version', '>', 0)
        .then(this.etcd.delete().prefix(this.keys.cluster(name)), this.etcd.delete().key(this.keys.clusterIndexEntry(name)))
        .commit(),
    );
    if (!res.succeeded) throw new NotFoundError(`cluster ${name} does not exist`);
  }

  private decode(specKv: IKeyValue, routeKv: IKeyValue): StoredCluster {
    return {
      spec: decodeKv(specKv, clusterSpecSchema),
      route: decodeKv(routeKv, routeSchema),
      specRevision: specKv.mod_revision,
      routeRevision: routeKv.mod_revision,
    };
  }
}
