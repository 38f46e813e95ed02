/**
 * How many controller replicas the deployment runs — what the failover quorum is a majority of:
 * `settings/replicas`, set by the operator, and `status/replicas-seen`, the most replicas the
 * leader saw registered together, which stands in when nothing is set. Both change rarely: an
 * idle deployment writes neither.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { MalformedValueError, NotLeaderError } from '../model/errors.js';
import { replicasSeenSchema, replicasSettingSchema, type ReplicasSeen, type ReplicasSetting } from '../model/schemas.js';
import { decodeKv, encode, etcdCall, type ProblemHandler } from './etcd.js';
import { fenced, holdsFence, type Fence } from './fence.js';
import type { Keys } from './keys.js';
import { etcdSource, type KvSource } from './kv-source.js';

export interface ReplicaCounts {
  configured: ReplicasSetting | null;
  seen: ReplicasSeen | null;
  /** Mod revision of the seen key ('0' when absent), for the compare-and-swap that raises it. */
  seenRevision: string;
}

export class ReplicaSettings {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    /** Where reads come from: etcd itself unless a controller gives its mirror (kv-source.ts). */
    private readonly source: KvSource = etcdSource(etcd),
  ) {}

  async read(onProblem?: ProblemHandler): Promise<ReplicaCounts> {
    const [configured, seenKv] = await Promise.all([
      this.source.get(this.keys.replicasSetting(), 'read replica setting'),
      this.source.get(this.keys.replicasSeen(), 'read replicas seen'),
    ]);
    return {
      configured: decodeOrNull(configured, replicasSettingSchema, onProblem),
      seen: decodeOrNull(seenKv, replicasSeenSchema, onProblem),
      seenRevision: seenKv?.mod_revision ?? '0',
    };
  }

  /** Sets (or, with null, removes) the configured replica count. */
  async setConfigured(setting: ReplicasSetting | null): Promise<void> {
    const key = this.keys.replicasSetting();
    if (setting) await etcdCall('write replica setting', () => this.etcd.put(key).value(encode(setting)).exec());
    else await etcdCall('remove replica setting', () => this.etcd.delete().key(key).exec());
  }

  /**
   * Records a new most-replicas-seen, if the stored one is still the one read (at `expectRevision`)
   * and the writer still leads. Returns false when somebody wrote in between (read again).
   */
  async recordSeen(seen: ReplicasSeen, expectRevision: string, fence: Fence): Promise<boolean> {
    const key = this.keys.replicasSeen();
    const res = await etcdCall('record replicas seen', () =>
      fenced(this.etcd.if(key, 'Mod', '==', expectRevision), fence).then(this.etcd.put(key).value(encode(seen))).commit(),
    );
    if (res.succeeded) return true;
    if (!(await holdsFence(this.etcd, fence))) throw new NotLeaderError('replicas seen not recorded: this controller no longer holds the leader lock');
    return false;
  }
}

function decodeOrNull<T extends typeof replicasSettingSchema | typeof replicasSeenSchema>(kv: IKeyValue | undefined, schema: T, onProblem?: ProblemHandler) {
  if (!kv) return null;
  try {
    return decodeKv(kv, schema) as ReturnType<T['parse']>;
  } catch (err) {
    // A malformed value counts as absent (the safer default takes over) and is reported.
    if (err instanceof MalformedValueError) {
      onProblem?.(err);
      return null;
    }
    throw err;
  }
}
