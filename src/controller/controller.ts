/**
 * One controller replica. Every replica registers itself, probes every instance of every cluster
 * and publishes what it saw; the one holding the leader lock also reconciles: it makes Redis match
 * the route. State lives in etcd only — kill a replica at any moment and another carries on.
 */
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'winston';
import { Elector } from '../election/elector.js';
import { NotLeaderError, errorMessage } from '../model/errors.js';
import { instancesOf } from '../model/route.js';
import { RedisPool } from '../redis/pool.js';
import { CredentialBook } from '../redis/credentials.js';
import type { StoredCluster } from '../store/cluster-store.js';
import { createEtcd } from '../store/etcd.js';
import { EtcdMirror } from '../store/etcd-mirror.js';
import { checkEtcdAccess } from '../store/etcd-access.js';
import { loadEtcdSecurity } from '../store/etcd-security.js';
import { Keys } from '../store/keys.js';
import { CONTROLLER_ETCD_SETTING_NAMES, etcdSecuritySettingsOf, type ControllerConfig } from './config.js';
import { LeaderDuties } from './leader-duties.js';
import { ControllerMetrics } from './metrics.js';
import { HealthTracker } from './health-tracker.js';
import type { Observations } from '../model/observations.js';
import { Limiter, probeAll } from './observe.js';
import { Reconciler } from './reconciler.js';
import { ConfigApplier } from './config-applier.js';
import { ReplicaQuorum } from './replica-quorum.js';
import { MigrationDriver } from './migrations/migration-driver.js';
import { MIGRATION_DEFAULTS } from './migrations/run-migration.js';
import { SPLIT_DEFAULTS, SplitDriver } from './splits/split-run.js';
import type { ControllerApiClient } from './guarded-proxies.js';
import { DEFAULT_MOVER_OPTIONS, KeyMover } from '../migration/mover.js';
import { BigKeyMover, DEFAULT_BIG_KEY_OPTIONS } from '../migration/big-keys.js';
import { createControllerStores, type ControllerStores } from './stores.js';
import { VERSION } from '../version.js';


/** A leader's cycle may run a task step or a repair for a few seconds: that is not a stall. */
const STALL_FLOOR_MS = 10_000;

/**
 * How long a replica's views may go without a completed probe round before it withdraws them:
 * the down window plus two probe periods, and never less than STALL_FLOOR_MS (about what the
 * views' old refresh rule allowed, 2 × 5 s + 1 s).
 */
export function stallAfterMs(probe: { intervalMs: number; timeoutMs: number; downAfterMs: number }): number {
  return Math.max(STALL_FLOOR_MS, probe.downAfterMs + 2 * (probe.intervalMs + probe.timeoutMs));
}

export class Controller {
  readonly id: string;
  readonly etcd: Etcd3;
  readonly keys: Keys;
  readonly metrics = new ControllerMetrics(() => this.isLeader());
  /** Redis connections to every instance; the HTTP API reads live offsets through them too. */
  readonly pool: RedisPool;
  /** Each cluster's Redis credentials, as last read: every connection to an instance uses its cluster's. */
  private readonly credentials = new CredentialBook();
  /** The credential versions the registration last announced. */
  private announcedAuth = '';
  /** The last problem reading each cluster's credentials, logged once. */
  private readonly credentialProblems = new Map<string, string>();
  private readonly stores: ControllerStores;
  /** Everything this replica reads every cycle, kept by one watch (store/etcd-mirror.ts). */
  private readonly mirror: EtcdMirror;
  private readonly limiter: Limiter;
  private readonly tracker: HealthTracker;
  private readonly elector: Elector;
  private duties: LeaderDuties;
  private clusters: StoredCluster[] = [];
  private readonly lastProbe = new Map<string, number>();
  /** When each cluster's views were last published in full (a probe round that completed). */
  private readonly lastPublished = new Map<string, number>();
  /** Last attempt to withdraw each cluster's stale views (so a failing etcd is not hammered). */
  private readonly withdrawTried = new Map<string, number>();
  /** The `lastPublished` time whose views were withdrawn: done once per stall. */
  private readonly withdrawnAfter = new Map<string, number>();
  /** The lease each cluster's views were last published under. */
  private readonly publishedUnder = new Map<string, string>();
  /** A withdrawal in flight per cluster: the next publication waits for it, or the delete could land after it. */
  private readonly withdrawing = new Map<string, Promise<void>>();
  private readonly quorum: ReplicaQuorum;
  private readonly migrations: MigrationDriver;
  private readonly splits: SplitDriver;
  private readonly splitPool: RedisPool;
  private readonly busy = new Set<string>();
  /** Clusters this replica has listed before (spreadProbes). */
  private readonly seen = new Set<string>();
  private readonly lastSentence = new Map<string, string>();
  private lastRefresh = 0;
  /**
   * Whether the cluster list must be read again: set by every change of a cluster's index entry,
   * spec, route or credentials in the etcd copy (and by its loading), so that the list is not
   * decoded again every `refreshMs` for nothing while the copy serves.
   */
  private listStale = true;
  private loopTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = new Date().toISOString();
  private apiTls = false;
  /** The token and CA this replica uses to ask the other controllers' APIs (its own API's). */
  private apiClient: ControllerApiClient | undefined;

  constructor(
    private readonly config: ControllerConfig,
    private readonly log: Logger,
    /** The HTTP address, once the API listens, for the registry. */
    private apiAddress: string | null = null,
  ) {
    this.id = config.id ?? `${hostname()}-${process.pid}`;
    // A hung etcd member answers nothing until the call's deadline; each call then moves to
    // another member. A third of the lease TTL per attempt keeps a cycle (a dozen calls) from
    // stalling for many seconds on one member, as the 3 s default did (detection took 8 s).
    const security = loadEtcdSecurity(etcdSecuritySettingsOf(config), process.env, CONTROLLER_ETCD_SETTING_NAMES);
    this.etcd = createEtcd({ endpoints: config.etcd, callTimeoutMs: Math.max(500, Math.round((config.leaseTtlSeconds * 1000) / 3)), retries: 2, security });
    this.keys = new Keys(config.prefix);
    // Probes have their cluster's own timeout; this one bounds admin commands (REPLICAOF, ...).
    this.pool = new RedisPool({ timeoutMs: 5000, credentials: this.credentials.forAddress });
    this.mirror = new EtcdMirror(this.etcd, this.keys, log);
    this.mirror.on('change', (key) => this.noticeChange(key));
    this.mirror.on('synced', () => (this.listStale = true));
    this.stores = createControllerStores(this.etcd, this.keys, this.mirror);
    this.limiter = new Limiter(config.probeConcurrency);
    this.tracker = new HealthTracker(this.id);
    // One elector for the replica's lifetime: it opens a new session (and campaigns again) after
    // every failure, for ever, so a replica never stays up without a lease.
    this.elector = new Elector({
      etcd: this.etcd,
      keys: this.keys,
      id: this.id,
      ttlSeconds: config.leaseTtlSeconds,
      log,
      onSession: async (session) => {
        // Health keys went with the previous lease: publish everything again under the new one.
        this.tracker.reset();
        await this.register(session.leaseId);
      },
    });
    this.elector.on('elected', () => this.metrics.leader.set(1));
    this.elector.on('deposed', () => this.metrics.leader.set(0));
    // A leader's term is one create revision of the leader key: a newer one is a leader change,
    // whoever it is and whichever session of this replica sees it. Revisions only grow, so a
    // late answer about an older term (a campaign's read) is not counted again.
    let leaderTerm: bigint | null = null;
    this.elector.on('leader', (created, holder) => {
      const revision = BigInt(created);
      if (leaderTerm !== null && revision <= leaderTerm) return;
      leaderTerm = revision;
      this.metrics.leaderChanges.inc();
      this.log.info('a new leader holds the lock', { controller: this.id, leader: holder, fence: created });
    });
    this.migrations = new MigrationDriver({
      controllerId: this.id,
      ...this.stores,
      election: this.elector,
      mover: new KeyMover({ ...DEFAULT_MOVER_OPTIONS, credentials: this.credentials.forAddress }),
      bigKeys: new BigKeyMover({ ...DEFAULT_BIG_KEY_OPTIONS, credentials: this.credentials.forAddress }),
      bigKeyChunk: DEFAULT_BIG_KEY_OPTIONS.chunk,
      log,
      metrics: this.metrics,
      ...MIGRATION_DEFAULTS,
      controllerApi: () => this.apiClient,
    });
    // Its own pool: the shared one forgets (disconnects) instances no route names, as the new
    // master of a split is until its cut-over.
    this.splitPool = new RedisPool({ timeoutMs: 5000, credentials: this.credentials.forAddress });
    this.splits = new SplitDriver({ controllerId: this.id, ...this.stores, election: this.elector, pool: this.splitPool, log, ...SPLIT_DEFAULTS, controllerApi: () => this.apiClient, wake: (cluster) => this.lastProbe.delete(cluster), metrics: this.metrics });
    this.quorum = new ReplicaQuorum({ settings: this.stores.replicas, election: this.elector, controllerId: this.id, log });
    this.duties = this.newDuties();
    // A new session is a new episode: refusals are recorded again and repair back-offs start over.
    this.elector.on('session', () => (this.duties = this.newDuties()));
  }

  private newDuties(): LeaderDuties {
    const reconciler = new Reconciler({
      controllerId: this.id,
      pool: this.pool,
      history: this.stores.history,
      election: this.elector,
      metrics: this.metrics,
      log: this.log,
      backoffMs: this.config.repairBackoffMs,
    });
    return new LeaderDuties({
      controllerId: this.id,
      pool: this.pool,
      ...this.stores,
      election: this.elector,
      log: this.log,
      metrics: this.metrics,
      reconciler,
      quorum: this.quorum,
      // Long enough for a replica that sees more to take the lock; if none does, this one takes
      // it back afterwards.
      stepAside: (reason) => this.elector.stepAside(2 * this.config.leaseTtlSeconds * 1000, reason),
      migrations: this.migrations,
      splits: this.splits,
      mayHaveRecord: (cluster) => this.mirror.has(this.keys.activeMigration(cluster)) !== false,
      config: new ConfigApplier({ controllerId: this.id, pool: this.pool, configs: this.stores.configs, history: this.stores.history, election: this.elector, log: this.log, intervalMs: this.config.configCheckMs }),
    });
  }

  /**
   * Writes this replica's registration, with the version of each cluster's credentials it uses:
   * a rotation waits until every live replica uses the new password before it removes the old.
   */
  private async register(leaseId: string): Promise<void> {
    const auth = this.credentials.versions();
    await this.stores.registry.register({ id: this.id, address: this.apiAddress, ...(this.apiTls ? { tls: true as const } : {}), version: VERSION, pid: process.pid, startedAt: this.startedAt, auth }, leaseId);
    this.announcedAuth = JSON.stringify(auth);
  }

  /**
   * Reads every cluster's credentials into the book. A malformed value keeps the last good ones
   * (a typo in etcd must not cut the controllers off from Redis); a change is logged (the version,
   * never a password) and announced in the registration.
   */
  private async refreshCredentials(clusters: StoredCluster[]): Promise<void> {
    const reads = await Promise.allSettled(clusters.map((c) => this.stores.auth.read(c.spec.name)));
    clusters.forEach((cluster, i) => {
      const name = cluster.spec.name;
      const read = reads[i]!;
      if (read.status === 'fulfilled') {
        this.credentialProblems.delete(name);
        const auth = read.value.auth;
        if (this.credentials.update(name, auth, instancesOf(cluster.route))) {
          this.log.info('Redis credentials changed: new connections use them', { cluster: name, version: auth?.version ?? null, user: auth?.user ?? null, passwords: auth?.passwords.length ?? 0 });
        }
      } else {
        this.credentials.update(name, undefined, instancesOf(cluster.route));
        // Said once per problem, not every refresh.
        const problem = errorMessage(read.reason);
        if (this.credentialProblems.get(name) !== problem) this.log.error('cannot read Redis credentials; keeping the last good ones', { cluster: name, error: problem });
        this.credentialProblems.set(name, problem);
      }
    });
    this.credentials.retain(new Set(clusters.map((c) => c.spec.name)));
    const session = this.elector.currentSession();
    if (session && JSON.stringify(this.credentials.versions()) !== this.announcedAuth) await this.register(session.leaseId).catch((err) => this.log.warn('could not announce the credentials version; will retry', { error: errorMessage(err) }));
  }

  /** Where the HTTP API listens, and whether it speaks https, for the registry (proxies ask it). */
  setApiAddress(address: string, tls = false): void {
    this.apiAddress = address;
    this.apiTls = tls;
  }

  /** Controllers share one API token (and, with https, one CA): the leader asks the others with it. */
  setApiClient(client: ControllerApiClient): void {
    this.apiClient = client;
  }

  isLeader(): boolean {
    return this.elector.isLeader();
  }

  async start(): Promise<void> {
    // Credentials etcd refuses end the process here, with one line, before it writes anything;
    // an etcd that does not answer yet is waited for, as always.
    if ((await checkEtcdAccess(this.etcd, this.keys)) === 'unreachable') this.log.warn('etcd does not answer yet; retrying', { etcd: this.config.etcd });
    this.mirror.start();
    this.elector.start();
    this.loopTimer = setInterval(() => void this.tick(), 100);
  }

  /** Stops acting; the leader resigns first so that another replica takes over at once. */
  async stop(): Promise<void> {
    clearInterval(this.loopTimer);
    await this.elector.stop();
    await this.migrations.settle();
    await this.splits.settle();
    await this.mirror.stop();
    this.splitPool.close();
    this.migrations.close();
    this.pool.close();
    this.etcd.close();
    this.log.info('controller stopped', { controller: this.id });
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    // While the copy serves, changes mark the list stale, and a read every 10 refresh periods is a
    // safety net (a registration that failed to announce new credentials is retried by it).
    const every = this.mirror.isSynced() ? 10 * this.config.refreshMs : this.config.refreshMs;
    if (this.listStale || now - this.lastRefresh >= every) {
      this.lastRefresh = now;
      this.listStale = false;
      await this.refreshClusters(now);
    }
    for (const cluster of this.clusters) {
      const name = cluster.spec.name;
      this.withdrawIfStalled(cluster);
      if (this.busy.has(name) || now - (this.lastProbe.get(name) ?? 0) < cluster.spec.probe.intervalMs) continue;
      this.busy.add(name);
      this.lastProbe.set(name, now);
      void this.cycle(cluster).finally(() => this.busy.delete(name));
    }
  }

  /**
   * Acts at once on what changed in etcd rather than at the next probe: a cluster created, removed
   * or whose credentials changed refreshes the list; a task asked for, a migration or split asked
   * for, or a route or spec changed starts the cluster's cycle now (its leader duties pick them up).
   */
  private noticeChange(key: string): void {
    const cluster = this.keys.clusterOfKey(key);
    if (cluster === null) {
      if (key.startsWith(this.keys.clusterIndex())) this.listStale = true;
      return;
    }
    if (key === this.keys.auth(cluster) || key === this.keys.spec(cluster) || key === this.keys.route(cluster)) this.listStale = true;
    if (key.startsWith(this.keys.tasks(cluster)) || key === this.keys.activeMigration(cluster) || key === this.keys.route(cluster) || key === this.keys.spec(cluster)) this.lastProbe.delete(cluster);
  }

  /**
   * A cluster seen for the first time is first probed at a random point of its interval, so that
   * the clusters a replica starts with (or a bench creates at once) do not all probe in the same
   * 100 ms and then stay in step: the probes, and the leader's work, spread over the interval.
   */
  private spreadProbes(clusters: StoredCluster[], now: number): void {
    for (const c of clusters) {
      const name = c.spec.name;
      if (!this.lastProbe.has(name) && !this.seen.has(name)) this.lastProbe.set(name, now - Math.random() * c.spec.probe.intervalMs);
      this.seen.add(name);
    }
    const listed = new Set(clusters.map((c) => c.spec.name));
    for (const name of this.seen) if (!listed.has(name)) this.seen.delete(name);
  }

  private async refreshClusters(now = Date.now()): Promise<void> {
    try {
      const listing = await this.stores.clusterList.list();
      for (const problem of listing.problems) this.log.error('skipping a cluster whose value is malformed', { error: problem.message, key: problem.key });
      await this.refreshCredentials(listing.clusters);
      this.clusters = listing.clusters;
      this.spreadProbes(listing.clusters, now);
      this.metrics.clusters.set(this.clusters.length);
      const names = new Set(this.clusters.map((c) => c.spec.name));
      this.metrics.retainClusters(names);
      this.duties.retain(names);
      this.pool.retain(new Set(this.clusters.flatMap((c) => instancesOf(c.route))));
      this.tracker.retain(new Set(this.clusters.flatMap((c) => instancesOf(c.route).map((a) => `${c.spec.name}/${a}`))));
    } catch (err) {
      this.log.warn('cannot read clusters; keeping the last list', { error: errorMessage(err) });
    }
  }

  /**
   * One cycle for one cluster: observe, publish, and — on the leader — decide and act.
   * Returns what it did, as a sentence, which is also logged.
   */
  async cycle(cluster: StoredCluster): Promise<string> {
    const name = cluster.spec.name;
    const started = performance.now();
    const sentence = await this.cycleSentence(cluster).catch((err) => `cycle failed: ${errorMessage(err)}`);
    this.metrics.cycleSeconds.observe((performance.now() - started) / 1000);
    // Say it at info level when it is news; a sentence repeated every cycle goes to debug.
    const news = !sentence.startsWith('no action') && this.lastSentence.get(name) !== sentence;
    this.lastSentence.set(name, sentence);
    this.log.log(news ? 'info' : 'debug', sentence, { cluster: name, controller: this.id });
    return sentence;
  }

  private async cycleSentence(cluster: StoredCluster): Promise<string> {
    const name = cluster.spec.name;
    const observations = await probeAll(this.pool, this.limiter, instancesOf(cluster.route), cluster.spec.probe.timeoutMs);
    let down = 0;
    for (const obs of observations.values()) {
      this.metrics.probes.inc({ result: obs.info ? 'ok' : 'failed' });
      this.metrics.probeSeconds.observe(obs.latencyMs / 1000);
      if (!obs.info) down++;
    }
    this.metrics.instancesDown.set({ cluster: name }, down);
    await this.publishHealth(cluster, observations);

    if (!this.elector.isLeader()) return `no action: not the leader; ${observations.size} instances probed, ${down} unreachable`;
    try {
      const done = await this.duties.run(cluster, observations);
      if (done.length) return done.join('; ');
      return `no action: I am the leader and Redis matches the route${cluster.spec.paused ? ' (cluster paused)' : ''}; ${down} of ${observations.size} instances unreachable`;
    } catch (err) {
      if (err instanceof NotLeaderError) return `stopped acting: ${err.message}`;
      throw err;
    }
  }

  /**
   * A view says "this is what I see" for as long as its replica's lease lives, however old it is:
   * views are written only on change, so an idle cluster writes nothing. The lease covers a
   * replica that is dead or frozen (kill -9, SIGSTOP, a blocked event loop, a long GC pause): its
   * keep-alives stop with it, and its views expire with the lease. It does not cover a replica
   * that is alive but whose probe round of a cluster never completes — a cycle held by a call that
   * hangs, a leader task that runs long: the keep-alives go on from the same process while the
   * views go stale, and a stale "down" could still count as a vote for a master that is back.
   * So this watchdog, driven by the loop timer rather than by the round itself, withdraws (deletes)
   * this replica's views of a cluster whose last completed round is older than `stallAfterMs`;
   * the next round that completes publishes them all again.
   */
  private withdrawIfStalled(cluster: StoredCluster): void {
    const name = cluster.spec.name;
    const now = Date.now();
    const stallMs = stallAfterMs(cluster.spec.probe);
    const last = this.lastPublished.get(name);
    if (last === undefined || now - last < stallMs || this.withdrawnAfter.get(name) === last) return;
    if (now - (this.withdrawTried.get(name) ?? 0) < 1000) return;
    this.withdrawTried.set(name, now);
    // Whatever happens to the delete, the next completed round publishes everything again.
    this.tracker.reset(name);
    const done = this.stores.health.withdraw(name, this.id).then(
      () => {
        this.withdrawnAfter.set(name, last);
        this.log.warn("withdrew this replica's health views: its probe round has not completed for too long", { cluster: name, controller: this.id, sinceMs: now - last, stallMs });
      },
      (err) => {
        this.log.warn('could not withdraw stale health views; will try again', { cluster: name, error: errorMessage(err) });
      },
    );
    this.withdrawing.set(name, done);
    void done.finally(() => {
      if (this.withdrawing.get(name) === done) this.withdrawing.delete(name);
    });
  }

  private async publishHealth(cluster: StoredCluster, observations: Observations): Promise<void> {
    const name = cluster.spec.name;
    const session = this.elector.currentSession();
    if (!session) return;
    await this.withdrawing.get(name);
    // Views live with the lease they were written under. Nothing is rewritten while it stays the
    // same, so views written under a lease that has since been replaced (a round that began
    // before a new session) would vanish with it and never come back: publish them all again.
    if (this.publishedUnder.get(name) !== session.leaseId) this.tracker.reset(name);
    const writes = [...observations.values()]
      .map((obs) => this.tracker.update(name, obs, cluster.spec.probe.downAfterMs))
      .filter((h) => h !== null)
      .map((h) => this.stores.health.put(name, h, session.leaseId));
    const results = await Promise.allSettled(writes);
    const failed = results.filter((r) => r.status === 'rejected');
    // The leader judges on every replica's views as its etcd copy holds them: its own just written
    // must be there first (a watch event away), or it would judge on its previous round.
    const written = results.flatMap((r) => (r.status === 'fulfilled' ? [BigInt(r.value)] : []));
    if (written.length && this.elector.isLeader()) await this.mirror.reach(written.reduce((a, b) => (a > b ? a : b)), 1000);
    if (failed.length) {
      // Publish everything again next time rather than trusting a partial write.
      this.tracker.reset(name);
      this.publishedUnder.delete(name);
      this.log.warn('could not publish health', { cluster: name, failed: failed.length, error: errorMessage((failed[0] as PromiseRejectedResult).reason) });
    } else {
      this.publishedUnder.set(name, session.leaseId);
      this.lastPublished.set(name, Date.now());
    }
  }

}
