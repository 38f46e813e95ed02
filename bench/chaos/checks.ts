/**
 * The chaos runner's verdicts. Every acknowledged write is read back through a proxy and from the
 * master the final route names for its slot; etcd's own history says whether route epochs only
 * grew and whether every route and task write fell inside its writer's leadership term.
 */
import { Redis } from 'ioredis';
import { slotOwners } from '../../src/model/route.js';
import { keySlot } from '../../src/model/slot.js';
import type { Route } from '../../src/model/schemas.js';
import type { DirectClients } from './health.js';
import { termAt, type EtcdHistory } from './history.js';
import type { Load, SeqKeyState } from './load.js';

export interface CheckResult {
  name: string;
  pass: boolean;
  detail: string;
}

export interface LostWrite {
  key: string;
  /** When the write that is gone (or overwritten by an older one) was acknowledged. */
  ackedAt: number;
  what: string;
}

export interface FinalValues {
  viaProxy: Map<string, string | null>;
  direct: Map<string, string | null>;
}

const BATCH = 500;

async function getAll(client: Redis, keys: string[], into: Map<string, string | null>): Promise<void> {
  for (let i = 0; i < keys.length; i += BATCH) {
    const batch = keys.slice(i, i + BATCH);
    const pipeline = client.pipeline();
    for (const k of batch) pipeline.get(k);
    const replies = (await pipeline.exec()) ?? [];
    batch.forEach((k, j) => {
      const [err, value] = replies[j] ?? [new Error('no reply'), null];
      if (err) throw new Error(`GET ${k}: ${errorText(err)}`);
      into.set(k, value as string | null);
    });
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Every key a writer wrote or tried to, read back through the proxy on `proxyPort` and from the owning masters. */
export async function readBack(load: Load, route: Route, proxyPort: number, direct: DirectClients): Promise<FinalValues> {
  const keys = [...load.seq.flatMap((w) => [...w.keys.keys()]), ...load.unique.flatMap((w) => [...w.acked.keys()])];
  const viaProxy = new Map<string, string | null>();
  const proxy = new Redis({ host: '127.0.0.1', port: proxyPort, maxRetriesPerRequest: 3, commandTimeout: 10_000 });
  proxy.on('error', () => undefined);
  try {
    await getAll(proxy, keys, viaProxy);
  } finally {
    proxy.disconnect();
  }
  const owners = slotOwners(route);
  const byMaster = new Map<string, string[]>();
  for (const k of keys) {
    const master = route.shards[owners[keySlot(k, route.slotCount)]!]!.master;
    const own = byMaster.get(master);
    if (own) own.push(k);
    else byMaster.set(master, [k]);
  }
  const values = new Map<string, string | null>();
  for (const [master, own] of byMaster) await getAll(await direct.ready(master), own, values);
  return { viaProxy, direct: values };
}

/** What the writers recorded: per sequence key its state, per unique key when it was acknowledged. */
export interface Acknowledged {
  seq: { keys: Map<string, SeqKeyState> }[];
  unique: { acked: Map<string, number> }[];
}

/** Acknowledged writes that are missing, or whose key holds an older value, in one read of the final values. */
export function lostWrites(load: Acknowledged, values: Map<string, string | null>): { lost: LostWrite[]; lateLandings: number } {
  const lost: LostWrite[] = [];
  let lateLandings = 0;
  for (const w of load.unique) {
    for (const [key, ackedAt] of w.acked) if (values.get(key) !== '1') lost.push({ key, ackedAt, what: `missing (found ${values.get(key) ?? 'nil'})` });
  }
  for (const w of load.seq) {
    for (const [key, s] of w.keys) {
      if (s.lastAcked === 0) continue;
      const value = values.get(key);
      const found = value === null || value === undefined ? null : Number(value);
      if (found === null) lost.push({ key, ackedAt: s.lastAckedAt, what: `missing (last acknowledged seq ${s.lastAcked})` });
      else if (found < s.lastAcked) {
        // An older write whose outcome the client never learned may land late: not a loss.
        if (s.mayHaveRun.has(found)) lateLandings++;
        else lost.push({ key, ackedAt: s.lastAckedAt, what: `older: ${found} < last acknowledged ${s.lastAcked}` });
      }
    }
  }
  return { lost, lateLandings };
}

/** Route epochs, in etcd's order of writes, strictly increase. */
export function epochsGrow(history: EtcdHistory): CheckResult {
  const backwards: string[] = [];
  for (let i = 1; i < history.routes.length; i++) {
    const [a, b] = [history.routes[i - 1]!, history.routes[i]!];
    if (b.epoch <= a.epoch) backwards.push(`rev ${b.revision}: epoch ${b.epoch} after ${a.epoch}`);
  }
  return {
    name: 'route epochs only grow',
    pass: backwards.length === 0,
    detail: `${history.routes.length} route writes${backwards.length ? `; backwards: ${backwards.slice(0, 5).join('; ')}` : ''}`,
  };
}

/**
 * Every route write falls inside some leadership term (the product fences it with a txn on the
 * leader key), and every task write naming a controller falls inside that controller's term.
 * Task writes without a controller are requests from an admin, not leader writes.
 */
export function writesFenced(history: EtcdHistory): CheckResult {
  const bad: string[] = [];
  for (const r of history.routes) if (!termAt(history.terms, r.revision)) bad.push(`route epoch ${r.epoch} at rev ${r.revision} with no leader`);
  let leaderTaskWrites = 0;
  for (const { revision, task } of history.tasks) {
    if (task.controller === null) continue;
    leaderTaskWrites++;
    const term = termAt(history.terms, revision);
    if (term?.holder !== task.controller) bad.push(`task ${task.id} (${task.state}, next ${task.next}) by ${task.controller} at rev ${revision}, leader then: ${term?.holder ?? 'none'}`);
  }
  return {
    name: 'no route or task write outside its writer\'s leadership',
    pass: bad.length === 0,
    detail: `${history.routes.length} route writes, ${leaderTaskWrites} leader task writes, ${history.terms.length} terms${bad.length ? `; outside: ${bad.slice(0, 5).join('; ')}` : ''}`,
  };
}

export function decoded(history: EtcdHistory): CheckResult {
  return { name: 'every route and task value in etcd decodes', pass: history.undecodable.length === 0, detail: history.undecodable.slice(0, 3).join('; ') || `${history.routes.length + history.tasks.length} values` };
}

export function agree(values: FinalValues): CheckResult {
  const differ = [...values.viaProxy].filter(([k, v]) => values.direct.get(k) !== v);
  return {
    name: 'proxy and masters return the same values',
    pass: differ.length === 0,
    detail: `${values.viaProxy.size} keys${differ.length ? `; ${differ.length} differ, e.g. ${differ.slice(0, 3).map(([k, v]) => `${k}: ${v} vs ${values.direct.get(k)}`).join(', ')}` : ''}`,
  };
}

/** Tasks that reached `done`, by kind, with the revision of that write. */
export function finishedTasks(history: EtcdHistory): { id: string; kind: string; revision: number }[] {
  const seen = new Set<string>();
  const out: { id: string; kind: string; revision: number }[] = [];
  for (const { revision, task } of history.tasks) {
    if (task.state !== 'done' || seen.has(task.id)) continue;
    seen.add(task.id);
    out.push({ id: task.id, kind: task.kind, revision });
  }
  return out;
}
