/**
 * The etcd stores a controller replica works with, built from its own etcd client and key layout:
 * the controller talks to the store layer directly, never through the admin service.
 */
import type { Etcd3 } from 'etcd3';
import { AuthStore } from '../store/auth-store.js';
import { ClusterStore } from '../store/cluster-store.js';
import { ConfigStore } from '../store/config-store.js';
import { ControllerRegistry } from '../store/controller-registry.js';
import { HealthStore } from '../store/health-store.js';
import { HistoryStore } from '../store/history-store.js';
import type { Keys } from '../store/keys.js';
import { ProxyRegistry } from '../store/proxy-registry.js';
import { MigrationStore } from '../store/migration-store.js';
import { SplitStore } from '../store/split-store.js';
import { ReplicaSettings } from '../store/replica-settings.js';
import { TaskStore } from '../store/task-store.js';

export interface ControllerStores {
  clusters: ClusterStore;
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

export function createControllerStores(etcd: Etcd3, keys: Keys): ControllerStores {
  return {
    clusters: new ClusterStore(etcd, keys),
    tasks: new TaskStore(etcd, keys),
    history: new HistoryStore(etcd, keys),
    proxies: new ProxyRegistry(etcd, keys),
    health: new HealthStore(etcd, keys),
    registry: new ControllerRegistry(etcd, keys),
    replicas: new ReplicaSettings(etcd, keys),
    migrations: new MigrationStore(etcd, keys),
    splits: new SplitStore(etcd, keys),
    configs: new ConfigStore(etcd, keys),
    auth: new AuthStore(etcd, keys),
  };
}
