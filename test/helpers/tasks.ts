/**
 * Following tasks and writing through a failover in integration tests.
 */
import type { Redis } from 'ioredis';
import { waitFor } from '../../src/playground/processes.js';
import { isTerminal, type Task } from '../../src/model/schemas.js';
import type { AdminService } from '../../src/service/admin-service.js';
import type { RouteWatcher } from '../../src/store/route-watcher.js';

export async function leaderIs(admin: AdminService, id: string): Promise<void> {
  await waitFor(`${id} to lead`, async () => (await admin.controllers.leader())?.controller === id, 15_000);
}

/** Waits until the task satisfies `check` (e.g. reached a step), and returns it. */
export async function taskWhen(admin: AdminService, cluster: string, id: string, what: string, check: (t: Task) => boolean, timeoutMs = 20_000): Promise<Task> {
  return waitFor(`task ${id} ${what}`, async () => {
    const t = await admin.getTask(cluster, id);
    return check(t) ? t : null;
  }, timeoutMs);
}

export function taskEnded(admin: AdminService, cluster: string, id: string, timeoutMs = 20_000): Promise<Task> {
  return taskWhen(admin, cluster, id, 'to end', isTerminal, timeoutMs);
}

export interface Writer {
  /** Indexes of acknowledged writes `w:<i>` (value `<i>`). */
  acked: number[];
  errors: number;
  stop(): Promise<void>;
}

/**
 * One SET in flight at a time, to whatever master the route names now (as a smart client
 * would), until stopped or `maxWrites` were acknowledged. Errors are counted, not acknowledged.
 */
export function writeContinuously(watcher: RouteWatcher, at: (address: string) => Redis, shard = 0, maxWrites = 200_000): Writer {
  return writeUntilStopped(() => at(watcher.current()!.shards[shard]!.master), maxWrites, 120_000);
}

/** The same through one client (a proxy's), each SET retried until acknowledged. */
export function writeThrough(client: Redis, maxWrites = 100_000, maxMs = 90_000): Writer {
  return writeUntilStopped(() => client, maxWrites, maxMs);
}

/** Bounded in count and time: it stops by itself after `maxWrites` acknowledged or `maxMs`. */
function writeUntilStopped(target: () => Redis, maxWrites: number, maxMs: number): Writer {
  let stopped = false;
  const deadline = Date.now() + maxMs;
  const w: Writer = { acked: [], errors: 0, stop: async () => { stopped = true; await loop; } };
  const loop = (async () => {
    for (let i = 0; !stopped && w.acked.length < maxWrites && Date.now() < deadline; ) {
      try {
        await target().set(`w:${i}`, String(i));
        w.acked.push(i);
        i++;
      } catch {
        w.errors++;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  })();
  return w;
}

/** The acknowledged writes that `client` does not hold with their value. */
export async function missingWrites(client: Redis, acked: number[]): Promise<number[]> {
  const missing: number[] = [];
  for (let from = 0; from < acked.length; from += 500) {
    const batch = acked.slice(from, from + 500);
    const values = await client.mget(...batch.map((i) => `w:${i}`));
    batch.forEach((i, k) => values[k] !== String(i) && missing.push(i));
  }
  return missing;
}
