/**
 * The whole etcd key layout of cfgserver, in one place. Nothing else builds a key by hand.
 */
export const DEFAULT_PREFIX = '/cfgserver';

export class Keys {
  readonly prefix: string;

  constructor(prefix = DEFAULT_PREFIX) {
    this.prefix = prefix.replace(/\/+$/, '');
  }

  /** The leader lock: one key, created by the winner, bound to its lease. */
  leader(): string {
    return `${this.prefix}/election/leader`;
  }

  /** Never written: the key a process's start-up access check reads, and would write (etcd-access.ts). */
  accessCheck(): string {
    return `${this.prefix}/access-check`;
  }

  controllers(): string {
    return `${this.prefix}/controllers/`;
  }
  controller(id: string): string {
    return `${this.controllers()}${id}`;
  }

  /** How many controller replicas the deployment runs, set by the operator (`cfgctl replicas set`). */
  replicasSetting(): string {
    return `${this.prefix}/settings/replicas`;
  }
  /** The most replicas seen registered together: the quorum's base when none is set. */
  replicasSeen(): string {
    return `${this.prefix}/status/replicas-seen`;
  }

  clusters(): string {
    return `${this.prefix}/clusters/`;
  }
  cluster(name: string): string {
    return `${this.clusters()}${name}/`;
  }
  spec(name: string): string {
    return `${this.cluster(name)}spec`;
  }
  route(name: string): string {
    return `${this.cluster(name)}route`;
  }
  config(name: string): string {
    return `${this.cluster(name)}config`;
  }
  /** The cluster's Redis credentials (docs/redis-auth.md). */
  auth(name: string): string {
    return `${this.cluster(name)}auth`;
  }
  tasks(name: string): string {
    return `${this.cluster(name)}tasks/`;
  }
  task(name: string, id: string): string {
    return `${this.tasks(name)}${id}`;
  }
  migrations(name: string): string {
    return `${this.cluster(name)}migrations/`;
  }
  migration(name: string, id: string): string {
    return `${this.migrations(name)}${id}`;
  }
  /** Present while the cluster has an unfinished migration (one at a time); holds its id. */
  activeMigration(name: string): string {
    return `${this.cluster(name)}migration`;
  }
  /** Shard splits (docs/split.md); an unfinished one holds `activeMigration` too (one at a time with migrations). */
  splits(name: string): string {
    return `${this.cluster(name)}splits/`;
  }
  split(name: string, id: string): string {
    return `${this.splits(name)}${id}`;
  }
  /** Present while a shard has an unfinished task; holds that task's id. */
  busy(name: string, shard: string): string {
    return `${this.cluster(name)}busy/${shard}`;
  }
  health(name: string): string {
    return `${this.cluster(name)}health/`;
  }
  /** Every view one replica published of a cluster. */
  healthBy(name: string, controller: string): string {
    return `${this.health(name)}${controller}/`;
  }
  healthOf(name: string, controller: string, instance: string): string {
    return `${this.healthBy(name, controller)}${instance}`;
  }
  proxies(name: string): string {
    return `${this.cluster(name)}proxies/`;
  }
  proxy(name: string, id: string): string {
    return `${this.proxies(name)}${id}`;
  }
  history(name: string): string {
    return `${this.cluster(name)}history/`;
  }
  historyEntry(name: string, sortableId: string): string {
    return `${this.history(name)}${sortableId}`;
  }

  /**
   * One empty key per cluster, so that listing clusters reads a key per cluster rather than
   * every key under clusters/ (health, history, tasks of them all).
   */
  clusterIndex(): string {
    return `${this.prefix}/cluster-names/`;
  }
  clusterIndexEntry(name: string): string {
    return `${this.clusterIndex()}${name}`;
  }

  /** The cluster a key belongs to (`clusters/<name>/...`), or null for a key of no cluster. */
  clusterOfKey(key: string): string | null {
    if (!key.startsWith(this.clusters())) return null;
    const slash = key.indexOf('/', this.clusters().length);
    return slash > this.clusters().length ? key.slice(this.clusters().length, slash) : null;
  }

  /** Whether the key is a history entry of some cluster (the controller's etcd copy leaves them out). */
  isHistoryKey(key: string): boolean {
    const cluster = this.clusterOfKey(key);
    return cluster !== null && key.startsWith(this.history(cluster));
  }

  /** The proxy id of a registration key of cluster `name`, or null for another key. */
  parseProxyKey(name: string, key: string): string | null {
    const id = key.startsWith(this.proxies(name)) ? key.slice(this.proxies(name).length) : '';
    return id ? id : null;
  }

  /** [controller, instance] of a health key. */
  parseHealthKey(name: string, key: string): [string, string] | null {
    const rest = key.startsWith(this.health(name)) ? key.slice(this.health(name).length) : null;
    const slash = rest?.indexOf('/') ?? -1;
    return rest && slash > 0 ? [rest.slice(0, slash), rest.slice(slash + 1)] : null;
  }
}
