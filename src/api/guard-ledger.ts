/**
 * Which proxies follow a cluster's route through this controller's API (their route guard asks
 * while they are cut off from etcd: src/proxy/route-guard.ts), with the epoch each has drained.
 *
 * Such a proxy has left the etcd registry (its lease expired), so the proxy barrier no longer
 * waits for it, yet it still forwards on a route a controller confirmed. Before slot migration
 * lets keys move, the leader asks every controller for these proxies and waits until each has
 * drained the new epoch (src/controller/guarded-proxies.ts). Kept in memory: a restarted
 * controller has seen nobody, and says so by when it started.
 */
export interface GuardedProxy {
  proxy: string;
  /** The route epoch the proxy had drained when it last asked. */
  epoch: number;
  /** How long a confirmation holds for it (its lease TTL): past that without asking, it forwards nothing. */
  ttlMs: number;
  /** Milliseconds since it last asked. */
  agoMs: number;
}

/** Entries are dropped this long after the proxy's last question: far past any lease TTL. */
const KEEP_MS = 5 * 60_000;

export class GuardLedger {
  private readonly seen = new Map<string, { cluster: string; proxy: string; epoch: number; ttlMs: number; at: number }>();
  /** When this ledger began: a controller that started recently cannot vouch for what came before. */
  readonly startedAt = Date.now();

  constructor(private readonly now: () => number = Date.now) {}

  note(cluster: string, proxy: string, epoch: number, ttlMs: number): void {
    this.seen.set(`${cluster}\n${proxy}`, { cluster, proxy, epoch, ttlMs, at: this.now() });
  }

  /** The proxies of `cluster` that asked within the last few minutes. */
  of(cluster: string): GuardedProxy[] {
    const now = this.now();
    const out: GuardedProxy[] = [];
    for (const [key, e] of this.seen) {
      if (now - e.at > KEEP_MS) this.seen.delete(key);
      else if (e.cluster === cluster) out.push({ proxy: e.proxy, epoch: e.epoch, ttlMs: e.ttlMs, agoMs: now - e.at });
    }
    return out;
  }
}
