/**
 * `cfgserver proxy`: speaks RESP to clients as one Redis would, and sends each command to the
 * master of the shard that owns its key's slot, following the cluster's route in etcd. It keeps
 * serving its last good route while etcd is unreachable, and registers itself (with the epoch it
 * applied) under its own lease. Stateless: run as many as you like.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { Socket, createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'winston';
import { VERSION } from '../version.js';
import { Session } from '../election/session.js';
import { errorMessage } from '../model/errors.js';
import { credentialsOf, type Credentials, type RedisAuth } from '../model/auth.js';
import { environmentCredentials } from '../redis/credentials.js';
import { AuthStore } from '../store/auth-store.js';
import { listenOn } from '../util/listen.js';
import type { Route } from '../model/schemas.js';
import { createEtcd } from '../store/etcd.js';
import { checkEtcdAccess } from '../store/etcd-access.js';
import type { EtcdSecurity } from '../store/etcd-security.js';
import { Keys } from '../store/keys.js';
import { ControllerRegistry } from '../store/controller-registry.js';
import { ProxyRegistry } from '../store/proxy-registry.js';
import { RouteWatcher } from '../store/route-watcher.js';
import { BackendPool, NOT_KNOWN } from './backend.js';
import { CommandSource } from './command-source.js';
import { REDIS_VERSION } from './command-table.js';
import { ProxyMetrics } from './metrics.js';
import { RouteGuard, type ControllerApiAccess } from './route-guard.js';
import { Router } from './router.js';
import type { SessionContext } from './client.js';
import { ClientSession } from './session.js';
import { reply } from './resp.js';

/** How long commands on a slot in its migration's `prepare` phase are held before TRYAGAIN. */
export const MIGRATION_HOLD_MS = 10_000;

export interface ProxyOptions {
  cluster: string;
  listen: string;
  etcd: string;
  /** TLS and/or user+password for etcd (docs/security.md); none: plain, as before. */
  etcdSecurity?: EtcdSecurity;
  /** Token and CA for the controllers' API, asked while cut off from etcd (route-guard.ts). */
  controllerApi?: ControllerApiAccess;
  prefix?: string;
  id?: string;
  /** Clients must AUTH with this password. */
  password: string | null;
  /** The user clients AUTH as (`AUTH user pass`); default `default`. A bare `AUTH pass` is accepted too. */
  user?: string;
  /**
   * Password the proxy sends to the Redis instances when the cluster has no stored credentials
   * (`cfgctl auth set`, which the proxy follows): the old process-wide way, kept as a fallback.
   */
  backendPassword?: string;
  /** HOST:PORT for /metrics. */
  metricsListen?: string;
  /** Connections per Redis instance. */
  poolSize: number;
  /** Commands per client waiting for replies before the proxy stops reading from that client. */
  maxInFlight: number;
  backendTimeoutMs: number;
  /** How long commands on a slot in its migration's `prepare` phase wait (default MIGRATION_HOLD_MS). */
  migrationHoldMs?: number;
  leaseTtlSeconds: number;
  /** FLUSHALL, FLUSHDB, SCRIPT FLUSH, FUNCTION FLUSH on every master; refused otherwise. */
  allowFlush?: boolean;
  // Bounds on what one client, or all of them, can make the proxy hold: docs/proxy.md, "Limits".
  // Left out, each takes its value in LIMIT_DEFAULTS.
  /** Clients connected at once; the next one is told so and closed (Redis: maxclients). */
  maxClients?: number;
  /** Seconds without a request before an idle client is closed; 0: never (Redis: timeout). */
  idleTimeoutSeconds?: number;
  /** TCP keep-alive probes on client sockets after this many idle seconds; 0: off (Redis: tcp-keepalive). */
  tcpKeepAliveSeconds?: number;
  /** Replies held for a client past which it is closed; 0: no bound (Redis: client-output-buffer-limit normal). */
  clientOutputLimitBytes?: number;
  /** The same for a subscribed client (Redis: client-output-buffer-limit pubsub, hard). */
  pubsubOutputLimitBytes?: number;
  /** Request bytes per client awaiting replies before reading from it pauses; 0: no bound. */
  maxInFlightBytes?: number;
  /** Commands one MULTI may queue; 0: no bound. */
  maxMultiCommands?: number;
  log: Logger;
}

const MiB = 1024 * 1024;

export const LIMIT_DEFAULTS = {
  maxClients: 10_000,
  idleTimeoutSeconds: 0,
  tcpKeepAliveSeconds: 300,
  // Redis leaves normal clients unbounded; a proxy shared by many applications should not let one
  // client that stopped reading take all its memory. 256 MiB is far above any sane reply backlog.
  clientOutputLimitBytes: 256 * MiB,
  pubsubOutputLimitBytes: 32 * MiB,
  maxInFlightBytes: 64 * MiB,
  // Redis has no bound (the queue lives in its memory); here it lives in the proxy's.
  maxMultiCommands: 10_000,
} as const;

const MAX_CLIENTS_REACHED = '-ERR max number of clients reached\r\n';

export class Proxy {
  readonly id: string;
  readonly metrics = new ProxyMetrics();
  private readonly etcd: Etcd3;
  private readonly keys: Keys;
  private readonly watcher: RouteWatcher;
  private readonly registry: ProxyRegistry;
  private readonly authStore: AuthStore;
  /** The cluster's stored Redis credentials as last read (null: none stored, the fallback applies). */
  private backendAuth: RedisAuth | null = null;
  private authFollower: { stop(): Promise<void> } | null = null;
  private readonly pools = new Map<string, BackendPool>();
  private readonly sessions = new Set<ClientSession>();
  private router: Router | null = null;
  /**
   * Clients are read from only once the proxy is in the registry: a barrier after a route change
   * waits for the proxies it finds there, so one that served before registering could be missed.
   */
  private markRegistered!: () => void;
  private readonly firstRegistration = new Promise<void>((resolve) => (this.markRegistered = resolve));
  /** The newest epoch applied with nothing older in flight to a master it no longer names. */
  private drainedEpoch: number | null = null;
  private server: Server | null = null;
  private httpServer: HttpServer | null = null;
  private session: Session | null = null;
  private address = '';
  private metricsAddress: string | null = null;
  private nextSessionId = 1;
  private stopping = false;
  private readonly startedAt = new Date().toISOString();
  private readonly commands: CommandSource;
  private idleSweep: NodeJS.Timeout | null = null;
  private readonly controllerRegistry: ControllerRegistry;
  private controllerAddresses: string[] = [];
  /** Live controllers without an HTTP API: the route guard cannot ask them (route-guard.ts). */
  private controllersWithoutApi = 0;
  private controllerRefresh: NodeJS.Timeout | null = null;
  /** Refuses forwarding when the route may be stale (cut off from etcd and every controller). */
  readonly guard: RouteGuard;
  private acceptErrorsLogged = 0;
  private lastAcceptErrorLog = 0;

  constructor(private readonly o: ProxyOptions) {
    this.id = o.id ?? `${hostname()}-${process.pid}`;
    this.commands = new CommandSource(o.log);
    this.etcd = createEtcd({ endpoints: o.etcd, security: o.etcdSecurity });
    const keys = new Keys(o.prefix);
    this.keys = keys;
    this.registry = new ProxyRegistry(this.etcd, keys);
    this.authStore = new AuthStore(this.etcd, keys);
    this.watcher = new RouteWatcher({ cluster: o.cluster, etcd: this.etcd, prefix: o.prefix, retryMs: 500 });
    this.controllerRegistry = new ControllerRegistry(this.etcd, keys);
    const ttlMs = o.leaseTtlSeconds * 1000;
    this.guard = new RouteGuard({
      cluster: o.cluster,
      ttlMs,
      checkMs: Math.max(100, Math.min(500, ttlMs / 4)),
      leaseRemainingMs: () => (this.session?.isAlive() ? this.session.remainingMs() : 0),
      epoch: () => this.router?.epoch ?? 0,
      proxyId: this.id,
      drainedEpoch: () => this.drainedEpoch,
      controllers: () => this.controllerAddresses,
      controllersWithoutApi: () => this.controllersWithoutApi,
      api: o.controllerApi,
      onRoute: (route) => this.apply(route),
      log: o.log,
    });
  }

  /** Where /metrics and /healthz are served (with the real port when 0 was asked), if anywhere. */
  get metricsListenAddress(): string | null {
    return this.metricsAddress;
  }

  /** The controllers' API base URLs the proxy would ask while cut off from etcd. */
  knownControllers(): string[] {
    return [...this.controllerAddresses];
  }

  /** The address clients connect to (with the real port when 0 was asked). */
  get listenAddress(): string {
    return this.address;
  }

  async start(): Promise<void> {
    const log = this.o.log;
    let lastUnreachableLog = 0;
    this.watcher.on('unreachable', (err) => {
      if (Date.now() - lastUnreachableLog > 10_000) log.warn('etcd unreachable: serving the last good route', { error: err.message, epoch: this.router?.epoch ?? null });
      lastUnreachableLog = Date.now();
    });
    this.watcher.on('invalid', (err) => {
      this.metrics.counters.invalidRoutes++;
      log.error('ignored a route value', { error: err.message, epoch: this.router?.epoch ?? null });
    });
    this.watcher.on('deleted', () => log.error('the route key was deleted: serving the last good route', { epoch: this.router?.epoch ?? null }));
    this.watcher.on('change', (route) => this.apply(route));
    // Credentials etcd refuses end the proxy here, with one line; an etcd that does not answer yet
    // is waited for below, as always.
    await checkEtcdAccess(this.etcd, this.keys);
    // The credentials before the first backend connection (the route's command table is read at once).
    this.authFollower = await this.authStore.follow(this.o.cluster, {
      change: (auth) => this.useCredentials(auth),
      problem: (err) => log.error('cannot use the stored Redis credentials; keeping the last good ones', { error: err.message, version: this.backendAuth?.version ?? null }),
    });
    const route = await this.watcher.start();
    if (!route) {
      log.warn('no route yet for this cluster; waiting for one', { cluster: this.o.cluster });
      await new Promise<void>((resolve) => this.watcher.once('change', () => resolve()));
    }
    // The first commands should already be routed with the backends' own command table.
    await this.commands.ready(this.o.backendTimeoutMs);
    await this.listen();
    if (this.o.metricsListen) await this.serveMetrics(this.o.metricsListen);
    await this.register();
    await this.refreshControllers();
    this.controllerRefresh = setInterval(() => void this.refreshControllers(), 5000);
    this.controllerRefresh.unref();
    this.guard.start();
    log.info('proxy ready', { id: this.id, cluster: this.o.cluster, listen: this.address, epoch: this.router?.epoch, metrics: this.metricsAddress });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.guard.stop();
    if (this.controllerRefresh) clearInterval(this.controllerRefresh);
    if (this.idleSweep) clearInterval(this.idleSweep);
    this.server?.close();
    for (const s of this.sessions) s.socket.destroy();
    this.httpServer?.close();
    for (const pool of this.pools.values()) pool.close();
    await this.session?.close(true);
    await this.authFollower?.stop();
    await this.watcher.stop();
    this.etcd.close();
  }

  /** The most commands any one client has waiting for replies (a bound the proxy keeps). */
  maxClientInFlight(): number {
    let max = 0;
    for (const s of this.sessions) max = Math.max(max, s.inFlight);
    return max;
  }

  /** The controllers' HTTP addresses, kept while etcd answers, for when it does not (route-guard.ts). */
  private async refreshControllers(): Promise<void> {
    try {
      const list = await this.controllerRegistry.list();
      this.controllerAddresses = list.flatMap((c) => (c.address ? [`${c.tls ? 'https' : 'http'}://${c.address}`] : []));
      this.controllersWithoutApi = list.filter((c) => !c.address).length;
    } catch {
      // etcd unreachable: keep the last list
    }
  }

  /**
   * New credentials: every connection opened from now on uses them (the first password first,
   * then the next). Connections already authenticated stay so — Redis does not log a connection
   * out when its password is removed — so nothing is cut. The registration then says which version
   * this proxy uses: a rotation removes the old password only once every proxy uses the new one.
   */
  private useCredentials(auth: RedisAuth | null): void {
    if ((auth?.version ?? null) === (this.backendAuth?.version ?? null)) return;
    this.backendAuth = auth;
    this.o.log.info('Redis credentials changed: new backend connections use them', { version: auth?.version ?? null, user: auth?.user ?? null, passwords: auth?.passwords.length ?? 0 });
    void this.register();
  }

  /** The credentials for the backends now: the cluster's stored ones, else the fallback. */
  private readonly backendCredentials = (): Credentials | null => {
    return this.backendAuth ? credentialsOf(this.backendAuth) : environmentCredentials(this.o.backendPassword);
  };

  private apply(route: Route): void {
    // The watch and a controller (while etcd is cut off) may both bring an epoch: apply it once.
    if (this.router && route.epoch <= this.router.epoch) return;
    const previous = this.router;
    this.router = new Router(route, (address) => this.poolFor(address));
    this.metrics.counters.epoch = route.epoch;
    this.o.log.info('route applied', { epoch: route.epoch, previous: previous?.epoch ?? null, masters: this.router.masterAddresses });
    for (const s of this.sessions) s.routeChanged(this.router);
    this.commands.onMasters(this.router.masterAddresses, (address) => this.poolFor(address));
    // Pools of instances that are no longer masters close once their in-flight commands are done.
    const inUse = new Set(route.shards.map((s) => s.master));
    const gone: BackendPool[] = [];
    for (const [address, pool] of this.pools) {
      if (!inUse.has(address)) {
        gone.push(pool);
        this.retire(address, pool);
      }
    }
    this.acknowledgeWhenDrained(route.epoch, gone);
  }

  /**
   * Registers `epoch` as applied only once nothing sent under an older route to a master it no
   * longer names is in flight: the epoch in the registration means "drained", which is what a
   * controller's barrier needs. What is still in flight after the backend timeout is answered
   * with an error that says the command may have run, so the acknowledgement cannot hang.
   */
  private acknowledgeWhenDrained(epoch: number, gone: BackendPool[]): void {
    const deadline = Date.now() + this.o.backendTimeoutMs;
    const check = () => {
      if (this.router?.epoch !== epoch) return; // a newer route took over: it acknowledges itself
      const busy = gone.filter((pool) => pool.inFlight() > 0);
      if (busy.length > 0 && Date.now() < deadline) return void setTimeout(check, 10).unref();
      for (const pool of busy) {
        pool.close(reply.error(`ERR proxy: the route (epoch ${epoch}) no longer names ${pool.address}, which did not answer in time; ${NOT_KNOWN}`));
        if (this.pools.get(pool.address) === pool) this.pools.delete(pool.address);
      }
      void this.settle().then(() => {
        if (this.router?.epoch !== epoch) return;
        this.drainedEpoch = epoch;
        void this.register();
      });
    };
    check();
  }

  /**
   * Resolves once everything sent to a backend before the call has been answered: a PING on each
   * shared connection with commands in flight, twice — the first round lets the commands sent under
   * older routes finish, among them the MIGRATEs of moving slots, whose replies send their commands
   * on to the target; the second lets those finish. A migration's barrier relies on it: no proxy
   * still writes where an older route sent a slot's keys (docs/migration.md).
   */
  private async settle(): Promise<void> {
    for (let round = 0; round < 2; round++) await Promise.all([...this.pools.values()].map((pool) => pool.settled()));
  }

  private retire(address: string, pool: BackendPool): void {
    const check = setInterval(() => {
      if (this.router?.masterAddresses.includes(address)) return clearInterval(check); // it came back
      if (pool.inFlight() === 0) {
        clearInterval(check);
        if (this.pools.get(address) === pool) this.pools.delete(address);
        pool.close();
      }
    }, 1000);
    check.unref();
  }

  private poolFor(address: string): BackendPool {
    let pool = this.pools.get(address);
    if (!pool) {
      pool = new BackendPool(address, this.o.poolSize, {
        timeoutMs: this.o.backendTimeoutMs,
        credentials: this.backendCredentials,
        onLatency: (s) => this.metrics.backendLatency.observe(s),
      });
      this.pools.set(address, pool);
    }
    return pool;
  }

  private limit<K extends keyof typeof LIMIT_DEFAULTS>(name: K): number {
    return this.o[name] ?? LIMIT_DEFAULTS[name];
  }

  /** Past --max-clients: told so and closed, as Redis does. */
  private refuse(accepted: Socket): void {
    this.metrics.counters.rejectedConnections++;
    accepted.on('error', () => undefined);
    // Whatever the client already sent is read and dropped, so that closing does not reset the
    // connection before the error reaches it; one that keeps it open is cut after a second.
    accepted.on('data', () => undefined);
    accepted.resume();
    accepted.end(MAX_CLIENTS_REACHED);
    setTimeout(() => accepted.destroy(), 1000).unref();
  }

  /**
   * A failed accept (EMFILE, ENFILE, ...) is survived: the server keeps listening, and the log
   * says so at most every 10 s, however many fail (they come in bursts, one per pending client).
   */
  private onAcceptError(err: NodeJS.ErrnoException): void {
    this.metrics.counters.acceptErrors++;
    const now = Date.now();
    if (now - this.lastAcceptErrorLog < 10_000) return;
    this.o.log.error('could not accept a client connection; still listening', { error: err.message, code: err.code, failedSinceLastLog: this.metrics.counters.acceptErrors - this.acceptErrorsLogged });
    this.lastAcceptErrorLog = now;
    this.acceptErrorsLogged = this.metrics.counters.acceptErrors;
  }

  /** One timer for every session (not one per session): closes those idle for --idle-timeout. */
  private startIdleSweep(): void {
    const ms = this.limit('idleTimeoutSeconds') * 1000;
    if (ms <= 0) return;
    this.idleSweep = setInterval(() => {
      const now = Date.now();
      for (const s of this.sessions) {
        if (!s.isIdle(now, ms)) continue;
        this.metrics.counters.idleClosed++;
        this.o.log.debug('closed an idle client', { client: s.id, idleSeconds: ms / 1000 });
        s.socket.destroy();
      }
    }, Math.min(1000, ms));
    this.idleSweep.unref();
  }

  private async listen(): Promise<void> {
    const counters = this.metrics.counters;
    const maxClients = this.limit('maxClients');
    const keepAliveMs = this.limit('tcpKeepAliveSeconds') * 1000;
    const ctx: SessionContext<ClientSession> = {
      router: () => this.router!,
      password: this.o.password,
      user: this.o.user ?? 'default',
      guard: this.guard,
      allowFlush: this.o.allowFlush ?? false,
      maxInFlight: this.o.maxInFlight,
      limits: {
        maxInFlightBytes: this.limit('maxInFlightBytes'),
        outputBytes: this.limit('clientOutputLimitBytes'),
        pubsubOutputBytes: this.limit('pubsubOutputLimitBytes'),
        maxMultiCommands: this.limit('maxMultiCommands'),
      },
      keyMove: {
        credentials: this.backendCredentials,
        timeoutMs: this.o.backendTimeoutMs,
        onMoved: (keys) => (counters.keysMoved += keys),
      },
      // Longer than a controller's barrier wait (6 s by default): a leader that moves on releases
      // the hold well before; one that does not leaves clients a retryable error, not a hang.
      migrationHoldMs: this.o.migrationHoldMs ?? MIGRATION_HOLD_MS,
      onOutputLimit: (s, bytes, limit) => {
        counters.outputLimitClosed++;
        this.o.log.warn('closed a client past its output buffer limit', { client: s.id, bytes, limit, subscribed: s.pubsub?.active ?? false });
      },
      info: () => this.info(),
      onCommand: () => counters.commands++,
      onError: () => counters.errors++,
      onClose: (s) => {
        this.sessions.delete(s);
        counters.connections--;
      },
    };
    // Every client socket reads into one shared buffer (the `onread` option) rather than into a
    // buffer allocated per read. net.Server has no `onread` option, so the accepted handle (paused:
    // nothing read yet) is wrapped in a socket that has one; without a handle, 'data' events serve.
    const shared = Buffer.allocUnsafe(64 * 1024);
    // No Nagle delay, and keep-alive probes that find clients gone without a FIN (a host gone, a
    // NAT that forgot the connection): set by the server on the accepted handle, which the socket
    // made below keeps; two setsockopt calls fewer in JavaScript for every client that connects.
    const tcp = { noDelay: true, keepAlive: keepAliveMs > 0, keepAliveInitialDelay: keepAliveMs };
    this.server = createServer({ pauseOnConnect: true, ...tcp }, (accepted: Socket) => {
      if (this.sessions.size >= maxClients) return this.refuse(accepted);
      counters.connectionsOpened++;
      counters.connections++;
      const handle = (accepted as unknown as { _handle: unknown })._handle;
      let session: ClientSession;
      if (handle) {
        (accepted as unknown as { _handle: unknown })._handle = null;
        const options = { handle, onread: { buffer: shared, callback: (n: number, buf: Buffer) => void session.onData(buf.subarray(0, n)) } };
        const socket = new Socket(options as unknown as ConstructorParameters<typeof Socket>[0]);
        session = new ClientSession(socket, ctx, this.nextSessionId++, true);
        void this.firstRegistration.then(() => socket.resume());
      } else {
        session = new ClientSession(accepted, ctx, this.nextSessionId++);
        void this.firstRegistration.then(() => accepted.resume());
      }
      this.sessions.add(session);
    });
    // Once listening, 'error' means a failed accept.
    this.address = await listenOn(this.server, this.o.listen, (err) => this.onAcceptError(err));
    this.startIdleSweep();
  }

  /** (Re)writes this proxy's registration with the epoch in use; opens a new lease if needed. */
  private async register(): Promise<void> {
    if (this.stopping || !this.address) return;
    try {
      if (!this.session?.isAlive()) {
        // The listener goes in with the lease: a loss while registering is not missed.
        this.session = await Session.open(this.etcd, this.o.leaseTtlSeconds, this.o.log, { onLost: () => setTimeout(() => void this.register(), 500) });
      }
      const now = new Date().toISOString();
      await this.registry.put(
        { id: this.id, cluster: this.o.cluster, address: this.address, metrics: this.metricsAddress, pid: process.pid, version: VERSION, epoch: this.drainedEpoch, authVersion: this.backendAuth?.version ?? null, startedAt: this.startedAt, updatedAt: now },
        this.session.leaseId,
      );
      this.markRegistered();
    } catch (err) {
      this.o.log.warn('could not register in etcd; will retry', { error: errorMessage(err) });
      setTimeout(() => void this.register(), 1000).unref();
    }
  }

  private async serveMetrics(hostPort: string): Promise<void> {
    this.httpServer = createHttpServer((req, res) => {
      if (req.url === '/metrics') {
        void this.metrics.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
          res.end(text);
        });
      } else if (req.url === '/healthz') {
        // Not ready while the route may be stale: a load balancer should send clients elsewhere.
        const ok = !this.guard.blocked;
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok, id: this.id, epoch: this.router?.epoch ?? null, drainedEpoch: this.drainedEpoch, routeConfirmed: ok }));
      } else {
        res.writeHead(404).end();
      }
    });
    this.metricsAddress = await listenOn(this.httpServer, hostPort, (err) => this.o.log.warn('metrics server error', { error: errorMessage(err) }));
  }

  private info(): string {
    const c = this.metrics.counters;
    const lines = [
      '# Server',
      `redis_version:${REDIS_VERSION}`,
      `cfgserver_version:${VERSION}`,
      'redis_mode:proxy',
      `process_id:${process.pid}`,
      `proxy_id:${this.id}`,
      `tcp_port:${this.address.split(':').pop()}`,
      '',
      '# Clients',
      `connected_clients:${c.connections}`,
      '',
      '# Stats',
      `total_connections_received:${c.connectionsOpened}`,
      `total_commands_processed:${c.commands}`,
      `total_error_replies:${c.errors}`,
      `rejected_connections:${c.rejectedConnections}`,
      '',
      '# Route',
      `cluster:${this.o.cluster}`,
      `route_epoch:${this.router?.epoch ?? 0}`,
      `shards:${this.router?.masterAddresses.length ?? 0}`,
      ...(this.router?.masterAddresses.map((m, i) => `shard${i}_master:${m}`) ?? []),
      '',
    ];
    return lines.join('\r\n');
  }
}
