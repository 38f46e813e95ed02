/**
 * Each controller replica's view of each instance, under `clusters/<c>/health/<controller>/<instance>`,
 * bound to that replica's lease so that a dead replica's views disappear with it.
 */
import type { Etcd3 } from 'etcd3';
import type { HealthViews } from '../model/observations.js';
import { instanceHealthSchema, type InstanceHealth } from '../model/schemas.js';
import { decodeAll, encode, etcdCall, type ProblemHandler } from './etcd.js';
import type { Keys } from './keys.js';
import { etcdSource, type KvSource } from './kv-source.js';

export class HealthStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    /** Where reads come from: etcd itself unless a controller gives its mirror (kv-source.ts). */
    private readonly source: KvSource = etcdSource(etcd),
  ) {}

  /** Writes one view; returns the etcd revision of the write. */
  async put(cluster: string, health: InstanceHealth, leaseId: string): Promise<string> {
    const key = this.keys.healthOf(cluster, health.controller, health.address);
    const res = await etcdCall(`write health of ${health.address}`, () => this.etcd.put(key).value(encode(health)).lease(leaseId).exec());
    return res.header.revision;
  }

  /** Deletes every view this replica published of a cluster: it no longer vouches for them. */
  async withdraw(cluster: string, controller: string): Promise<void> {
    await etcdCall(`withdraw health views of ${controller}`, () => this.etcd.delete().prefix(this.keys.healthBy(cluster, controller)).exec());
  }

  async read(cluster: string, onProblem?: ProblemHandler): Promise<HealthViews> {
    const kvs = await this.source.prefix(this.keys.health(cluster), `read health of ${cluster}`);
    const views: HealthViews = new Map();
    const decoded = decodeAll(kvs, instanceHealthSchema, onProblem, (health, kv) => ({ health, at: this.keys.parseHealthKey(cluster, kv.key.toString()) }));
    for (const { health, at } of decoded) {
      if (!at) continue;
      const byInstance = views.get(at[0]) ?? new Map<string, InstanceHealth>();
      byInstance.set(at[1], health);
      views.set(at[0], byInstance);
    }
    return views;
  }
}
