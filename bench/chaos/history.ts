/**
 * What etcd itself recorded during a chaos run: every revision of the leader key, the route and
 * the tasks, read at the end with a watch from the run's start revision. etcd revisions carry no
 * time, so a poller samples (time, revision) pairs during the run to place each event in a fault
 * window; the same poll tells the faults which controller leads now.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { routeSchema, taskSchema, type Route, type Task } from '../../src/model/schemas.js';
import type { Keys } from '../../src/store/keys.js';

export class RevisionClock {
  private readonly samples: { at: number; revision: number }[] = [];
  /** The controller holding the leader key at the last successful poll, null if none. */
  leader: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly etcd: Etcd3, private readonly keys: Keys) {}

  start(everyMs = 250): void {
    this.timer = setInterval(() => void this.poll(), everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      // A slow answer (etcd electing) would place the revision late: only quick ones are kept.
      const asked = Date.now();
      const res = await this.etcd.get(this.keys.leader()).exec();
      if (Date.now() - asked < 500) this.samples.push({ at: asked, revision: Number(res.header.revision) });
      this.leader = res.kvs[0]?.value.toString() ?? null;
    } catch {
      // etcd busy: the next poll tells
    } finally {
      this.polling = false;
    }
  }

  /** The earliest time by which `revision` existed (the first sample at or past it), or now. */
  timeOf(revision: number): number {
    let lo = 0;
    let hi = this.samples.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.samples[mid]!.revision >= revision) hi = mid;
      else lo = mid + 1;
    }
    return this.samples[lo]?.at ?? Date.now();
  }
}

export interface LeaderTerm {
  holder: string;
  /** The key's create revision: the term's fencing token. */
  from: number;
  /** The revision that deleted the key (resign or lease expiry); Infinity if still held. */
  to: number;
}

export interface RouteWrite {
  revision: number;
  epoch: number;
  route: Route;
}

export interface TaskWrite {
  revision: number;
  task: Task;
}

export interface EtcdHistory {
  terms: LeaderTerm[];
  routes: RouteWrite[];
  tasks: TaskWrite[];
  /** Values that did not decode (reported as a failed check). */
  undecodable: string[];
}

/**
 * Replays every event under the prefix from `startRevision`: writes a marker key, then watches
 * from the start until the marker comes by, so that nothing written before the end is missed.
 */
export async function readHistory(etcd: Etcd3, keys: Keys, cluster: string, startRevision: string): Promise<EtcdHistory> {
  const marker = `${keys.prefix}/chaos-end`;
  const history: EtcdHistory = { terms: [], routes: [], tasks: [], undecodable: [] };
  const taskPrefix = keys.tasks(cluster);
  const onPut = (kv: IKeyValue) => {
    const key = kv.key.toString();
    const revision = Number(kv.mod_revision);
    try {
      if (key === keys.leader()) {
        // A put on an existing key (not done today) is the same term.
        if (kv.version === '1') history.terms.push({ holder: kv.value.toString(), from: revision, to: Infinity });
      } else if (key === keys.route(cluster)) {
        const route = routeSchema.parse(JSON.parse(kv.value.toString()));
        history.routes.push({ revision, epoch: route.epoch, route });
      } else if (key.startsWith(taskPrefix)) {
        history.tasks.push({ revision, task: taskSchema.parse(JSON.parse(kv.value.toString())) });
      }
    } catch (err) {
      history.undecodable.push(`${key}@${revision}: ${String(err).slice(0, 200)}`);
    }
  };
  const onDelete = (kv: IKeyValue) => {
    if (kv.key.toString() !== keys.leader()) return;
    const term = history.terms.at(-1);
    if (term && term.to === Infinity) term.to = Number(kv.mod_revision);
  };
  // watcher() rather than create(): the handlers are in place before the first event can arrive.
  const watcher = etcd.watch().prefix(keys.prefix).startRevision(String(Number(startRevision) + 1)).watcher();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the etcd history did not reach the end marker in 60 s')), 60_000);
      watcher.on('data', (res) => {
        for (const event of res.events) {
          if (event.kv.key.toString() === marker) {
            clearTimeout(timer);
            resolve();
            return;
          }
          if (event.type === 'Put') onPut(event.kv);
          else onDelete(event.kv);
        }
      });
      watcher.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      watcher.once('connected', () => void etcd.put(marker).value(String(Date.now())).exec().catch(reject));
    });
  } finally {
    await watcher.cancel().catch(() => undefined);
  }
  return history;
}

/** The term holding the leader key at `revision`, if any. */
export function termAt(terms: LeaderTerm[], revision: number): LeaderTerm | undefined {
  return terms.find((t) => t.from <= revision && revision < t.to);
}
