/**
 * What an admin can ask about slot migration (`cfgctl migrate`, `rebalance`, `shard drain`,
 * `migrations`, and the HTTP API): every request is checked against the route before anything is
 * written, and a migration is only ever a record the leader carries out (docs/migration.md).
 */
import type { Etcd3 } from 'etcd3';
import { RefusedError } from '../model/errors.js';
import {
  canCancelMigration,
  drainMoves,
  migrationFinished,
  migrationSlots,
  parseMigrationRate,
  parseSlotList,
  planMoves,
  movesText,
  rebalanceMoves,
  targetsDown,
  type MigrationRecord,
  type Moves,
} from '../model/migration.js';
import { historyEntry } from '../model/history.js';
import { clusterName, parseInput, shardId, type Route } from '../model/schemas.js';
import { ClusterStore, type StoredCluster } from '../store/cluster-store.js';
import { HealthStore } from '../store/health-store.js';
import { HistoryStore } from '../store/history-store.js';
import type { Keys } from '../store/keys.js';
import { MigrationStore, newMigrationId } from '../store/migration-store.js';
import { RecordControls } from './record-controls.js';

/** What every request for a migration carries. `rate`: keys/s at most for the leader's mover (0 or absent: no limit). */
export interface MigrationRequest {
  requestedBy: string;
  dryRun?: boolean;
  rate?: number | null;
}

/** A migration with what an operator reads off it: keys/s and time left while keys move. */
export interface MigrationView extends MigrationRecord {
  slotCount: number;
  keysPerSecond: number | null;
  /** Seconds left, from the keys seen in the latest pass and the rate so far; null when unknown. */
  secondsLeft: number | null;
}

export class MigrationService {
  readonly store: MigrationStore;
  private readonly clusters: ClusterStore;
  private readonly history: HistoryStore;
  private readonly health: HealthStore;
  private readonly controls: RecordControls<MigrationRecord>;

  constructor(etcd: Etcd3, keys: Keys) {
    this.store = new MigrationStore(etcd, keys);
    this.health = new HealthStore(etcd, keys);
    this.clusters = new ClusterStore(etcd, keys);
    this.history = new HistoryStore(etcd, keys);
    this.controls = new RecordControls(this.store, this.history);
  }

  /** `cfgctl migrate NAME --slots A-B --to SHARD`. */
  async migrate(name: string, request: MigrationRequest & { slots: string; to: string }): Promise<MigrationRecord> {
    const { route, spec, specRevision } = await this.cluster(name);
    const to = parseInput(shardId, request.to, 'target shard');
    const moves = planMoves(route, parseSlotList(request.slots, route.slotCount), to, spec.proxy);
    return this.start(route, specRevision, moves, `migration of slots ${request.slots} to ${to} asked by ${request.requestedBy}`, request);
  }

  /** `cfgctl shard drain NAME SHARD`: every slot of the shard to the others, smallest first. */
  async drain(name: string, request: MigrationRequest & { shard: string }): Promise<MigrationRecord> {
    const { route, spec, specRevision } = await this.cluster(name);
    const shard = parseInput(shardId, request.shard, 'shard id');
    return this.start(route, specRevision, drainMoves(route, shard, spec.proxy), `drain of shard ${shard} asked by ${request.requestedBy}`, request);
  }

  /** `cfgctl rebalance NAME`: slots evened out over the shards; refused when already even. */
  async rebalance(name: string, request: MigrationRequest): Promise<MigrationRecord> {
    const { route, spec, specRevision } = await this.cluster(name);
    const moves = rebalanceMoves(route, spec.proxy);
    if (moves.length === 0) throw new RefusedError(`the slots of ${route.cluster} are already even over its ${route.shards.length} shards`);
    return this.start(route, specRevision, moves, `rebalance asked by ${request.requestedBy}`, request);
  }

  async list(name: string): Promise<{ migrations: MigrationView[]; problems: string[] }> {
    const cluster = parseInput(clusterName, name, 'cluster name');
    await this.route(cluster);
    const problems: string[] = [];
    const migrations = (await this.store.list(cluster, (err) => problems.push(err.message))).map((m) => view(m.record));
    return { migrations, problems };
  }

  async get(name: string, id: string): Promise<MigrationView> {
    return view((await this.store.get(parseInput(clusterName, name, 'cluster name'), id)).record);
  }

  /** `migrate pause`: the leader moves no key until `resume` (proxies still move the keys clients touch). */
  async pause(name: string, by: string, id?: string): Promise<MigrationRecord> {
    return this.change(name, id, by, 'pause', (m) => {
      if (m.reverse) throw new RefusedError(`migration ${m.id} is being cancelled: it cannot be paused`);
      return { ...m, pause: true };
    });
  }

  async resume(name: string, by: string, id?: string): Promise<MigrationRecord> {
    return this.change(name, id, by, 'resume', (m) => ({ ...m, pause: false }));
  }

  /** `migrate throttle`: the leader's mover moves at most `rate` keys/s from its next batch on (0: no limit). */
  async throttle(name: string, by: string, rate: unknown, id?: string): Promise<MigrationRecord> {
    const limit = parseMigrationRate(rate);
    return this.change(name, id, by, 'throttle', (m) => ({ ...m, rate: limit }), limit === null ? 'no limit' : `at most ${limit} keys/s`);
  }

  /** `migrate cancel`: the keys that moved go back, and the route ends as it was. */
  async cancel(name: string, by: string, id?: string): Promise<MigrationRecord> {
    return this.change(name, id, by, 'cancel', (m) => {
      if (m.cancel) return m;
      if (!canCancelMigration(m)) throw new RefusedError(`migration ${m.id} can no longer be cancelled: it is at step ${m.next}, past which it finishes by itself`);
      // No leader has begun it (nothing in the route yet): it ends here.
      if (m.steps.length === 0) return RecordControls.cancelledUnbegun(m, by);
      return { ...m, cancel: { by, at: new Date().toISOString() } };
    });
  }

  private change(name: string, id: string | undefined, by: string, what: string, change: (m: MigrationRecord) => MigrationRecord, detail?: string): Promise<MigrationRecord> {
    return this.controls.change(name, id, by, what, change, detail);
  }

  /** `specRevision`: the spec the request was checked against; the migration is created only if it is still current. */
  private async start(route: Route, specRevision: string, moves: Moves, reason: string, request: MigrationRequest): Promise<MigrationRecord> {
    const rate = parseMigrationRate(request.rate);
    const down = targetsDown(route, moves, await this.health.read(route.cluster));
    if (down.length > 0) {
      const which = down.map((d) => `${d.shard} (master ${d.master}: down for ${d.down} of the ${d.of} replicas that see it)`).join(', ');
      throw new RefusedError(`the target ${which} cannot take keys now; its failover comes first, then ask again`);
    }
    const now = new Date().toISOString();
    const migration: MigrationRecord = {
      id: newMigrationId(),
      cluster: route.cluster,
      moves,
      state: 'running',
      next: 'survey',
      reason,
      requestedBy: request.requestedBy,
      controller: null,
      createdAt: now,
      updatedAt: now,
      keysMoved: 0,
      keysSeen: 0,
      passes: 0,
      movingSince: null,
      epochBefore: route.epoch,
      epochAfter: null,
      steps: [],
      error: null,
      bigKeys: [],
      rate,
      pause: false,
      reverse: false,
      cancel: null,
    };
    if (request.dryRun) return migration;
    const created = (await this.store.start(migration, { specRevision })).record;
    await this.record(created, 'migration:asked', `${reason}: ${movesText(moves)}${rate === null ? '' : `, at most ${rate} keys/s`}`);
    return created;
  }

  private async route(name: string): Promise<Route> {
    return (await this.cluster(name)).route;
  }

  private cluster(name: string): Promise<StoredCluster> {
    return this.clusters.get(parseInput(clusterName, name, 'cluster name'));
  }

  private async record(m: MigrationRecord, action: string, reason: string): Promise<void> {
    await this.history.append(historyEntry({ cluster: m.cluster, controller: 'admin', action, reason, outcome: 'info' }));
  }
}

/** A record with its rate and time left. */
export function view(m: MigrationRecord, now = Date.now()): MigrationView {
  const slotCount = migrationSlots(m).length;
  const since = m.movingSince ? Date.parse(m.movingSince) : null;
  const elapsed = since === null ? 0 : ((migrationFinished(m) ? Date.parse(m.updatedAt) : now) - since) / 1000;
  const keysPerSecond = since !== null && elapsed > 0 ? Math.round(m.keysMoved / elapsed) : null;
  const left = Math.max(0, m.keysSeen - (m.passes === 0 ? m.keysMoved : 0));
  const secondsLeft = migrationFinished(m) ? 0 : keysPerSecond && m.next === 'move' ? Math.round(left / keysPerSecond) : null;
  return { ...m, slotCount, keysPerSecond, secondsLeft };
}
