/**
 * What an admin can ask about shard splits (`cfgctl shard split`, `cfgctl splits`, and the HTTP
 * API): a request is checked against the route and the new instances before anything is written,
 * and a split is only ever a record the leader carries out (docs/split.md).
 */
import type { Etcd3 } from 'etcd3';
import { z } from 'zod';
import { AlreadyExistsError, NotFoundError, RefusedError, errorMessage } from '../model/errors.js';
import { historyEntry } from '../model/history.js';
import { rangesText, toRanges } from '../model/route.js';
import { address, clusterName, parseInput, shardId } from '../model/schemas.js';
import { parseMigrationRate } from '../model/migration.js';
import { roomProblem, splitCancelRefusal, splitSlots, splitText, versionProblem, type SplitRecord } from '../model/split.js';
import { instanceFacts, redisVersion, replicationInfo } from '../redis/commands.js';
import { RedisPool } from '../redis/pool.js';
import { ClusterStore } from '../store/cluster-store.js';
import { HistoryStore } from '../store/history-store.js';
import type { Keys } from '../store/keys.js';
import { SplitStore, newSplitId } from '../store/split-store.js';
import { withTimeout } from '../util/timeout.js';
import { RecordControls } from './record-controls.js';

export interface SplitRequest {
  shard: string;
  newShard: string;
  master: string;
  slaves?: string[];
  /** "A-B,C-D"; absent: the upper half of the shard's slots. */
  slots?: string;
  /** Split even onto instances that hold keys (the full sync wipes them). */
  force?: boolean;
  /** Keys per second each side's trim may unlink at most (absent or 0: no limit). */
  trimRate?: number | null;
  requestedBy: string;
}

/** A request as it may come over HTTP: every field checked, nothing else taken. */
const splitRequestSchema = z.strictObject({
  shard: z.string(),
  newShard: z.string(),
  master: z.string(),
  slaves: z.array(z.string()).optional(),
  slots: z.string().optional(),
  force: z.boolean().optional(),
  trimRate: z.number().nullable().optional(),
  requestedBy: z.string(),
  by: z.string().optional(),
});

/** How long the checks wait for one instance. */
const CHECK_TIMEOUT_MS = 2000;

export class SplitService {
  readonly store: SplitStore;
  private readonly clusters: ClusterStore;
  private readonly history: HistoryStore;
  private readonly pool: RedisPool;
  private readonly controls: RecordControls<SplitRecord>;

  constructor(etcd: Etcd3, keys: Keys, pool?: RedisPool) {
    this.store = new SplitStore(etcd, keys);
    this.clusters = new ClusterStore(etcd, keys);
    this.history = new HistoryStore(etcd, keys);
    this.pool = pool ?? new RedisPool({ timeoutMs: CHECK_TIMEOUT_MS });
    this.controls = new RecordControls(this.store, this.history);
  }

  /** `cfgctl shard split`: refused with the reason, nothing written, unless every check passes. */
  async split(name: string, asked: SplitRequest | Record<string, unknown>): Promise<SplitRecord> {
    const request = parseInput(splitRequestSchema, asked, 'split request');
    const cluster = parseInput(clusterName, name, 'cluster name');
    const { route, spec, routeRevision } = await this.clusters.get(cluster);
    if (spec.proxy === 'twemproxy') throw new RefusedError(`cluster ${cluster} is behind twemproxy, which places keys by its own hash, not by the route's slots: a split would not move where clients read and write keys (docs/twemproxy.md)`);
    const sourceId = parseInput(shardId, request.shard, 'shard id');
    const source = route.shards.find((s) => s.id === sourceId);
    if (!source) throw new NotFoundError(`cluster ${cluster} has no shard ${sourceId}`);
    const id = parseInput(shardId, request.newShard, 'new shard id');
    if (route.shards.some((s) => s.id === id)) throw new AlreadyExistsError(`cluster ${cluster} already has a shard ${id}`);
    const master = parseInput(address, request.master, 'master address');
    const slaves = (request.slaves ?? []).map((s) => parseInput(address, s, 'slave address'));
    const instances = [master, ...slaves];
    if (new Set(instances).size !== instances.length) throw new RefusedError(`an instance is named twice: ${instances.join(', ')}`);
    const inUse = instances.filter((a) => route.shards.some((s) => s.master === a || s.slaves.includes(a)));
    if (inUse.length) throw new RefusedError(`${inUse.join(', ')} already serve${inUse.length === 1 ? 's' : ''} cluster ${cluster}`);
    const slots = splitSlots(route, source, request.slots);
    const trimRate = parseMigrationRate(request.trimRate);
    if (route.migrating.length > 0) throw new RefusedError(`slots of cluster ${cluster} are migrating; one migration or split at a time (cfgctl migrations ${cluster})`);
    await this.checkInstances(source.master, instances, request.force === true);
    const now = new Date().toISOString();
    const ranges = toRanges(slots);
    const record: SplitRecord = {
      id: newSplitId(),
      cluster,
      source: sourceId,
      sourceMaster: source.master,
      shard: { id, master, slaves },
      slots: ranges,
      state: 'running',
      next: 'attach',
      reason: `split of shard ${sourceId} (slots ${rangesText(ranges)} to new shard ${id}) asked by ${request.requestedBy}`,
      requestedBy: request.requestedBy,
      controller: null,
      createdAt: now,
      updatedAt: now,
      sync: null,
      syncSettings: null,
      fenceRaise: null,
      holdMs: null,
      epochBefore: null,
      epochAfter: null,
      trim: { source: { scanned: 0, removed: 0, done: false }, shard: { scanned: 0, removed: 0, done: false } },
      trimRate,
      steps: [],
      error: null,
      pause: false,
      cancel: null,
    };
    await this.store.start(record, routeRevision);
    await this.history.append(historyEntry({ cluster, controller: 'admin', action: 'split:request', reason: `${record.reason}: ${splitText(record)}; master ${master}${slaves.length ? `, slaves ${slaves.join(', ')}` : ''}`, outcome: 'info' }));
    return record;
  }

  async list(name: string): Promise<{ splits: SplitRecord[]; problems: string[] }> {
    const cluster = parseInput(clusterName, name, 'cluster name');
    await this.clusters.get(cluster);
    const problems: string[] = [];
    const splits = (await this.store.list(cluster, (err) => problems.push(err.message))).map((s) => s.record);
    return { splits, problems };
  }

  /** `split pause`: the split stops at its next step boundary (a sync goes on replicating, a cut-over under way ends first, the trim stops unlinking). */
  async pause(name: string, by: string, id?: string): Promise<SplitRecord> {
    return this.controls.change(name, id, by, 'pause', (s) => ({ ...s, pause: true }));
  }

  async resume(name: string, by: string, id?: string): Promise<SplitRecord> {
    return this.controls.change(name, id, by, 'resume', (s) => ({ ...s, pause: false }));
  }

  /** `split cancel`: before the commit, the cluster as it was (the new instances detached); refused after it, with the reason. */
  async cancel(name: string, by: string, id?: string): Promise<SplitRecord> {
    return this.controls.change(name, id, by, 'cancel', (s) => {
      if (s.cancel) return s;
      const refusal = splitCancelRefusal(s);
      if (refusal) throw new RefusedError(refusal);
      // No leader has begun it: nothing was attached, nothing is in the route; it ends here.
      if (s.steps.length === 0) return RecordControls.cancelledUnbegun(s, by);
      return { ...s, cancel: { by, at: new Date().toISOString() } };
    });
  }

  /**
   * Before anything changes: the source's master and every new instance answer; the new ones are
   * empty masters (unless forced), of the source's Redis major version or newer, with a maxmemory
   * (when set) that holds the source's whole data set.
   */
  private async checkInstances(sourceMaster: string, instances: string[], force: boolean): Promise<void> {
    const ask = (a: string) => withTimeout(Promise.all([replicationInfo(this.pool, a), redisVersion(this.pool, a), instanceFacts(this.pool, a)]), CHECK_TIMEOUT_MS, `INFO on ${a}`);
    const [, sourceVersion, sourceFacts] = await ask(sourceMaster).catch((err) => {
      throw new RefusedError(`the source master ${sourceMaster} does not answer (${errorMessage(err)}): a split needs it`);
    });
    const problems: string[] = [];
    for (const a of instances) {
      try {
        const [info, version, facts] = await ask(a);
        if (!force && (info.keys ?? 0) > 0) problems.push(`${a} holds ${info.keys} keys (--force: the full sync wipes them)`);
        if (!force && info.role === 'slave') problems.push(`${a} replicates from ${info.masterAddress} (--force: it follows the split instead)`);
        const old = versionProblem(a, version, sourceMaster, sourceVersion);
        if (old) problems.push(old);
        const room = roomProblem(a, facts, sourceMaster, sourceFacts.usedMemory);
        if (room) problems.push(room);
      } catch (err) {
        problems.push(`${a} does not answer (${errorMessage(err)})`);
      }
    }
    if (problems.length) throw new RefusedError(`split refused: ${problems.join('; ')}`);
  }
}
