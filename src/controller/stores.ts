/**
 * The etcd stores a controller replica works with, built from its own etcd client and key layout:
 * the controller talks to the store layer directly, never through the admin service.
 *
 * What the replica reads every cycle but never decides a Redis change on alone — health views,
 * the registry, replica counts, desired configs, credentials, proxy registrations, the cluster
 * list — comes from its etcd copy (store/etcd-mirror.ts). The route, which a leader acts on, and
 * the migration and split records are read from etcd itself; the tasks' keys and revisions too,
 * their values from the copy when it holds them at those revisions.
 */
import type { Etcd3 } from 'etcd3';
import { AuthStore } from '../store/auth-store.js';
import { ClusterStore } from '../store/cluster-store.js';
import { ConfigStore } from '../store/config-store.js';
import { ControllerRegistry } from '../store/controller-registry.js';
import { HealthStore } from '../store/health-store.js';
import { HistoryStore } from '../store/history-store.js';
import type { Keys } from '../store/keys.js';
import type { KvCopy } from '../store/kv-source.js';
import { ProxyRegistry } from '../store/proxy-registry.js';
import { MigrationStore } from '../store/migration-store.js';
import { SplitStore } from '../store/split-store.js';
import { ReplicaSettings } from '../store/replica-settings.js';
import { TaskStore } from '../store/task-store.js';

export interface ControllerStores {
  /** Clusters read from etcd (`get`: what a leader decides on). */
  clusters: ClusterStore;
  /** The cluster list as the etcd copy holds it: what every replica probes. */
  clusterList: ClusterStore;
  tasks: TaskStore;
  history: HistoryStore;
  /** The proxies' registrations, which a barrier waits on. */
  proxies: ProxyRegistry;
  /** Every replica's views of the instances. */
  health: HealthStore;
  /** The live controller replicas (this one registers itself there). */
  registry: ControllerRegistry;
  /** How many replicas the deployment runs: what the failover quorum is a majority of. */
  replicas: ReplicaSettings;
  /** Slot migrations (at most one unfinished per cluster). */
  migrations: MigrationStore;
  /** Shard splits (an unfinished one counts as the cluster's migration). */
  splits: SplitStore;
  /** The desired Redis configuration of each cluster. */
  configs: ConfigStore;
  /** The Redis credentials of each cluster. */
  auth: AuthStore;
}

/** `copy`: the replica's etcd copy; without one every read goes to etcd. */
export function createControllerStores(etcd: Etcd3, keys: Keys, copy?: KvCopy): ControllerStores {
  return {
    clusters: new ClusterStore(etcd, keys),
    clusterList: new ClusterStore(etcd, keys, copy),
    tasks: new TaskStore(etcd, keys, copy),
    history: new HistoryStore(etcd, keys),
    proxies: new ProxyRegistry(etcd, keys, copy),
    health: new HealthStore(etcd, keys, copy),
    registry: new ControllerRegistry(etcd, keys, copy),
    replicas: new ReplicaSettings(etcd, keys, copy),
    migrations: new MigrationStore(etcd, keys),
    splits: new SplitStore(etcd, keys),
    configs: new ConfigStore(etcd, keys, copy),
    auth: new AuthStore(etcd, keys, copy),
  };
}
