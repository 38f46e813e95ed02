/**
 * What an admin can ask of cfgserver. The CLI and the HTTP API are thin layers over this: they
 * parse and print; every rule lives here. Changes are optimistic transactions: read, change the
 * route, write only if nobody else wrote in between — the loser gets a ConflictError.
 */
import type { Etcd3 } from 'etcd3';
import { AlreadyExistsError, ConflictError, NotFoundError, RefusedError, ValidationError } from '../model/errors.js';
import { taskHistoryEntry } from '../model/history.js';
import { canUndo, newTask, whyNotUndoable } from '../model/task.js';
import { assignUnownedEvenly, countSlots, findShard, instancesOf, newRoute, nextRoute, nextShardId, unassignedSlots } from '../model/route.js';
import {
  DEFAULT_SLOTS,
  address,
  clusterFileSchema,
  clusterName,
  clusterSpecSchema,
  replicaCount,
  parseInput,
  probeSettings,
  failoverPolicy,
  routeSchema,
  shardId,
  slotCount,
  type ClusterFile,
  type ClusterSpec,
  type HistoryEntry,
  type InstanceHealth,
  type Route,
  type Shard,
  type ProxyInfo,
  type ReplicasSeen,
  type ReplicasSetting,
  type Task,
  isTerminal,
} from '../model/schemas.js';
import { ClusterStore, type StoredCluster } from '../store/cluster-store.js';
import { ControllerRegistry, type ControllerStatus } from '../store/controller-registry.js';
import { HealthStore } from '../store/health-store.js';
import type { HealthViews } from '../model/observations.js';
import { HistoryStore } from '../store/history-store.js';
import { TaskStore } from '../store/task-store.js';
import { ProxyRegistry } from '../store/proxy-registry.js';
import { AuthService } from './auth-service.js';
import type { RedisPool } from '../redis/pool.js';
import { SplitService } from './split-service.js';
import { quorumOf, replicaBase } from '../model/replicas.js';
import { failoverBudget, type FailoverBudget } from '../model/failover-budget.js';
import { readLive, type LiveReading } from './live-replication.js';
import { whyNoAnswer } from '../redis/answers.js';
import { MigrationService, view as migrationView, type MigrationView } from './migration-service.js';
import { ConfigService, configMark, type InstanceConfigMark } from './config-service.js';
import { ReplicaSettings } from '../store/replica-settings.js';
import type { Keys } from '../store/keys.js';

export interface CreateClusterRequest {
  name: string;
  slots?: number;
  /** Parsed YAML of a cluster file (validated here). */
  file?: unknown;
  /** Add instances that do not answer anyway (see InstanceCheck). */
  force?: boolean;
  /** Told about each instance that does not answer when `force` lets it in. */
  warn?: (warning: string) => void;
}

export interface AddShardRequest {
  id?: string;
  master: string;
  slaves?: string[];
  force?: boolean;
  warn?: (warning: string) => void;
}

/**
 * An instance put in a route must answer: a typo in an address would otherwise be accepted
 * silently, and the leader would then judge a master down that never was up. Checked only by an
 * AdminService that talks to Redis (one built with a pool: the CLI's and the controller API's).
 */
type InstanceCheck = Pick<CreateClusterRequest, 'force' | 'warn'>;

export interface ClusterSummary {
  name: string;
  slotCount: number;
  shards: number;
  instances: number;
  assignedSlots: number;
  epoch: number;
  paused: boolean;
}

export interface InstanceStatus {
  address: string;
  /** The role the route gives it. */
  expectedRole: 'master' | 'slave';
  /**
   * What the controller saw when the state last changed, null if no controller has seen it yet.
   * Views are written only on change: its offset is as old as its `observedAt`.
   */
  health: InstanceHealth | null;
  /** Read from Redis by this request (offset now); null when no live read was asked for. */
  live: LiveReading | null;
  /**
   * The leader refused to make this instance (seen as a master, routed as a slave) a slave, because
   * that would discard data only it holds; null otherwise. From the cluster's history.
   */
  refused: { summary: string; reason: string; at: string } | null;
  /**
   * Its Redis configuration against the desired one, read now (paused or not): in sync, drifted
   * (which keys), unreachable or unmanaged; null when nothing was read from Redis (`--no-live`).
   */
  config: InstanceConfigMark | null;
  /**
   * What the controller saw that the route contradicts (a slave following another master, a route
   * master that replicates), paused or not; null when it agrees or nothing was seen. The leader
   * repairs it within a cycle unless the cluster is paused.
   */
  mismatch: string | null;
}

export interface ShardStatus {
  id: string;
  slots: [number, number][];
  slotCount: number;
  instances: InstanceStatus[];
}

export interface ClusterStatus {
  spec: ClusterSpec;
  route: Route;
  unassignedSlots: number;
  shards: ShardStatus[];
  /** Which controller's view the health comes from. */
  healthFrom: string | null;
  /** Whether `live` was read from Redis, and with what timeout (ms); null when not. */
  liveTimeoutMs: number | null;
  /** The slot migration under way, with keys/s and time left; null when none. */
  migration: MigrationView | null;
  /** Automatic failovers used in the current window, of how many, and when one frees up. */
  failoverBudget: FailoverBudget;
  problems: string[];
}

export interface ReplicaStatus {
  /** Set by the operator (`cfgctl replicas set N`), or null. */
  configured: ReplicasSetting | null;
  /** The most replicas a leader saw registered together for a minute, or null. */
  seen: ReplicasSeen | null;
  /** Replicas registered now. */
  registered: number;
  /** What a failover needs: `needed` votes, a majority of `replicas`. */
  quorum: { needed: number; replicas: number; source: string };
}

export class AdminService {
  readonly clusters: ClusterStore;
  readonly health: HealthStore;
  readonly history: HistoryStore;
  readonly controllers: ControllerRegistry;
  /** Slot migrations: migrate, drain, rebalance, and their controls. */
  readonly migrations: MigrationService;
  /** Shard splits by replication (docs/split.md). */
  readonly splits: SplitService;
  /** The desired Redis configuration: set, get, unset, diff. */
  readonly config: ConfigService;
  readonly tasks: TaskStore;
  readonly proxies: ProxyRegistry;
  readonly replicas: ReplicaSettings;
  /** Redis credentials per cluster: set, show, rotate (docs/redis-auth.md). */
  readonly auth: AuthService;

  /**
   * With `redis`, `describeCluster` can read offsets from Redis now (the CLI and the controller's
   * API pass one; without it, offsets are those of the health views, with their age).
   */
  constructor(
    etcd: Etcd3,
    keys: Keys,
    private readonly redis?: RedisPool,
  ) {
    this.replicas = new ReplicaSettings(etcd, keys);
    this.proxies = new ProxyRegistry(etcd, keys);
    this.tasks = new TaskStore(etcd, keys);
    this.clusters = new ClusterStore(etcd, keys);
    this.health = new HealthStore(etcd, keys);
    this.history = new HistoryStore(etcd, keys);
    this.controllers = new ControllerRegistry(etcd, keys);
    this.migrations = new MigrationService(etcd, keys);
    this.splits = new SplitService(etcd, keys, redis);
    this.config = new ConfigService(etcd, keys, redis);
    this.auth = new AuthService(etcd, keys);
  }

  async createCluster(request: CreateClusterRequest): Promise<Route> {
    const name = parseInput(clusterName, request.name, 'cluster name');
    const file: ClusterFile = request.file === undefined ? { shards: [] } : parseInput(clusterFileSchema, request.file, 'cluster file');
    if (file.name !== undefined && file.name !== name) throw new ValidationError(`the cluster file names cluster ${file.name}, not ${name}`);
    if (request.slots !== undefined && file.slots !== undefined && request.slots !== file.slots) {
      throw new ValidationError(`--slots ${request.slots} disagrees with slots: ${file.slots} in the cluster file`);
    }
    const slots = parseInput(slotCount, request.slots ?? file.slots ?? DEFAULT_SLOTS, 'slot count');
    const spec = parseInput(
      clusterSpecSchema,
      {
        name,
        slotCount: slots,
        hash: 'crc16',
        paused: false,
        proxy: file.proxy,
        probe: probeSettings.parse(file.probe ?? {}),
        failover: failoverPolicy.parse(file.failover ?? {}),
        createdAt: new Date().toISOString(),
      },
      'cluster',
    );
    const shards: Shard[] = [];
    for (const s of file.shards) shards.push({ id: s.id ?? nextShardId({ shards }), master: s.master, slaves: s.slaves, slots: [] });
    // Epochs start above the current etcd revision: a re-created cluster never goes back in epoch.
    const epoch = (await this.clusters.currentRevision()) + 1;
    const draft = newRoute(name, slots, shards.length ? assignUnownedEvenly({ slotCount: slots, shards }) : [], epoch);
    const route = parseInput(routeSchema, draft, 'cluster topology');
    await this.refuseInstancesInUse(name, instancesOf(route));
    await this.refuseSilentInstances(instancesOf(route), spec.probe.timeoutMs, request);
    await this.clusters.create(spec, route);
    return route;
  }

  async listClusters(): Promise<{ clusters: ClusterSummary[]; problems: string[] }> {
    const listing = await this.clusters.list();
    return {
      clusters: listing.clusters.map(({ spec, route }) => ({
        name: spec.name,
        slotCount: spec.slotCount,
        shards: route.shards.length,
        instances: instancesOf(route).length,
        assignedSlots: spec.slotCount - unassignedSlots(route).length,
        epoch: route.epoch,
        paused: spec.paused,
      })),
      problems: listing.problems.map((p) => p.message),
    };
  }

  async getCluster(name: string): Promise<StoredCluster> {
    return this.clusters.get(parseInput(clusterName, name, 'cluster name'));
  }

  async route(name: string): Promise<Route> {
    return (await this.getCluster(name)).route;
  }

  /**
   * Shards and instances with what the controllers saw; with `live` (and a Redis pool), each
   * instance's offset read now, each read bounded by the cluster's probe timeout.
   */
  async describeCluster(name: string, options: { live?: boolean } = {}): Promise<ClusterStatus> {
    const { spec, route } = await this.getCluster(name);
    const problems: string[] = [];
    const liveTimeoutMs = options.live !== false && this.redis ? spec.probe.timeoutMs : null;
    const [views, leader, history, live, migration, drift, tasks] = await Promise.all([
      this.health.read(spec.name, (err) => problems.push(err.message)),
      this.controllers.leader(),
      this.history.list(spec.name, REFUSAL_LOOKBACK, (err) => problems.push(err.message)),
      liveTimeoutMs !== null && this.redis ? readLive(this.redis, instancesOf(route), liveTimeoutMs) : Promise.resolve(new Map<string, LiveReading>()),
      this.migrations.store.active(spec.name).catch((err) => {
        problems.push(`the migration under way could not be read: ${err instanceof Error ? err.message : String(err)}`);
        return null;
      }),
      liveTimeoutMs !== null ? this.configMarks(route, liveTimeoutMs, problems) : Promise.resolve(null),
      this.tasks.list(spec.name, (err) => problems.push(err.message)),
    ]);
    const { source, view } = chooseView(views, leader?.controller ?? null);
    const refusals = latestReplicaofRefusals(history);
    const statusOf = (addr: string, expectedRole: 'master' | 'slave', master: string): InstanceStatus => {
      const health = view.get(addr) ?? null;
      const refusal = refusals.get(addr);
      // A refusal holds only while the instance is still the master it was: once an operator
      // discarded its data (it replicates now), the old entry is just history.
      const stillRefused = refusal && expectedRole === 'slave' && health?.reachable && health.role === 'master';
      return {
        address: addr,
        expectedRole,
        health,
        live: live.get(addr) ?? null,
        refused: stillRefused ? refusal : null,
        config: drift?.get(addr) ?? null,
        mismatch: health ? replicationMismatch(health, expectedRole, master) : null,
      };
    };
    return {
      spec,
      route,
      unassignedSlots: unassignedSlots(route).length,
      shards: route.shards.map((s) => ({
        id: s.id,
        slots: s.slots,
        slotCount: countSlots(s.slots),
        instances: [statusOf(s.master, 'master', s.master), ...s.slaves.map((a) => statusOf(a, 'slave', s.master))],
      })),
      healthFrom: source,
      liveTimeoutMs,
      migration: migration ? migrationView(migration.record) : null,
      failoverBudget: failoverBudget(tasks.map((t) => t.task), spec.failover, Date.now()),
      problems,
    };
  }

  /** Each instance's config mark; a desired config that cannot be read is a problem, not a failure of the whole show. */
  private async configMarks(route: Route, timeoutMs: number, problems: string[]): Promise<Map<string, InstanceConfigMark> | null> {
    try {
      return new Map((await this.config.diffRoute(route, timeoutMs)).map((d) => [d.instance, configMark(d)]));
    } catch (err) {
      problems.push(`the desired config could not be compared: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    }
  }

  async deleteCluster(name: string): Promise<void> {
    await this.clusters.delete(parseInput(clusterName, name, 'cluster name'));
  }

  async addShard(name: string, request: AddShardRequest): Promise<Shard> {
    const current = await this.getCluster(name);
    const master = parseInput(address, request.master, 'master address');
    const slaves = (request.slaves ?? []).map((s) => parseInput(address, s, 'slave address'));
    const id = request.id === undefined ? nextShardId(current.route) : parseInput(shardId, request.id, 'shard id');
    if (findShard(current.route, id)) throw new AlreadyExistsError(`cluster ${name} already has a shard ${id}`);
    const shard: Shard = { id, master, slaves, slots: [] };
    await this.refuseInstancesInUse(name, [master, ...slaves], current.route);
    const route = parseInput(routeSchema, nextRoute(current.route, [...current.route.shards, shard]), 'route');
    await this.refuseSilentInstances([master, ...slaves], current.spec.probe.timeoutMs, request);
    await this.clusters.writeRoute(route, current.routeRevision);
    return shard;
  }

  async removeShard(name: string, id: string): Promise<void> {
    const current = await this.getCluster(name);
    const shard = findShard(current.route, parseInput(shardId, id, 'shard id'));
    if (!shard) throw new NotFoundError(`cluster ${name} has no shard ${id}`);
    const owned = countSlots(shard.slots);
    if (owned > 0) throw new RefusedError(`shard ${id} still owns ${owned} slots; migrate them away first (cfgctl shard drain)`);
    // The record first: a migration a leader has not begun yet is not in the route.
    const active = await this.migrations.store.active(current.spec.name);
    if (active?.record.moves.some((m) => m.from === id || m.to === id)) throw new RefusedError(`migration ${active.record.id} moves slots to or from shard ${id}; wait for it to end (cfgctl migrations ${current.spec.name})`);
    const route = nextRoute(
      current.route,
      current.route.shards.filter((s) => s.id !== shard.id),
    );
    await this.clusters.writeRoute(route, current.routeRevision);
  }

  /** Gives every unowned slot to a shard, evenly; slots that have an owner do not move. */
  async assignSlotsEvenly(name: string): Promise<{ assigned: number; route: Route }> {
    const current = await this.getCluster(name);
    const free = unassignedSlots(current.route).length;
    if (free === 0) return { assigned: 0, route: current.route };
    const route = parseInput(routeSchema, nextRoute(current.route, assignUnownedEvenly(current.route)), 'route');
    await this.clusters.writeRoute(route, current.routeRevision);
    return { assigned: free, route };
  }

  async listControllers(): Promise<{ controllers: ControllerStatus[]; problems: string[] }> {
    const problems: string[] = [];
    const controllers = await this.controllers.list((err) => problems.push(err.message));
    return { controllers, problems };
  }

  /** The configured replica count, the most seen, and the failover quorum they make. */
  async replicaStatus(): Promise<{ status: ReplicaStatus; problems: string[] }> {
    const problems: string[] = [];
    const [counts, controllers] = await Promise.all([this.replicas.read((err) => problems.push(err.message)), this.controllers.list((err) => problems.push(err.message))]);
    const base = replicaBase(counts.configured?.replicas ?? null, counts.seen?.count ?? null, controllers.length);
    const quorum = quorumOf(base.replicas, controllers.length);
    return { status: { configured: counts.configured, seen: counts.seen, registered: controllers.length, quorum: { ...quorum, source: base.source } }, problems };
  }

  /** Sets how many controller replicas the deployment runs (1..99); with null, removes the setting. */
  async setReplicas(count: unknown): Promise<ReplicaStatus> {
    if (count === null) await this.replicas.setConfigured(null);
    else await this.replicas.setConfigured({ replicas: parseInput(replicaCount, count, 'replica count'), setAt: new Date().toISOString() });
    return (await this.replicaStatus()).status;
  }

  async listHistory(name: string, count = 100): Promise<{ entries: HistoryEntry[]; problems: string[] }> {
    const { spec } = await this.getCluster(name);
    const problems: string[] = [];
    const entries = await this.history.list(spec.name, count, (err) => problems.push(err.message));
    return { entries, problems };
  }

  /**
   * Changes a cluster's probe and failover settings and its proxy kind; unknown or invalid values
   * change nothing. The proxy kind changes only while no slot migration is under way (checked in
   * the same transaction): twemproxy does not follow the slots a migration moves.
   */
  async updateSettings(name: string, patch: { probe?: Record<string, unknown>; failover?: Record<string, unknown>; proxy?: unknown }): Promise<ClusterSpec> {
    const current = await this.getCluster(name);
    const spec = parseInput(
      clusterSpecSchema,
      {
        ...current.spec,
        ...(patch.proxy === undefined ? {} : { proxy: patch.proxy }),
        probe: { ...current.spec.probe, ...definedOnly(patch.probe) },
        failover: { ...current.spec.failover, ...definedOnly(patch.failover) },
      },
      'settings',
    );
    const proxyChanges = spec.proxy !== current.spec.proxy;
    if (proxyChanges && current.route.migrating.length > 0) throw new RefusedError(proxyKindRefusal(name, spec.proxy));
    await this.clusters.writeSpec(spec, current.specRevision, { unlessMigrating: proxyChanges, refusal: proxyKindRefusal(name, spec.proxy) });
    return spec;
  }

  async setPaused(name: string, paused: boolean): Promise<boolean> {
    const current = await this.getCluster(name);
    if (current.spec.paused === paused) return false;
    await this.clusters.writeSpec({ ...current.spec, paused }, current.specRevision);
    return true;
  }

  /**
   * Asks the leader for a planned switchover of a shard's master: writes a pending task, which
   * the leader carries out. Refused at once when the shard already has a task in flight.
   */
  async requestSwitchover(name: string, request: { shard: string; to?: string; force?: boolean; requestedBy?: string }): Promise<Task> {
    const { route } = await this.getCluster(name);
    const shard = findShard(route, parseInput(shardId, request.shard, 'shard id'));
    if (!shard) throw new NotFoundError(`cluster ${name} has no shard ${request.shard}`);
    const to = request.to === undefined ? null : parseInput(address, request.to, 'target address');
    if (to !== null && !shard.slaves.includes(to)) throw new RefusedError(`${to} is not a slave of shard ${shard.id} (slaves: ${shard.slaves.join(', ') || 'none'})`);
    if (shard.slaves.length === 0) throw new RefusedError(`shard ${shard.id} has no slave to switch to`);
    // A split replicates from this master until its cut-over: a switchover would abandon it (docs/split.md).
    const split = (await this.splits.store.active(route.cluster))?.record;
    if (split && split.source === shard.id) throw new RefusedError(`split ${split.id} of shard ${shard.id} is under way (step ${split.next}); wait for it to end or cancel it (cfgctl split cancel ${route.cluster})`);
    const task = newTask({
      kind: 'switchover',
      cluster: route.cluster,
      shard: shard.id,
      state: 'pending',
      next: 'check',
      oldMaster: shard.master,
      target: to,
      force: request.force ?? false,
      reason: `switchover asked by ${request.requestedBy ?? 'an admin'}${to ? ` to ${to}` : ''}${request.force ? ', forced' : ''}`,
      requestedBy: request.requestedBy ?? 'admin',
      controller: null,
      epochBefore: route.epoch,
    });
    return (await this.tasks.create(task)).task;
  }

  async listProxies(name: string): Promise<{ proxies: ProxyInfo[]; problems: string[] }> {
    const { spec } = await this.getCluster(name);
    const problems: string[] = [];
    const proxies = await this.proxies.list(spec.name, (err) => problems.push(err.message));
    return { proxies, problems };
  }

  async listTasks(name: string): Promise<{ tasks: Task[]; problems: string[] }> {
    const { spec } = await this.getCluster(name);
    const problems: string[] = [];
    const tasks = (await this.tasks.list(spec.name, (err) => problems.push(err.message))).map((t) => t.task);
    return { tasks, problems };
  }

  async getTask(name: string, id: string): Promise<Task> {
    return (await this.tasks.get(parseInput(clusterName, name, 'cluster name'), id)).task;
  }

  /**
   * Asks for a task to end, undoing what it did. A task no leader has taken yet ends at once; a
   * running one is marked, and the leader undoes it before its next step. Refused once the task is
   * past its point of no return (src/model/task.ts): then it finishes by itself.
   */
  async cancelTask(name: string, id: string, by: string): Promise<Task> {
    const cluster = parseInput(clusterName, name, 'cluster name');
    for (let attempt = 1; ; attempt++) {
      const { task, revision } = await this.tasks.get(cluster, id);
      if (isTerminal(task)) throw new RefusedError(`task ${id} has already ended: ${task.state}${task.error ? ` (${task.error})` : ''}`);
      if (!canUndo(task)) throw new RefusedError(`task ${id} can no longer be cancelled: ${whyNotUndoable(task)}`);
      if (task.cancel) return task;
      const at = new Date().toISOString();
      const cancelled: Task =
        task.state === 'pending'
          ? { ...task, state: 'cancelled', next: '-', error: `cancelled by ${by} before a leader took it`, cancel: { by, at }, updatedAt: at, steps: [...task.steps, { step: 'cancel', at, durationMs: null, detail: `cancelled by ${by}` }] }
          : { ...task, cancel: { by, at }, updatedAt: at };
      try {
        await this.tasks.update(cancelled, revision);
      } catch (err) {
        // The leader recorded a step meanwhile: judge again on what it wrote.
        if (err instanceof ConflictError && attempt < 5) continue;
        throw err;
      }
      await this.history.append(
        taskHistoryEntry(task, 'cancel', {
          at,
          controller: by,
          reason: task.state === 'pending' ? `task ${id} cancelled before a leader took it` : `cancel of task ${id} asked at step ${task.next}: the leader undoes it before its next step`,
          outcome: task.state === 'pending' ? 'cancelled' : 'info',
        }),
      );
      return cancelled;
    }
  }

  /** Refuses instances that do not answer a PING, unless forced; forced, each one is a warning. */
  private async refuseSilentInstances(addresses: string[], timeoutMs: number, check: InstanceCheck): Promise<void> {
    if (!this.redis || addresses.length === 0) return;
    const answers = await Promise.all(addresses.map(async (a) => ({ address: a, why: await whyNoAnswer(a, timeoutMs) })));
    const silent = answers.filter((a) => a.why !== null).map((a) => `${a.address} does not answer (${a.why})`);
    if (silent.length === 0) return;
    if (!check.force) throw new RefusedError(`${silent.join('; ')}: check the address or start the instance first; --force adds it anyway`);
    for (const w of silent) check.warn?.(`${w}; added anyway (--force): the controllers will report it down until it answers`);
  }

  /** An instance serves one shard of one cluster: refuse addresses another shard or cluster already uses. */
  private async refuseInstancesInUse(cluster: string, candidates: string[], own?: Route): Promise<void> {
    const seen = new Set<string>();
    for (const addr of candidates) {
      if (seen.has(addr)) throw new ValidationError(`instance ${addr} is listed twice`);
      seen.add(addr);
    }
    const listing = await this.clusters.list();
    const routes = listing.clusters.map((c) => c.route).filter((r) => r.cluster !== cluster);
    if (own) routes.push(own);
    for (const route of routes) {
      for (const shard of route.shards) {
        for (const addr of [shard.master, ...shard.slaves]) {
          if (seen.has(addr)) throw new AlreadyExistsError(`instance ${addr} already serves shard ${shard.id} of cluster ${route.cluster}`);
        }
      }
    }
  }
}

/** How an instance's replication, as seen, contradicts the route; null when it agrees (or is not reachable). */
function replicationMismatch(h: InstanceHealth, expectedRole: 'master' | 'slave', master: string): string | null {
  if (!h.reachable || h.role === 'unknown') return null;
  if (expectedRole === 'master') return h.role === 'slave' ? `replicates from ${h.masterAddress}, but the route names it master` : null;
  if (h.role === 'master') return `is a master, but the route names it a slave of ${master}`;
  return h.masterAddress !== master ? `replicates from ${h.masterAddress}, not from its master ${master}` : null;
}

function definedOnly(o: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
}

/** The leader's view when it has one, else the freshest view of any live controller. */
/** How many recent history entries `describeCluster` searches for replication refusals. */
const REFUSAL_LOOKBACK = 200;

/** The newest refused REPLICAOF per instance. */
function latestReplicaofRefusals(entries: HistoryEntry[]): Map<string, { summary: string; reason: string; at: string }> {
  const found = new Map<string, { summary: string; reason: string; at: string }>();
  for (const e of entries) {
    if (e.action !== 'replicaof' || e.outcome !== 'refused' || !e.target) continue;
    const summary = typeof e.detail?.summary === 'string' ? e.detail.summary : 'refused';
    found.set(e.target, { summary, reason: e.reason, at: e.at }); // oldest first: the last one wins
  }
  return found;
}

function chooseView(views: HealthViews, leader: string | null): { source: string | null; view: Map<string, InstanceHealth> } {
  const fromLeader = leader ? views.get(leader) : undefined;
  if (leader && fromLeader) return { source: leader, view: fromLeader };
  let best: { source: string | null; view: Map<string, InstanceHealth> } = { source: null, view: new Map() };
  let newest = '';
  for (const [controller, view] of views) {
    for (const h of view.values()) {
      if (h.observedAt > newest) {
        newest = h.observedAt;
        best = { source: controller, view };
      }
    }
  }
  return best;
}

function proxyKindRefusal(name: string, proxy: string): string {
  return `cluster ${name} has a slot migration under way: its proxies cannot become ${proxy} until it ends (cfgctl migrations ${name})`;
}
