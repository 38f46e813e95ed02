/**
 * The proxy barrier: after a route change, wait until every live proxy of the cluster has
 * registered the new epoch as drained (it applied the route, and nothing it sent under an older
 * route to a master the new one no longer names is still in flight) or has left the registry (its
 * lease expired, or it stopped). Then no command sent under the old route can still land.
 *
 * It reads the registrations once and watches them from the revision of that read, so that no
 * change in between is missed, and it is bounded: at the deadline it returns who was still behind.
 * A registration that does not decode is reported, never waited on: it cannot say an epoch.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'winston';
import { errorMessage } from '../model/errors.js';
import type { ProxyRegistration, ProxyRegistry } from '../store/proxy-registry.js';

export interface BarrierOutcome {
  epoch: number;
  /** Proxies that registered the epoch (or a newer one) drained, and when (ms after the start; 0: already). */
  acknowledged: { id: string; afterMs: number }[];
  /** Proxies that were behind and whose key went away (lease expired, or the proxy stopped), and when. */
  gone: { id: string; afterMs: number }[];
  /** Proxies still behind at the deadline, with the epoch they had drained. */
  pending: { id: string; epoch: number | null }[];
  /** Registrations that do not decode: not waited on. */
  malformed: { id: string; problem: string }[];
  timedOut: boolean;
  durationMs: number;
}

type Standing =
  | { state: 'pending'; epoch: number | null }
  | { state: 'acknowledged'; afterMs: number }
  | { state: 'gone'; afterMs: number }
  | { state: 'malformed'; problem: string };

/** Where each proxy stands against the epoch, from what etcd said; no I/O. */
export class BarrierTally {
  private readonly proxies = new Map<string, Standing>();

  constructor(readonly epoch: number) {}

  /** A registration written (or, null, deleted) `atMs` after the barrier began. */
  seen(id: string, registration: ProxyRegistration | null, atMs: number): void {
    const before = this.proxies.get(id);
    if (registration === null) {
      // A proxy that drained and then left has nothing in flight; one never seen has nothing to say.
      if (before && before.state !== 'acknowledged') this.proxies.set(id, { state: 'gone', afterMs: atMs });
    } else if (registration.problem) {
      this.proxies.set(id, { state: 'malformed', problem: registration.problem.message });
    } else if ((registration.info.epoch ?? 0) >= this.epoch) {
      if (before?.state !== 'acknowledged') this.proxies.set(id, { state: 'acknowledged', afterMs: atMs });
    } else {
      // Behind, even if it had acknowledged before: a restarted proxy under the same id serves an older route.
      this.proxies.set(id, { state: 'pending', epoch: registration.info.epoch });
    }
  }

  /** The whole set read again (after a watch ended): whatever is no longer there went away. */
  resync(registrations: ProxyRegistration[], atMs: number): void {
    const present = new Set(registrations.map((r) => r.id));
    for (const id of this.proxies.keys()) if (!present.has(id)) this.seen(id, null, atMs);
    for (const r of registrations) this.seen(r.id, r, atMs);
  }

  settled(): boolean {
    for (const s of this.proxies.values()) if (s.state === 'pending') return false;
    return true;
  }

  outcome(durationMs: number, timedOut: boolean): BarrierOutcome {
    const out: BarrierOutcome = { epoch: this.epoch, acknowledged: [], gone: [], pending: [], malformed: [], timedOut, durationMs };
    for (const [id, s] of [...this.proxies].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (s.state === 'acknowledged') out.acknowledged.push({ id, afterMs: s.afterMs });
      else if (s.state === 'gone') out.gone.push({ id, afterMs: s.afterMs });
      else if (s.state === 'pending') out.pending.push({ id, epoch: s.epoch });
      else out.malformed.push({ id, problem: s.problem });
    }
    return out;
  }
}

export interface BarrierOptions {
  timeoutMs: number;
  /** Where a watch that ended or an unreachable etcd is reported (the barrier goes on until its deadline). */
  log?: Logger;
  /** Delay before reading again after etcd failed. */
  retryMs?: number;
}

/**
 * Returns once every registered proxy of `cluster` has drained `epoch` or left the registry, or at
 * the deadline, saying which did what. Never throws for etcd trouble: an etcd that cannot be read
 * until the deadline leaves the barrier timed out, with the proxies it knew of still pending.
 */
export function waitForProxies(registry: ProxyRegistry, cluster: string, epoch: number, options: BarrierOptions): Promise<BarrierOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const tally = new BarrierTally(epoch);
  const retryMs = options.retryMs ?? 200;
  return new Promise((resolve) => {
    let finished = false;
    let watch: { cancel(): Promise<void> } | null = null;
    const finish = (timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      void watch?.cancel();
      resolve(tally.outcome(elapsed(), timedOut));
    };
    const deadline = setTimeout(() => finish(true), options.timeoutMs);
    const retry = (err: unknown) => {
      options.log?.warn('proxy barrier: cannot follow the proxy registrations; reading them again', { cluster, epoch, error: errorMessage(err) });
      if (!finished) setTimeout(() => void follow(), retryMs);
    };
    let reads = 0;
    const follow = async (): Promise<void> => {
      try {
        const snapshot = await registry.snapshot(cluster);
        if (finished) return;
        // What the first read finds was there when the barrier began: 0 ms.
        tally.resync(snapshot.registrations, reads++ === 0 ? 0 : elapsed());
        if (tally.settled()) return finish(false);
        let ended = false;
        const current = await registry.watch(cluster, snapshot.revision + 1n, {
          change: (id, registration) => {
            tally.seen(id, registration, elapsed());
            if (tally.settled()) finish(false);
          },
          error: (err) => {
            // A watch that ends (a compaction past its revision, a cancelled stream): read again.
            if (ended) return;
            ended = true;
            void current.cancel();
            if (watch === current) watch = null;
            retry(err);
          },
        });
        if (finished) return void (await current.cancel());
        watch = current;
      } catch (err) {
        retry(err);
      }
    };
    void follow();
  });
}

/** Proxies named by id in a sentence; a fleet beyond this is counted. */
const NAMED = 10;

/** The outcome as one sentence for a task step and the history: who drained, who left, who did not. */
export function describeBarrier(o: BarrierOutcome): string {
  const count = (n: number) => `${n} ${n === 1 ? 'proxy' : 'proxies'}`;
  const named = (ids: string[]) => ` (${ids.slice(0, NAMED).join(', ')}${ids.length > NAMED ? `, and ${ids.length - NAMED} more` : ''})`;
  const parts: string[] = [];
  if (o.timedOut) {
    const behind = o.pending.map((p) => `${p.id} (drained ${p.epoch ?? 'none'})`).join(', ');
    parts.push(`warning: timed out after ${o.durationMs} ms waiting for epoch ${o.epoch}${behind ? `: ${behind} had not drained it` : ' (the proxy registrations could not be read)'}`);
    if (o.acknowledged.length) parts.push(`${count(o.acknowledged.length)} drained it${named(o.acknowledged.map((a) => a.id))}`);
  } else if (o.acknowledged.length + o.gone.length === 0) {
    parts.push(`no proxy to wait for: epoch ${o.epoch} (${o.durationMs} ms)`);
  } else {
    const ids = o.acknowledged.length ? named(o.acknowledged.map((a) => a.id)) : '';
    parts.push(`${count(o.acknowledged.length)} drained epoch ${o.epoch}${o.gone.length ? '' : ` in ${o.durationMs} ms`}${ids}`);
  }
  for (const g of o.gone) parts.push(`${g.id} left the registry (lease expired or proxy stopped) after ${g.afterMs} ms`);
  if (!o.timedOut && o.gone.length) parts.push(`done in ${o.durationMs} ms`);
  for (const m of o.malformed) parts.push(`${m.id} has a malformed registration, not waited on (${m.problem})`);
  return parts.join('; ');
}
