/**
 * Tasks (failover, switchover) under `clusters/<c>/tasks/<id>`. Ids sort by creation time. A task
 * is created only if its shard has no unfinished task, and every update compares the revision it
 * read — and, for the leader, its fencing token.
 */
import { Range, type Etcd3, type IKeyValue } from 'etcd3';
import { ConflictError, MalformedValueError, NotFoundError, NotLeaderError, RefusedError } from '../model/errors.js';
import { isTerminal, taskSchema, type Task } from '../model/schemas.js';
import { decodeKv, encode, etcdCall, type ProblemHandler } from './etcd.js';
import { fenced, holdsFence, type Fence } from './fence.js';
import type { Keys } from './keys.js';
import type { KvCopy } from './kv-source.js';

export interface StoredTask {
  task: Task;
  revision: string;
}

/** Finished tasks kept per cluster; older ones are trimmed when a new task is created. */
export const FINISHED_TASKS_KEPT = 200;

export class TaskStore {
  /**
   * Tasks decoded before, per cluster and key, with the revision they were decoded at: a leader lists a
   * cluster's tasks (up to FINISHED_TASKS_KEPT of them) every cycle, and they rarely change.
   * Frozen, since every caller shares them.
   */
  private readonly decoded = new Map<string, Map<string, StoredTask>>();

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    /** A controller's etcd copy: `list` then asks etcd only for the keys and their revisions. */
    private readonly copy?: KvCopy,
  ) {}

  /** All tasks of a cluster, oldest first, as etcd has them now. Malformed ones are reported and skipped. */
  async list(cluster: string, onProblem?: ProblemHandler): Promise<StoredTask[]> {
    const kvs = await this.currentValues(cluster);
    // Per cluster, and only the tasks listed now: a trimmed task is forgotten with its cluster's old map.
    const before = this.decoded.get(cluster);
    const now = new Map<string, StoredTask>();
    const out: StoredTask[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString();
      let stored = before?.get(key);
      if (stored?.revision !== kv.mod_revision) {
        try {
          stored = deepFreeze({ task: decodeKv(kv, taskSchema), revision: kv.mod_revision });
        } catch (err) {
          if (!(err instanceof MalformedValueError)) throw err;
          onProblem?.(err);
          continue;
        }
      }
      now.set(key, stored);
      out.push(stored);
    }
    this.decoded.set(cluster, now);
    return out;
  }

  /**
   * The values of the cluster's tasks as etcd has them now. With a copy: one keys-only read from
   * etcd (fresh: what a leader acts on), and the values from the copy when it holds every key at
   * that revision — the whole values from etcd otherwise (a change the copy has not seen yet).
   */
  private async currentValues(cluster: string): Promise<IKeyValue[]> {
    const prefix = this.keys.tasks(cluster);
    const what = `read tasks of ${cluster}`;
    const copy = this.copy;
    if (copy?.isSynced()) {
      const range = Range.prefix(prefix);
      const fresh = await etcdCall(what, () => this.etcd.kv.range({ key: range.start, range_end: range.end, keys_only: true, sort_order: 'Ascend', sort_target: 'Key' }));
      const held = await Promise.all(fresh.kvs.map((kv) => copy.get(kv.key.toString(), what)));
      if (copy.isSynced() && held.every((h, i) => h !== undefined && h.mod_revision === fresh.kvs[i]!.mod_revision)) return held as IKeyValue[];
    }
    return (await etcdCall(what, () => this.etcd.getAll().prefix(prefix).sort('Key', 'Ascend').exec())).kvs;
  }

  async get(cluster: string, id: string): Promise<StoredTask> {
    const res = await etcdCall(`read task ${id}`, () => this.etcd.get(this.keys.task(cluster, id)).exec());
    const kv = res.kvs[0];
    if (!kv) throw new NotFoundError(`cluster ${cluster} has no task ${id}`);
    return { task: decodeKv(kv, taskSchema), revision: kv.mod_revision };
  }

  /**
   * Creates a task if its shard has no unfinished one: the shard's busy marker is created in the
   * same transaction, so two creators (an admin and the leader, say) cannot both succeed.
   */
  async create(task: Task, fence?: Fence): Promise<StoredTask> {
    const busyKey = this.keys.busy(task.cluster, task.shard);
    const txn = fenced(this.etcd.if(busyKey, 'Create', '==', 0), fence);
    const res = await etcdCall('create task', () =>
      txn
        .then(this.etcd.put(busyKey).value(task.id), this.etcd.put(this.keys.task(task.cluster, task.id)).value(encode(task)))
        .else(this.etcd.get(busyKey))
        .commit(),
    );
    if (!res.succeeded) {
      const holder = res.responses[0]?.response_range.kvs[0]?.value.toString();
      if (holder === task.id) return this.get(task.cluster, task.id); // our retried create did land
      if (holder) throw new RefusedError(`shard ${task.shard} is busy with task ${holder}`);
      throw new NotLeaderError('task not created: this controller no longer holds the leader lock');
    }
    await this.trim(task.cluster);
    return { task, revision: res.header.revision };
  }

  /**
   * Writes a new version of a task if it is still at `expectRevision` (and the fence holds).
   * A task that reaches a final state frees its shard in the same transaction.
   */
  /** `also`: more keys written in the same transaction (the step's history entry). */
  async update(task: Task, expectRevision: string, fence?: Fence, also: { key: string; value: string }[] = []): Promise<string> {
    const key = this.keys.task(task.cluster, task.id);
    const busyKey = this.keys.busy(task.cluster, task.shard);
    const write = (freeShard: boolean) => {
      let txn = fenced(this.etcd.if(key, 'Mod', '==', expectRevision), fence);
      // Free the shard only if it is still this task's: a finished task re-written later must
      // not free the shard for the task that came after it.
      if (freeShard) txn = txn.and(busyKey, 'Value', '==', task.id);
      const extra = also.map((x) => this.etcd.put(x.key).value(x.value));
      const ops = freeShard ? [this.etcd.put(key).value(encode(task)), this.etcd.delete().key(busyKey), ...extra] : [this.etcd.put(key).value(encode(task)), ...extra];
      return etcdCall(`update task ${task.id}`, () => txn.then(...ops).commit());
    };
    let res = await write(isTerminal(task));
    if (!res.succeeded && isTerminal(task)) res = await write(false); // the shard was not ours to free
    if (res.succeeded) return res.header.revision;
    const now = await this.get(task.cluster, task.id).catch(() => null);
    if (now && encode(now.task) === encode(task)) return now.revision; // our retried write did land
    if (fence && !(await holdsFence(this.etcd, fence))) throw new NotLeaderError(`task ${task.id} not updated: this controller no longer holds the leader lock`);
    throw new ConflictError(`task ${task.id} changed since it was read`);
  }

  private async trim(cluster: string): Promise<void> {
    const finished = (await this.list(cluster)).filter((t) => isTerminal(t.task));
    for (const t of finished.slice(0, Math.max(0, finished.length - FINISHED_TASKS_KEPT))) {
      await etcdCall('trim tasks', () => this.etcd.delete().key(this.keys.task(cluster, t.task.id)).exec());
    }
  }
}

/** Freezes a decoded value and everything in it (shared between callers: nobody may change it). */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
