/**
 * The leader keeps every instance at the cluster's desired Redis configuration: every `intervalMs`
 * per cluster (not every probe: it costs a CONFIG GET per instance), it reads the desired keys on
 * each reachable instance, CONFIG SETs what differs, then CONFIG REWRITE (best effort). Each change
 * is logged and recorded in history (`action: config`) with its reason. Heavy changes (`appendonly
 * yes`, `maxmemory` below the memory in use, ...) roll instead: one instance per shard at a time,
 * slaves first (config-roll.ts; `action: config:roll`). A paused cluster's differences are reported
 * once each, never repaired, and nothing rolls.
 */
import type { Logger } from 'winston';
import type { LeaderLock } from '../election/leader-election.js';
import { MalformedValueError, NotLeaderError, errorMessage } from '../model/errors.js';
import { historyEntry } from '../model/history.js';
import type { Observations } from '../model/observations.js';
import type { HistoryEntry } from '../model/schemas.js';
import { configGet, configSet, instanceFacts } from '../redis/commands.js';
import type { RedisPool } from '../redis/pool.js';
import type { StoredCluster } from '../store/cluster-store.js';
import type { ConfigStore } from '../store/config-store.js';
import type { HistoryStore } from '../store/history-store.js';
import { withTimeout } from '../util/timeout.js';
import { desiredPerInstance, planInstanceConfig, type ConfigChange, type Confirmed, type InstanceConfigPlan } from './config-plan.js';
import { HEAVY_CANDIDATES, heavyReason, planRoll, type HeavyChange, type RollShard } from './config-roll.js';

export interface ConfigApplierDeps {
  controllerId: string;
  pool: RedisPool;
  configs: ConfigStore;
  history: HistoryStore;
  election: LeaderLock;
  log: Logger;
  /** How often each cluster's instances are compared with the desired config. */
  intervalMs: number;
}

export class ConfigApplier {
  private readonly lastPass = new Map<string, number>();
  /** cluster -> instance -> key -> what this leader last saw in force. */
  private readonly confirmed = new Map<string, Map<string, Map<string, Confirmed>>>();
  /**
   * The last failed change per cluster/instance (reason and error): retried every pass, but
   * recorded once — a key Redis will not set at run time (e.g. `databases`) must not fill history.
   */
  private readonly lastFailure = new Map<string, string>();
  /** cluster -> shard -> the wait of its roll last recorded (one that needs somebody: recorded once). */
  private readonly stuck = new Map<string, Map<string, string>>();
  /** cluster -> differences already reported while it is paused (instance/key/value). */
  private readonly reported = new Map<string, Set<string>>();

  constructor(private readonly deps: ConfigApplierDeps) {}

  /** One pass over the cluster if one is due; returns a sentence per change (none when all is in force). */
  async run(cluster: StoredCluster, observations: Observations): Promise<string[]> {
    const name = cluster.spec.name;
    const now = Date.now();
    if (now - (this.lastPass.get(name) ?? 0) < this.deps.intervalMs) return [];
    this.lastPass.set(name, now);
    if (!cluster.spec.paused) this.reported.delete(name); // a new pause reports afresh
    let config;
    try {
      config = (await this.deps.configs.read(name)).config;
    } catch (err) {
      if (!(err instanceof MalformedValueError)) throw err;
      this.deps.log.error('desired config not applied: it does not decode', { cluster: name, error: err.message });
      return [];
    }
    const managed = desiredPerInstance(cluster.route, config).filter((t) => Object.keys(t.settings).length > 0);
    const targets = managed.filter((t) => observations.get(t.instance)?.info);
    const plans = (await Promise.all(targets.map((t) => this.read(name, t, cluster.spec.probe.timeoutMs)))).filter((p): p is InstanceConfigPlan => p !== null);
    for (const plan of plans) {
      const known = this.known(name, plan.instance);
      for (const k of plan.inForce) known.set(k.key, { desired: k.desired, actual: k.actual });
    }
    const said: string[] = [];
    if (cluster.spec.paused) {
      // Every difference is reported, heavy or not; nothing is set and nothing rolls.
      for (const plan of plans) if (plan.changes.length) said.push(...(await this.report(name, plan)));
      return said;
    }
    const split = await this.splitHeavy(cluster, new Set(managed.map((t) => t.instance)), plans);
    for (const plan of plans) {
      const light = split.light.get(plan.instance) ?? [];
      if (light.length) said.push(await this.repair(name, { ...plan, changes: light }));
    }
    said.push(...(await this.roll(name, split.shards)));
    return said;
  }

  /**
   * Which changes are heavy (config-roll.ts): when a change may be, the facts of every instance of
   * the cluster (INFO persistence memory replication) are read, so a busy instance that needs no
   * change still holds its shard's roll and its host's. Without such a change a pass costs nothing
   * more than the CONFIG GET.
   */
  private async splitHeavy(cluster: StoredCluster, managed: ReadonlySet<string>, plans: InstanceConfigPlan[]): Promise<{ light: Map<string, ConfigChange[]>; shards: RollShard[] }> {
    const light = new Map(plans.map((p) => [p.instance, p.changes]));
    const rolling = new Set(plans.filter((p) => p.changes.some((c) => HEAVY_CANDIDATES.has(c.key))).map((p) => p.shard));
    if (rolling.size === 0) return { light, shards: [] };
    // Every shard's facts, not only the rolling ones': a shard that has just taken its last step
    // is still rewriting, and holds the roll of the others on its hosts.
    const shards = cluster.route.shards;
    const instances = shards.flatMap((s) => [s.master, ...s.slaves]);
    const timeoutMs = Math.max(cluster.spec.probe.timeoutMs, 1000);
    const facts = new Map(
      await Promise.all(instances.map(async (i) => [i, await withTimeout(instanceFacts(this.deps.pool, i), timeoutMs, `INFO on ${i}`).catch(() => null)] as const)),
    );
    const heavy = new Map<string, HeavyChange[]>();
    for (const plan of plans.filter((p) => rolling.has(p.shard))) {
      const f = facts.get(plan.instance) ?? null;
      const marked = plan.changes.map((c) => ({ ...c, heavy: heavyReason(c, f) }));
      heavy.set(plan.instance, marked.filter((c): c is HeavyChange => c.heavy !== null));
      light.set(plan.instance, marked.filter((c) => c.heavy === null));
    }
    // A managed instance without a plan was not compared (not probed yet, or CONFIG GET failed):
    // whether it needs a heavy change is not known, so its shard waits (heavy: null).
    const rollShards = shards.map((s) => ({
      shard: s.id,
      instances: [
        { instance: s.master, role: 'master' as const },
        ...s.slaves.map((instance) => ({ instance, role: 'slave' as const })),
      ].map((i) => ({ ...i, facts: facts.get(i.instance) ?? null, heavy: heavy.get(i.instance) ?? (managed.has(i.instance) ? null : []) })),
    }));
    return { light, shards: rollShards };
  }

  /** One heavy step per shard (and host) whose instances have all settled; a wait that needs somebody is recorded once. */
  private async roll(cluster: string, shards: RollShard[]): Promise<string[]> {
    const { steps, waits } = planRoll(shards);
    const said: string[] = [];
    for (const step of steps) {
      const then = step.after.length ? `; then ${step.after.join(', ')}` : '; the last of its shard';
      const why = step.changes.map((c) => `${c.reason} (${c.heavy})`).join('; ');
      const plan: InstanceConfigPlan = { instance: step.instance, shard: step.shard, role: step.role, inForce: [], changes: step.changes };
      said.push(await this.repair(cluster, plan, { action: 'config:roll', reason: `rolled one instance per shard, slaves first, each settled before the next: ${why}${then}` }));
    }
    let stuck = this.stuck.get(cluster);
    if (!stuck) this.stuck.set(cluster, (stuck = new Map()));
    const waiting = new Set(waits.map((w) => w.shard));
    for (const shard of stuck.keys()) if (!waiting.has(shard)) stuck.delete(shard);
    for (const w of waits) {
      const reason = `heavy settings of shard ${w.shard} wait: ${w.reason}`;
      if (w.settling || stuck.get(w.shard) === reason) {
        this.deps.log.debug(reason, { cluster, shard: w.shard });
        continue;
      }
      stuck.set(w.shard, reason);
      this.deps.log.warn(reason, { cluster, shard: w.shard });
      await this.record(cluster, historyEntry({ cluster, controller: this.deps.controllerId, action: 'config:roll', shard: w.shard, reason, outcome: 'refused' }), this.deps.election.requireFence());
      said.push(reason);
    }
    return said;
  }

  private known(cluster: string, instance: string): Map<string, Confirmed> {
    let byInstance = this.confirmed.get(cluster);
    if (!byInstance) this.confirmed.set(cluster, (byInstance = new Map()));
    let known = byInstance.get(instance);
    if (!known) byInstance.set(instance, (known = new Map()));
    return known;
  }

  /** The instance's plan, or null when it did not answer (it gets its turn on a later pass). */
  private async read(cluster: string, target: Parameters<typeof planInstanceConfig>[0], timeoutMs: number): Promise<InstanceConfigPlan | null> {
    try {
      const actual = await withTimeout(configGet(this.deps.pool, target.instance, Object.keys(target.settings)), Math.max(timeoutMs, 1000), `CONFIG GET on ${target.instance}`);
      return planInstanceConfig(target, actual, this.known(cluster, target.instance));
    } catch (err) {
      this.deps.log.debug('config not compared: instance did not answer', { cluster, instance: target.instance, error: errorMessage(err) });
      return null;
    }
  }

  /** CONFIG SET of the plan's changes, recorded as `config` (or as `how` says: a roll step). */
  private async repair(cluster: string, plan: InstanceConfigPlan, how?: { action: string; reason: string }): Promise<string> {
    const fence = this.deps.election.requireFence();
    const started = Date.now();
    let outcome: HistoryEntry['outcome'] = 'done';
    let error: string | null = null;
    let rewrite: string | null = null;
    try {
      rewrite = await configSet(this.deps.pool, plan.instance, plan.changes.map((c) => [c.key, c.to]));
      // Read back once: Redis may spell a value its own way, and that spelling is then "in force".
      const after = await configGet(this.deps.pool, plan.instance, plan.changes.map((c) => c.key));
      const known = this.known(cluster, plan.instance);
      for (const c of plan.changes) known.set(c.key, { desired: c.to, actual: after.get(c.key) ?? c.to });
    } catch (err) {
      outcome = 'failed';
      error = errorMessage(err);
    }
    const reason = how?.reason ?? plan.changes.map((c) => c.reason).join('; ');
    const entry = historyEntry({
      cluster,
      controller: this.deps.controllerId,
      action: how?.action ?? 'config',
      shard: plan.shard,
      target: plan.instance,
      reason,
      outcome,
      durationMs: Date.now() - started,
      detail: { set: Object.fromEntries(plan.changes.map((c) => [c.key, { from: c.from, to: c.to }])), ...(error ? { error } : {}), ...(rewrite ? { configRewrite: rewrite } : {}) },
    });
    const failureKey = `${cluster}/${plan.instance}`;
    const failure = error ? `${reason} / ${error}` : null;
    const repeated = failure !== null && this.lastFailure.get(failureKey) === failure;
    if (failure) this.lastFailure.set(failureKey, failure);
    else this.lastFailure.delete(failureKey);
    this.deps.log.log(outcome === 'done' ? 'info' : repeated ? 'debug' : 'warn', `CONFIG SET on ${plan.instance}: ${outcome}`, entry);
    if (!repeated) await this.record(cluster, entry, fence);
    return `config of ${plan.instance} because ${reason}: ${outcome}${error ? ` (${error})` : ''}${rewrite ? ` (${rewrite})` : ''}`;
  }

  /** A paused cluster: each difference said once (while it lasts), nothing changed. */
  private async report(cluster: string, plan: InstanceConfigPlan): Promise<string[]> {
    let reported = this.reported.get(cluster);
    if (!reported) this.reported.set(cluster, (reported = new Set()));
    const fresh = plan.changes.filter((c) => !reported.has(`${plan.instance}/${c.key}/${c.from}`));
    if (fresh.length === 0) return [];
    for (const c of fresh) reported.add(`${plan.instance}/${c.key}/${c.from}`);
    const reason = `cluster paused, not repaired: ${fresh.map((c) => c.reason).join('; ')}`;
    const entry = historyEntry({ cluster, controller: this.deps.controllerId, action: 'config', shard: plan.shard, target: plan.instance, reason, outcome: 'refused', detail: { differs: Object.fromEntries(fresh.map((c) => [c.key, { actual: c.from, desired: c.to }])) } });
    this.deps.log.warn(reason, { cluster, instance: plan.instance });
    await this.record(cluster, entry, this.deps.election.requireFence());
    return [reason];
  }

  private async record(cluster: string, entry: HistoryEntry, fence: ReturnType<LeaderLock['requireFence']>): Promise<void> {
    try {
      await this.deps.history.append(entry, fence);
    } catch (err) {
      if (err instanceof NotLeaderError) throw err;
      this.deps.log.warn('could not record history', { cluster, error: errorMessage(err) });
    }
  }
}
