/**
 * `cfgserver twemproxy-agent`: keeps one nutcracker serving a cluster's masters. It follows the
 * route in etcd (the RouteWatcher the proxy uses), renders the pool (render.ts), writes the file
 * atomically, makes nutcracker use it (nutcracker.ts), then registers the route epoch it applied
 * the way cfgserver's proxy does, so that a failover's barrier waits for it and `cfgctl proxies`
 * lists it (docs/twemproxy.md).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'winston';
import { historyEntry } from '../model/history.js';
import { RefusedError, ValidationError, errorMessage } from '../model/errors.js';
import type { Route } from '../model/schemas.js';
import type { RedisAuth } from '../model/auth.js';
import { AuthStore } from '../store/auth-store.js';
import { ClusterStore } from '../store/cluster-store.js';
import { createEtcd } from '../store/etcd.js';
import { HistoryStore } from '../store/history-store.js';
import { Keys } from '../store/keys.js';
import { RouteWatcher } from '../store/route-watcher.js';
import { VERSION } from '../version.js';
import { ChildNutcracker, PidFileNutcracker, checkConfig, nutcrackerArgv, type NutcrackerControl } from './nutcracker.js';
import { Registration } from './registration.js';
import { parseTemplate, poolChanges, poolMembers, poolName, renderNutcracker, renderedListen, templateWarnings, type NutcrackerTemplate, type PoolMember, type RenderOptions } from './render.js';

export interface AgentOptions {
  cluster: string;
  etcd: string;
  prefix?: string;
  id?: string;
  /** The file nutcracker reads; the agent owns it (its first content is the template, unless `template`). */
  configFile: string;
  /** The operator's nutcracker file to take the pool settings from; default: `configFile` as found at start. */
  templateFile?: string;
  pool: string | null;
  listen: string | null;
  /** Run nutcracker as a child with this command line (`-c configFile` added), or signal the one a service manager runs. */
  nutcracker: { kind: 'child'; command: string } | { kind: 'pid-file'; pidFile: string; binary: string };
  leaseTtlSeconds: number;
  log: Logger;
}

/** One change applied: what the benchmark and the history read off it. */
export interface AppliedChange {
  epoch: number;
  /** Whether nutcracker was restarted (false: the pool did not change, e.g. a slave was added). */
  restarted: boolean;
  /** From stopping the old nutcracker to the new one accepting connections, when restarted. */
  restartMs: number | null;
}

export class TwemproxyAgent {
  readonly id: string;
  private readonly etcd: Etcd3;
  private readonly keys: Keys;
  private readonly watcher: RouteWatcher;
  private readonly registration: Registration;
  private readonly history: HistoryStore;
  private template: NutcrackerTemplate = { pools: [] };
  private renderOptions: RenderOptions;
  private control: NutcrackerControl | null = null;
  private listen = '';
  /** The file content nutcracker runs with now (null before the first start). */
  private running: string | null = null;
  private members: PoolMember[] = [];
  private appliedEpoch: number | null = null;
  private readonly startedAt = new Date().toISOString();
  private pending: Route | null = null;
  private newestEpoch = 0;
  private applying: Promise<void> | null = null;
  private stopped = false;
  /** Routes are only noted until the first file has passed nutcracker's own check. */
  private checked = false;
  private readonly listeners = new Set<(change: AppliedChange) => void>();
  /** The cluster's Redis credentials as last read (docs/redis-auth.md), and the version nutcracker runs with. */
  private auth: RedisAuth | null = null;
  private authVersionRunning: number | null = null;
  private authFollower: { stop(): Promise<void> } | null = null;

  constructor(private readonly o: AgentOptions) {
    this.id = o.id ?? `${hostname()}-${process.pid}-twemproxy`;
    this.etcd = createEtcd({ endpoints: o.etcd });
    this.keys = new Keys(o.prefix);
    this.watcher = new RouteWatcher({ cluster: o.cluster, etcd: this.etcd, prefix: o.prefix, retryMs: 500 });
    this.history = new HistoryStore(this.etcd, this.keys);
    this.renderOptions = { pool: o.pool, listen: o.listen };
    this.registration = new Registration(this.etcd, this.keys, o.leaseTtlSeconds, () => ({
      id: this.id,
      cluster: o.cluster,
      address: this.listen,
      metrics: null,
      pid: this.control?.pid() ?? process.pid,
      version: VERSION,
      epoch: this.appliedEpoch,
      // A rotation removes the old password only once every proxy, this one included, uses the new.
      authVersion: this.authVersionRunning,
      kind: 'twemproxy',
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
    }), o.log);
  }

  /** The epoch nutcracker serves now, or null before the first start. */
  get epoch(): number | null {
    return this.appliedEpoch;
  }

  /** Where clients connect: the rendered pool's listen address. */
  get listenAddress(): string {
    return this.listen;
  }

  /** The pid of the nutcracker serving now. */
  nutcrackerPid(): number | null {
    return this.control?.pid() ?? null;
  }

  /** Called after every route change applied (for the benchmark and tests). */
  onApplied(listener: (change: AppliedChange) => void): void {
    this.listeners.add(listener);
  }

  /**
   * Refuses a cluster that is not behind twemproxy (its slots could migrate under nutcracker);
   * loads and checks the template; starts nutcracker on the current route; registers.
   */
  async start(): Promise<void> {
    const { spec } = await new ClusterStore(this.etcd, this.keys).get(this.o.cluster);
    if (spec.proxy !== 'twemproxy') {
      throw new RefusedError(`cluster ${this.o.cluster} has proxy ${spec.proxy}: set it to twemproxy first (cfgctl cluster set ${this.o.cluster} --proxy twemproxy), so that no slot migration can move keys nutcracker would not follow`);
    }
    this.template = loadTemplate(this.o.templateFile ?? this.o.configFile, this.o.templateFile !== undefined);
    this.listen = renderedListen(this.template, this.renderOptions, this.o.cluster);
    for (const warning of templateWarnings(this.template, poolName(this.template, this.renderOptions, this.o.cluster))) this.o.log.warn(warning);
    const nutcracker = this.o.nutcracker;
    /** The binary that checks the first file (`-t`). */
    let binary: string;
    if (nutcracker.kind === 'child') {
      const { argv, pidFile } = nutcrackerArgv(nutcracker.command, this.o.configFile);
      this.control = new ChildNutcracker(argv, pidFile, this.listen, this.o.log);
      binary = argv[0]!;
    } else {
      this.control = new PidFileNutcracker(nutcracker.pidFile, this.listen);
      binary = nutcracker.binary;
      // A managed nutcracker already runs on the file as it is: restarted only if the route changes it.
      this.running = readText(this.o.configFile) ?? '';
    }
    this.watcher.on('unreachable', (err) => this.o.log.warn('etcd unreachable: nutcracker keeps the last route', { error: err.message, epoch: this.appliedEpoch }));
    this.watcher.on('invalid', (err) => this.o.log.error('ignored a route value', { error: err.message, epoch: this.appliedEpoch }));
    this.watcher.on('deleted', () => this.o.log.error('the route key was deleted: nutcracker keeps the last route', { epoch: this.appliedEpoch }));
    this.watcher.on('change', (route) => this.schedule(route));
    // The password nutcracker sends to every server (redis_auth), followed like the route: a
    // rotation's new one is rendered and nutcracker restarted, then the version registered.
    this.authFollower = await new AuthStore(this.etcd, this.keys).follow(this.o.cluster, {
      change: (auth) => {
        if (auth?.user) this.o.log.error('the cluster\'s Redis credentials name an ACL user: nutcracker can only send AUTH <password> (the default user); its servers will refuse it', { user: auth.user, version: auth.version });
        const changed = (auth?.version ?? null) !== (this.auth?.version ?? null);
        this.auth = auth;
        this.renderOptions = { ...this.renderOptions, password: auth?.passwords[0] ?? null };
        const current = this.watcher.current();
        if (changed && current && this.checked) this.schedule(current);
      },
      problem: (err) => this.o.log.error('cannot use the stored Redis credentials; nutcracker keeps the last ones', { error: err.message }),
    });
    this.renderOptions = { ...this.renderOptions, password: this.auth?.passwords[0] ?? null };
    const route = await this.watcher.start();
    if (!route) throw new RefusedError(`cluster ${this.o.cluster} has no route in etcd`);
    // The first file is checked by nutcracker itself: a template it refuses fails here, at start.
    const text = renderNutcracker(this.template, route, this.renderOptions);
    const tmp = await writeTemp(this.o.configFile, text);
    try {
      await checkConfig(binary, tmp);
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    this.checked = true;
    this.schedule(this.watcher.current() ?? route);
    await this.applying;
    if (this.appliedEpoch === null) throw new RefusedError(`nutcracker could not be started for cluster ${this.o.cluster} (see the log above)`);
    this.o.log.info('twemproxy agent ready', { id: this.id, cluster: this.o.cluster, listen: this.listen, epoch: this.appliedEpoch, servers: this.members });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.applying;
    await this.watcher.stop();
    await this.authFollower?.stop();
    await this.control?.stop();
    await this.registration.close();
    this.etcd.close();
  }

  /**
   * Routes are applied one at a time; while one is, only the newest that arrives waits. A route
   * older than one already scheduled (a retry that comes late) is dropped.
   */
  private schedule(route: Route): void {
    // The same epoch again is rendered anew (the credentials changed); an older one is dropped
    // (the newer one scheduled renders with the new credentials too).
    if (route.epoch < this.newestEpoch) return;
    this.newestEpoch = route.epoch;
    this.pending = route;
    if (this.applying || !this.checked) return;
    this.applying = (async () => {
      while (this.pending && !this.stopped) {
        const next = this.pending;
        this.pending = null;
        await this.apply(next);
      }
      this.applying = null;
    })();
  }

  private async apply(route: Route): Promise<void> {
    const log = this.o.log;
    let text: string;
    try {
      text = renderNutcracker(this.template, route, this.renderOptions);
    } catch (err) {
      // The agent keeps serving the last good file and does not register the epoch: the barrier
      // then names this agent, and the operator reads why here.
      log.error('cannot render the nutcracker pool for this route; nutcracker keeps the last one', { epoch: route.epoch, error: errorMessage(err) });
      return;
    }
    const members = poolMembers(route);
    const authChanged = (this.auth?.version ?? null) !== this.authVersionRunning && this.running !== null;
    const reason = authChanged ? `the cluster's Redis password changed (credentials version ${this.auth?.version ?? 'none'})` : poolChanges(this.members, members);
    const started = performance.now();
    const first = this.running === null;
    const changed = text !== this.running;
    try {
      if (changed) {
        await rename(await writeTemp(this.o.configFile, text), this.o.configFile);
        if (first) await this.control!.ensureRunning();
        else await this.control!.restart();
        this.running = text;
      } else {
        await this.control!.ensureRunning();
      }
    } catch (err) {
      log.error('nutcracker did not take the new pool; trying again in 1 s', { epoch: route.epoch, error: errorMessage(err) });
      setTimeout(() => {
        if (!this.stopped) this.schedule(route);
      }, 1000).unref();
      return;
    }
    const restarted = changed && !first;
    const restartMs = restarted ? Math.round(performance.now() - started) : null;
    this.members = members;
    this.appliedEpoch = route.epoch;
    this.authVersionRunning = this.renderOptions.password ? (this.auth?.version ?? null) : null;
    // Registered only now: the old nutcracker is gone, so nothing is in flight to a master this
    // route no longer names (what the barrier's "drained" means).
    await this.registration.update();
    if (restarted) {
      log.info('nutcracker restarted on a new pool', { epoch: route.epoch, reason, restartMs, pid: this.control!.pid() });
      void this.history
        .append(historyEntry({ cluster: this.o.cluster, controller: this.id, action: 'twemproxy:restart', reason: `route epoch ${route.epoch}: ${reason}`, outcome: 'done', durationMs: restartMs }))
        .catch((err) => log.warn('could not record the restart in history', { error: errorMessage(err) }));
    } else {
      log.info('route applied', { epoch: route.epoch, servers: members, nutcracker: first ? 'started' : 'pool unchanged, not restarted' });
    }
    for (const listener of this.listeners) listener({ epoch: route.epoch, restarted, restartMs });
  }
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The template: the given file (which must exist), or the config file if it exists yet. */
function loadTemplate(file: string, required: boolean): NutcrackerTemplate {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return { pools: [] };
    throw new ValidationError(`cannot read ${file}: ${errorMessage(err)}`);
  }
  return parseTemplate(text, file);
}

/**
 * Writes `text` beside `file` (same folder, so that the rename is atomic) and returns its path.
 * Readable by its owner only when it holds the cluster's password (`redis_auth`), else by all.
 */
async function writeTemp(file: string, text: string): Promise<string> {
  const tmp = `${file}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: /^\s+redis_auth:/m.test(text) ? 0o600 : 0o644 });
  return tmp;
}
