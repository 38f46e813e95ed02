/**
 * Which slave to promote, as a pure function of the leader's observations. Rules (after Sentinel):
 * not excluded (a majority of the controller replicas cannot reach it); reachable; a slave of the shard's master (same replication history); replica-priority not 0;
 * its link to the master not down for longer than the staleness bound; then the lowest priority,
 * the highest replication offset, and the smallest address.
 */
import type { FailoverPolicy, Shard } from '../model/schemas.js';
import type { Observations } from '../model/observations.js';

export type Choice = { ok: true; target: string; why: string } | { ok: false; reasons: string[] };

export interface ChooseOptions {
  policy: FailoverPolicy;
  downAfterMs: number;
  /** How long the master has been down (0 for a planned switchover). */
  masterDownForMs: number;
  /** Only this slave may be chosen (switchover --to). */
  only?: string | null;
  /** Skip the staleness rule (switchover --force). */
  force?: boolean;
  /** Slaves not to promote, with the reason (e.g. a majority of the replicas cannot reach them). */
  exclude?: ReadonlyMap<string, string>;
}

export function stalenessBoundMs(opts: Pick<ChooseOptions, 'policy' | 'downAfterMs' | 'masterDownForMs'>): number {
  return opts.policy.maxLinkDownMs ?? 10 * opts.downAfterMs + opts.masterDownForMs;
}

export function chooseSlave(shard: Shard, observations: Observations, opts: ChooseOptions): Choice {
  const reasons: string[] = [];
  const bound = stalenessBoundMs(opts);
  const eligible: { address: string; priority: number; offset: number }[] = [];
  const candidates = opts.only ? [opts.only] : shard.slaves;
  if (candidates.length === 0) return { ok: false, reasons: [`shard ${shard.id} has no slave`] };
  for (const address of candidates) {
    if (!shard.slaves.includes(address)) {
      reasons.push(`${address} is not a slave of shard ${shard.id}`);
      continue;
    }
    const excluded = opts.exclude?.get(address);
    if (excluded) {
      reasons.push(excluded);
      continue;
    }
    const info = observations.get(address)?.info;
    if (!info) {
      reasons.push(`${address} is unreachable (${observations.get(address)?.error ?? 'not probed'})`);
      continue;
    }
    if (info.role !== 'slave') {
      reasons.push(`${address} is a master, not a slave of ${shard.master}`);
      continue;
    }
    if (info.masterAddress !== shard.master) {
      reasons.push(`${address} replicates from ${info.masterAddress}, not from ${shard.master}: another replication history`);
      continue;
    }
    if (info.priority === 0) {
      reasons.push(`${address} has replica-priority 0: never promoted`);
      continue;
    }
    if (!opts.force && info.linkUp === false) {
      if (info.linkDownSinceSec === null || info.linkDownSinceSec < 0) {
        reasons.push(`${address} never completed a sync with ${shard.master}`);
        continue;
      }
      if (info.linkDownSinceSec * 1000 > bound) {
        reasons.push(`${address} is too stale: its link to ${shard.master} has been down ${info.linkDownSinceSec} s, more than the bound of ${Math.round(bound / 1000)} s`);
        continue;
      }
    }
    eligible.push({ address, priority: info.priority ?? 100, offset: info.offset });
  }
  if (eligible.length === 0) return { ok: false, reasons };
  eligible.sort((a, b) => a.priority - b.priority || b.offset - a.offset || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  const best = eligible[0]!;
  const others = eligible.slice(1).map((e) => `${e.address} at offset ${e.offset}`);
  return {
    ok: true,
    target: best.address,
    why: `${best.address} has priority ${best.priority} and offset ${best.offset}${others.length ? `; also eligible: ${others.join(', ')}` : ''}${reasons.length ? `; excluded: ${reasons.join('; ')}` : ''}`,
  };
}
