/**
 * The hold barrier of a migration and of a split (docs/migration.md, docs/split.md): after the
 * route marked slots `prepare`, no key may move (and no new owner may take writes) while a proxy
 * could still send a command for them under an older route. So every live proxy in the registry
 * must have drained the hold epoch, and so must every proxy cut off from etcd that follows the
 * route through a controller; only when some controller cannot be asked does the leader fall back
 * to a grace long enough for such a proxy's guard to learn the route.
 */
import type { Logger } from 'winston';
import type { LeaderLock } from '../election/leader-election.js';
import type { ClusterStore } from '../store/cluster-store.js';
import type { ControllerRegistry } from '../store/controller-registry.js';
import type { ProxyRegistry } from '../store/proxy-registry.js';
import { describeBarrier, waitForProxies } from './barrier.js';
import { describeGuarded, waitForGuardedProxies, type ControllerApiClient } from './guarded-proxies.js';

export interface HoldBarrierDeps {
  clusters: ClusterStore;
  proxies: ProxyRegistry;
  /** The controllers, asked for the proxies that follow the route through their API. */
  registry: Pick<ControllerRegistry, 'list'>;
  controllerApi(): ControllerApiClient | undefined;
  election: LeaderLock;
  log: Logger;
  /** Only when some controller cannot be asked: how long a proxy cut off from etcd may take to learn the route. */
  cutoffGraceMs: number;
}

export interface HoldBarrierOutcome {
  drained: boolean;
  /** The route epoch waited for (the last one, after several attempts). */
  epoch: number;
  attempts: number;
  /** Who drained, who did not, and how the cut-off proxies were accounted for. */
  why: string;
}

/** Waits for the hold epoch to be drained everywhere, up to `attempts` times (each `barrierTimeoutMs`). */
export async function holdBarrier(deps: HoldBarrierDeps, cluster: string, attempts: number, label: string): Promise<HoldBarrierOutcome> {
  let last: HoldBarrierOutcome = { drained: false, epoch: 0, attempts: 0, why: 'not tried' };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const { route, spec } = await deps.clusters.get(cluster);
    const timeoutMs = spec.failover.barrierTimeoutMs;
    const outcome = await waitForProxies(deps.proxies, cluster, route.epoch, { timeoutMs, log: deps.log });
    let why = describeBarrier(outcome);
    if (!outcome.timedOut) {
      const guarded = await waitForGuardedProxies(deps.registry, cluster, route.epoch, { timeoutMs, api: deps.controllerApi() });
      why = `${why}; ${describeGuarded(guarded, route.epoch, deps.cutoffGraceMs)}`;
      if (guarded.kind !== 'behind') {
        if (guarded.kind === 'unknown') await sleep(deps.cutoffGraceMs);
        deps.election.requireFence();
        return { drained: true, epoch: route.epoch, attempts: attempt, why };
      }
    }
    deps.log.warn(`${label}: hold barrier attempt ${attempt}: ${why}`, { cluster });
    last = { drained: false, epoch: route.epoch, attempts: attempt, why };
  }
  return last;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
