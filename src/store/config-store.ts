/**
 * The desired Redis configuration of each cluster, one key (`clusters/<c>/config`). Writes compare
 * the revision read ('0': absent), and a leader's are fenced: a racing writer gets a ConflictError,
 * a deposed leader a NotLeaderError.
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError, NotLeaderError } from '../model/errors.js';
import { EMPTY_CONFIG, redisConfigSchema, type RedisConfig } from '../model/redis-config.js';
import { decodeKv, encode, etcdCall } from './etcd.js';
import { fenced, holdsFence, type Fence } from './fence.js';
import type { Keys } from './keys.js';
import { etcdSource, type KvSource } from './kv-source.js';

export interface StoredConfig {
  config: RedisConfig;
  /** Mod revision of the key, '0' when no config was ever written. */
  revision: string;
}

export class ConfigStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    /** Where reads come from: etcd itself unless a controller gives its mirror (kv-source.ts). */
    private readonly source: KvSource = etcdSource(etcd),
  ) {}

  /** The desired config; an empty one when none is set. A malformed value throws MalformedValueError. */
  async read(cluster: string): Promise<StoredConfig> {
    const kv = await this.source.get(this.keys.config(cluster), `read config of ${cluster}`);
    return kv ? { config: decodeKv(kv, redisConfigSchema), revision: kv.mod_revision } : { config: EMPTY_CONFIG, revision: '0' };
  }

  /** Writes the config if it is still at `expectRevision` (and the fence, if any, holds); returns the new revision. */
  async write(cluster: string, config: RedisConfig, expectRevision: string, fence?: Fence): Promise<string> {
    const key = this.keys.config(cluster);
    const res = await etcdCall(`write config of ${cluster}`, () => fenced(this.etcd.if(key, 'Mod', '==', expectRevision), fence).then(this.etcd.put(key).value(encode(config))).commit());
    if (res.succeeded) return res.header.revision;
    if (fence && !(await holdsFence(this.etcd, fence))) throw new NotLeaderError(`config of ${cluster} not written: this controller no longer holds the leader lock`);
    throw new ConflictError(`the config of ${cluster} changed since it was read; read it again`);
  }
}
