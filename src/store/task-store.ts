/**
 * Tasks (failover, switchover) under `clusters/<c>/tasks/<id>`. Ids sort by creation time. A task
 * is created only if its shard has no unfinished task, and every update compares the revision it
 * read — and, for the leader, its fencing token.
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError, NotFoundError, NotLeaderError, RefusedError } from '../model/errors.js';
import { isTerminal, taskSchema, type Task } from '../model/schemas.js';
import { decodeAll, decodeKv, encode, etcdCall, type ProblemHandler } from './etcd.js';
import { fenced, holdsFence, type Fence } from './fence.js';
import type { Keys } from './keys.js';

export interface StoredTask {
  task: Task;
  revision: string;
}

/** Finished tasks kept per cluster; older ones are trimmed when a new task is created. */
export const FINISHED_TASKS_KEPT = 200;

export class TaskStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
  ) {}

  /** All tasks of a cluster, oldest first. Malformed ones are reported and skipped. */
  async list(cluster: string, onProblem?: ProblemHandler): Promise<StoredTask[]> {
    const res = await etcdCall(`read tasks of ${cluster}`, () => this.etcd.getAll().prefix(this.keys.tasks(cluster)).sort('Key', 'Ascend').exec());
    return decodeAll(res.kvs, taskSchema, onProblem, (task, kv): StoredTask => ({ task, revision: kv.mod_revision }));
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
