/**
 * Pure: the recommended-settings check (`cfgctl config check`). From what every instance answered
 * (a few CONFIG GET keys, INFO persistence memory replication) and each shard master's write rate
 * measured over a short sample, the warnings an operator should read, each with its reason.
 */
import type { InstanceFacts } from './instance-facts.js';
import { bytesText, memoryBytes, type ConfigRole } from './redis-config.js';

/** What `config check` asks every instance with CONFIG GET. */
export const CHECKED_KEYS = ['save', 'appendonly', 'maxmemory', 'maxmemory-policy', 'repl-backlog-size', 'repl-diskless-load'] as const;

export interface CheckedInstance {
  instance: string;
  shard: string;
  role: ConfigRole;
  /** CONFIG GET of CHECKED_KEYS, or null when it did not answer (then `error` says why). */
  settings: ReadonlyMap<string, string> | null;
  facts: InstanceFacts | null;
  error: string | null;
}

/** A shard master's replication stream over the sample: how many bytes a second a slave must be able to catch up. */
export interface ShardWriteRate {
  shard: string;
  master: string;
  /** null when the master did not answer both reads. */
  bytesPerSecond: number | null;
  /** How long the sample really lasted. */
  sampledMs: number;
}

export interface CheckContext {
  autoFailover: boolean;
  paused: boolean;
  downAfterMs: number;
  /** A backlog must cover at least this many seconds of writes. */
  minBacklogSeconds: number;
}

export type WarningCode = 'unreachable' | 'no-persistence' | 'disk-load-without-persistence' | 'maxmemory-unset' | 'maxmemory-above-host' | 'noeviction' | 'backlog-small';

export interface ConfigWarning {
  code: WarningCode;
  shard: string;
  instance: string;
  message: string;
}

/** A shard's backlog as measured: the window of disconnection each instance's backlog covers. */
export interface BacklogCover {
  shard: string;
  instance: string;
  backlogBytes: number;
  /** null when no write was seen in the sample (any disconnection is covered at that rate). */
  seconds: number | null;
}

export function backlogCover(instances: CheckedInstance[], rates: ShardWriteRate[]): BacklogCover[] {
  return instances.flatMap((i) => {
    const bytes = memoryBytes(i.settings?.get('repl-backlog-size') ?? '');
    const rate = rates.find((r) => r.shard === i.shard)?.bytesPerSecond;
    if (bytes === null || rate === undefined || rate === null) return [];
    return [{ shard: i.shard, instance: i.instance, backlogBytes: bytes, seconds: rate > 0 ? bytes / rate : null }];
  });
}

export function adviseConfig(instances: CheckedInstance[], rates: ShardWriteRate[], ctx: CheckContext): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  const warn = (i: CheckedInstance, code: WarningCode, message: string) => warnings.push({ code, shard: i.shard, instance: i.instance, message });
  for (const i of instances) {
    const s = i.settings;
    if (!s || !i.facts) {
      warn(i, 'unreachable', `${i.instance} did not answer (${i.error ?? 'no reply'}): not checked`);
      continue;
    }
    const persistent = (s.get('save') ?? '').trim() !== '' || s.get('appendonly') === 'yes';
    if (!persistent && i.role === 'master') warn(i, 'no-persistence', emptyMasterMessage(i, ctx));
    if (!persistent && s.get('repl-diskless-load') === 'disabled') {
      warn(i, 'disk-load-without-persistence', `${i.instance} has no persistence but loads full syncs through its dir (repl-diskless-load disabled): a restart reloads that old copy, and the controller, unable to prove it holds nothing the master lacks, refuses to make it a slave (docs/failover.md); set repl-diskless-load swapdb`);
    }
    const maxmemory = memoryBytes(s.get('maxmemory') ?? '0') ?? 0;
    const host = i.facts.systemMemory;
    if (maxmemory === 0) {
      warn(i, 'maxmemory-unset', `${i.instance} has no maxmemory: it grows until the host${host ? ` (${bytesText(host)})` : ''} runs out of memory and the kernel kills it; set maxmemory below the host's memory, with room for a fork's copy-on-write`);
    } else if (host > 0 && maxmemory > host) {
      warn(i, 'maxmemory-above-host', `${i.instance} has maxmemory ${bytesText(maxmemory)}, above its host's ${bytesText(host)}: the kernel kills it before Redis evicts or refuses anything`);
    }
    if (maxmemory > 0 && (s.get('maxmemory-policy') ?? '') === 'noeviction') {
      warn(i, 'noeviction', `${i.instance} has maxmemory set with maxmemory-policy noeviction: once full, writes fail with OOM errors instead of evicting keys (right for data that must not be lost, wrong for a cache)`);
    }
  }
  for (const c of backlogCover(instances, rates)) {
    if (c.seconds === null || c.seconds >= ctx.minBacklogSeconds) continue;
    const rate = rates.find((r) => r.shard === c.shard)!;
    const i = instances.find((x) => x.instance === c.instance)!;
    const needed = Math.ceil(rate.bytesPerSecond! * ctx.minBacklogSeconds);
    warn(
      i,
      'backlog-small',
      `${c.instance} has repl-backlog-size ${c.backlogBytes} bytes (${bytesText(c.backlogBytes)}): at the ${Math.round(rate.bytesPerSecond!)} bytes/s that ${rate.master} wrote over ${rate.sampledMs} ms it covers ${c.seconds.toFixed(1)} s of disconnection, after which a slave needs a full resync (a fork and a copy of the whole data set); at least ${needed} bytes (${bytesText(needed)}) would cover ${ctx.minBacklogSeconds} s`,
    );
  }
  return warnings;
}

/** Why a master without persistence is a risk, in this cluster's failover settings. */
function emptyMasterMessage(i: CheckedInstance, ctx: CheckContext): string {
  const noFailover = ctx.paused ? 'this cluster is paused, so no failover happens' : !ctx.autoFailover ? 'this cluster has automatic failover off' : null;
  const race = noFailover
    ? `${noFailover}: a restarted master stays the route's master, empty`
    : `a failover saves the data only if the master stays down for ${ctx.downAfterMs} ms (probe downAfterMs) and a slave qualifies; one restarted sooner (a supervisor's quick restart), or refused a failover (budget spent), stays the route's master, empty`;
  return `${i.instance} (master of ${i.shard}) has no persistence (save "" and appendonly no): a restart brings it back empty; ${race}, and its slaves resync from it and are emptied too (docs/failover.md). Turn on appendonly yes (or save) on masters, or make restarts slower than the failover`;
}
