import { describe, expect, it } from 'vitest';
import { ConflictError, MalformedValueError, NotFoundError, NotLeaderError, RefusedError } from '../../src/model/errors.js';
import { taskSchema, type Task } from '../../src/model/schemas.js';
import { Keys } from '../../src/store/keys.js';
import { newTaskId } from '../../src/model/task.js';
import { FINISHED_TASKS_KEPT, TaskStore } from '../../src/store/task-store.js';
import { candidate } from '../helpers/election.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();

const CLUSTER = 'tasks';

function setup() {
  const keys = new Keys(randomPrefix());
  return { keys, store: new TaskStore(world.client, keys) };
}

function makeTask(shard: string, overrides: Partial<Task> = {}, at = new Date()): Task {
  const kind = overrides.kind ?? 'failover';
  return taskSchema.parse({
    id: newTaskId(kind, shard, at),
    cluster: CLUSTER,
    kind,
    shard,
    state: 'running',
    next: 'choose',
    oldMaster: '127.0.0.1:7000',
    target: null,
    force: false,
    reason: 'test',
    requestedBy: 'test',
    controller: 'c1',
    createdAt: at.toISOString(),
    updatedAt: at.toISOString(),
    ...overrides,
  });
}

function finished(task: Task, state: 'done' | 'failed' | 'refused' = 'done'): Task {
  return { ...task, state, next: '-', updatedAt: new Date().toISOString() };
}

async function rawGet(key: string): Promise<string | null> {
  return world.client.get(key).string();
}

describe('task store on a real etcd', () => {
  it('creates a task, then lists and gets it, and marks its shard busy', async () => {
    const { keys, store } = setup();
    const task = makeTask('s0');
    const created = await store.create(task);
    expect(created.task).toEqual(task);

    const listed = await store.list(CLUSTER);
    expect(listed).toEqual([{ task, revision: created.revision }]);
    expect(await store.get(CLUSTER, task.id)).toEqual({ task, revision: created.revision });
    expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBe(task.id);

    await expect(store.get(CLUSTER, 'no-such-task')).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.list('another-cluster')).toEqual([]);
  });

  it('lists tasks oldest first', async () => {
    const { store } = setup();
    const base = Date.now();
    const later = makeTask('s1', {}, new Date(base + 5));
    const earlier = makeTask('s0', {}, new Date(base));
    await store.create(later);
    await store.create(earlier);
    expect((await store.list(CLUSTER)).map((t) => t.task.id)).toEqual([earlier.id, later.id]);
  });

  it('refuses a second task for a shard whose task is unfinished, naming the busy task; another shard is free', async () => {
    const { keys, store } = setup();
    const first = makeTask('s0');
    await store.create(first);

    const second = makeTask('s0', { kind: 'switchover', state: 'pending', next: 'check' });
    const refusal = await store.create(second).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refusal).toBeInstanceOf(RefusedError);
    expect((refusal as Error).message).toContain(first.id);
    expect((refusal as Error).message).toContain('s0');
    // Nothing of the refused task was written.
    await expect(store.get(CLUSTER, second.id)).rejects.toBeInstanceOf(NotFoundError);
    expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBe(first.id);

    const other = makeTask('s1');
    await store.create(other);
    expect((await store.list(CLUSTER)).map((t) => t.task.id).sort()).toEqual([first.id, other.id].sort());
  });

  it('a retried create of the same task returns the stored task instead of refusing it', async () => {
    const { store } = setup();
    const task = makeTask('s0');
    const created = await store.create(task);
    const again = await store.create(task);
    expect(again).toEqual(created);
    expect(await store.list(CLUSTER)).toHaveLength(1);
  });

  it('updates at the revision read; a stale revision is a conflict and changes nothing', async () => {
    const { store } = setup();
    const task = makeTask('s0');
    const created = await store.create(task);

    const step1: Task = { ...task, next: 'promote', steps: [{ step: 'choose', at: new Date().toISOString(), durationMs: 3, detail: 'chose x' }] };
    const rev1 = await store.update(step1, created.revision);
    expect(BigInt(rev1)).toBeGreaterThan(BigInt(created.revision));
    expect(await store.get(CLUSTER, task.id)).toEqual({ task: step1, revision: rev1 });

    // A writer that still holds the first revision loses.
    const rival: Task = { ...task, next: 'publish', reason: 'rival' };
    await expect(store.update(rival, created.revision)).rejects.toBeInstanceOf(ConflictError);
    expect(await store.get(CLUSTER, task.id)).toEqual({ task: step1, revision: rev1 });
  });

  it('a retried update that already landed is not a conflict', async () => {
    const { store } = setup();
    const task = makeTask('s0');
    const created = await store.create(task);
    const next: Task = { ...task, next: 'promote' };
    const rev = await store.update(next, created.revision);
    // The same write again, at the same (now old) revision: as when a client retries an applied transaction.
    expect(await store.update(next, created.revision)).toBe(rev);
  });

  it('an update to a final state frees the shard: the busy marker is gone and a new task can be created', async () => {
    for (const state of ['done', 'failed', 'refused'] as const) {
      const { keys, store } = setup();
      const task = makeTask('s0');
      const created = await store.create(task);

      // A non-final update keeps the shard busy.
      const running: Task = { ...task, next: 'promote' };
      const rev = await store.update(running, created.revision);
      expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBe(task.id);
      await expect(store.create(makeTask('s0'))).rejects.toBeInstanceOf(RefusedError);

      await store.update(finished(running, state), rev);
      expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBeNull();

      const next = makeTask('s0', { kind: 'switchover' });
      await store.create(next);
      expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBe(next.id);
      expect((await store.get(CLUSTER, task.id)).task.state).toBe(state);
    }
  });

  it("re-writing a finished task does not free the shard for the task that followed it", async () => {
    const { keys, store } = setup();
    const a = makeTask('s0');
    const createdA = await store.create(a);
    const doneA = finished(a, 'failed');
    const revA = await store.update(doneA, createdA.revision);

    const b = makeTask('s0', { kind: 'switchover' });
    await store.create(b);
    expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBe(b.id);

    // A legitimate update of the finished task A, at its current revision (say, a note added to its error).
    await store.update({ ...doneA, error: 'gave up: no eligible slave' }, revA);

    // b is still running: the shard must still be busy with it, and a third task must be refused.
    expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBe(b.id);
    await expect(store.create(makeTask('s0'))).rejects.toBeInstanceOf(RefusedError);
  });

  it('a fenced create and update land while the fence holds, and are refused once it does not, writing nothing', async () => {
    const { keys, store } = setup();
    const a = await candidate(world.etcd.endpoint, keys, 'a');
    let b: Awaited<ReturnType<typeof candidate>> | null = null;
    try {
      const fenceA = await a.elected;

      // While a leads, its fenced writes land.
      const task = makeTask('s0', { controller: 'a' });
      const created = await store.create(task, fenceA);
      const step: Task = { ...task, next: 'promote' };
      const rev = await store.update(step, created.revision, fenceA);

      // a's lease goes away: the leader key with it.
      await world.client.leaseClient.leaseRevoke({ ID: a.session.leaseId });
      expect(await rawGet(keys.leader())).toBeNull();

      // A create with the dead fence: refused as not-leader, and neither the task nor the busy marker is written.
      const late = makeTask('s1', { controller: 'a' });
      await expect(store.create(late, fenceA)).rejects.toBeInstanceOf(NotLeaderError);
      await expect(store.get(CLUSTER, late.id)).rejects.toBeInstanceOf(NotFoundError);
      expect(await rawGet(keys.busy(CLUSTER, 's1'))).toBeNull();

      // An update with the dead fence, at the right revision: refused, the task unchanged, the shard still busy.
      await expect(store.update(finished(step, 'done'), rev, fenceA)).rejects.toBeInstanceOf(NotLeaderError);
      expect(await store.get(CLUSTER, task.id)).toEqual({ task: step, revision: rev });
      expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBe(task.id);

      // Another replica takes the lock: a's fence still fails (the key exists, with another create revision)...
      b = await candidate(world.etcd.endpoint, keys, 'b');
      const fenceB = await b.elected;
      expect(fenceB.createRevision).not.toBe(fenceA.createRevision);
      await expect(store.update(finished(step, 'failed'), rev, fenceA)).rejects.toBeInstanceOf(NotLeaderError);
      await expect(store.create(late, fenceA)).rejects.toBeInstanceOf(NotLeaderError);
      expect(await store.get(CLUSTER, task.id)).toEqual({ task: step, revision: rev });

      // ...while the new leader's writes land.
      await store.update(finished(step, 'failed'), rev, fenceB);
      expect(await rawGet(keys.busy(CLUSTER, 's0'))).toBeNull();
      await store.create(late, fenceB);
      expect(await rawGet(keys.busy(CLUSTER, 's1'))).toBe(late.id);
    } finally {
      await a.close();
      await b?.close();
    }
  });

  it('reports a malformed task value through onProblem and skips it in the listing', async () => {
    const { keys, store } = setup();
    const good = makeTask('s0');
    await store.create(good);
    const notJson = keys.task(CLUSTER, '000000000000001-failover-s9-aaaa');
    const wrongShape = keys.task(CLUSTER, '000000000000002-failover-s8-bbbb');
    await world.client.put(notJson).value('{not json');
    await world.client.put(wrongShape).value(JSON.stringify({ id: 'x', cluster: CLUSTER, kind: 'reboot' }));

    const problems: MalformedValueError[] = [];
    const listed = await store.list(CLUSTER, (err) => problems.push(err));
    expect(listed.map((t) => t.task)).toEqual([good]);
    expect(problems).toHaveLength(2);
    for (const p of problems) expect(p).toBeInstanceOf(MalformedValueError);
    expect(problems.map((p) => p.key).sort()).toEqual([notJson, wrongShape].sort());

    // Without a callback, the listing still skips them.
    expect((await store.list(CLUSTER)).map((t) => t.task)).toEqual([good]);
    // Reading one directly says what is wrong.
    await expect(store.get(CLUSTER, '000000000000001-failover-s9-aaaa')).rejects.toBeInstanceOf(MalformedValueError);
  });

  it(`keeps the newest ${FINISHED_TASKS_KEPT} finished tasks and trims the older ones, never an unfinished one`, async () => {
    const { keys, store } = setup();
    const base = Date.now() - 3_600_000;
    // An unfinished task older than every finished one: never trimmed.
    const oldRunning = makeTask('s-running', {}, new Date(base - 1000));
    await world.client.put(keys.task(CLUSTER, oldRunning.id)).value(JSON.stringify(oldRunning));
    // Exactly as many finished tasks as are kept, written straight to etcd (oldest first by id).
    const old = Array.from({ length: FINISHED_TASKS_KEPT }, (_, i) => finished(makeTask(`s${i % 7}`, {}, new Date(base + i))));
    await Promise.all(old.map((t) => world.client.put(keys.task(CLUSTER, t.id)).value(JSON.stringify(t))));
    expect(await store.list(CLUSTER)).toHaveLength(FINISHED_TASKS_KEPT + 1);

    // At the limit, creating a task trims nothing.
    const x = makeTask('s-new');
    const createdX = await store.create(x);
    expect(await store.list(CLUSTER)).toHaveLength(FINISHED_TASKS_KEPT + 2);

    // One finished task over the limit: the next create trims the oldest finished one, only it.
    await store.update(finished(x), createdX.revision);
    const y = makeTask('s-new');
    await store.create(y);
    const ids = (await store.list(CLUSTER)).map((t) => t.task.id);
    expect(ids).toHaveLength(FINISHED_TASKS_KEPT + 2);
    expect(ids).not.toContain(old[0]!.id);
    expect(ids).toContain(old[1]!.id);
    expect(ids).toContain(oldRunning.id);
    expect(ids).toContain(x.id);
    expect(ids).toContain(y.id);
    expect(await rawGet(keys.task(CLUSTER, old[0]!.id))).toBeNull();

    // Three more finished tasks over the limit: the three oldest go.
    const extra = [0, 1, 2].map((i) => finished(makeTask('s-extra', {}, new Date(base + FINISHED_TASKS_KEPT + i))));
    await Promise.all(extra.map((t) => world.client.put(keys.task(CLUSTER, t.id)).value(JSON.stringify(t))));
    await store.create(makeTask('s-other'));
    const after = (await store.list(CLUSTER)).map((t) => t.task);
    const finishedAfter = after.filter((t) => t.state === 'done');
    expect(finishedAfter).toHaveLength(FINISHED_TASKS_KEPT);
    for (const gone of old.slice(1, 4)) expect(after.map((t) => t.id)).not.toContain(gone.id);
    expect(after.map((t) => t.id)).toContain(old[4]!.id);
    expect(after.map((t) => t.id)).toContain(oldRunning.id);
  });
});

describe('task store with a controller etcd copy', () => {
  /** A copy that serves whatever it was given: it can be made to lag etcd on purpose. */
  function staleCopy(held: Map<string, import('etcd3').IKeyValue>) {
    return {
      isSynced: () => true,
      get: async (key: string) => held.get(key),
      prefix: async (prefix: string) => [...held.values()].filter((kv) => kv.key.toString().startsWith(prefix)),
    };
  }

  it('lists what etcd has now: values from the copy only when it holds every task at etcd revision', async () => {
    const keys = new Keys(randomPrefix());
    const direct = new TaskStore(world.client, keys);
    const task = makeTask('s0');
    const created = await direct.create(task);
    const held = new Map((await world.client.getAll().prefix(keys.tasks(CLUSTER)).exec()).kvs.map((kv) => [kv.key.toString(), kv] as const));
    const store = new TaskStore(world.client, keys, staleCopy(held));
    expect(await store.list(CLUSTER)).toEqual([{ task, revision: created.revision }]);

    // The copy has not seen the update yet: the list still shows the update, read from etcd.
    const done = finished(task);
    const updated = await direct.update(done, created.revision);
    expect(await store.list(CLUSTER)).toEqual([{ task: done, revision: updated }]);
    // Nor a task created since.
    const second = makeTask('s1', {}, new Date(Date.now() + 1000));
    await direct.create(second);
    expect((await store.list(CLUSTER)).map((t) => t.task.id)).toEqual([task.id, second.id]);
  });

  it('decodes a task once while it does not change, and hands out frozen values', async () => {
    const keys = new Keys(randomPrefix());
    const store = new TaskStore(world.client, keys);
    const task = makeTask('s0');
    const created = await store.create(task);
    const [first] = await store.list(CLUSTER);
    const [again] = await store.list(CLUSTER);
    expect(again).toBe(first);
    expect(Object.isFrozen(first!.task)).toBe(true);
    expect(() => (first!.task.steps as unknown[]).push('x')).toThrow(TypeError);
    await store.update(finished(task), created.revision);
    const [after] = await store.list(CLUSTER);
    expect(after).not.toBe(first);
    expect(after!.task.state).toBe('done');
  });
});
