/**
 * May this proxy go on forwarding with the route it has?
 *
 * While its own etcd lease is alive, yes: it sees every route change through its watch. When it
 * cannot renew the lease (its etcd member hung, its link cut), the route may have changed without
 * it — a failover may have replaced a master it still writes to. Then it asks the controllers'
 * HTTP API (any replica reads the route from etcd):
 * - a controller answers the route: the same epoch confirms it; a newer one is applied at once;
 * - every controller it knows answers that it cannot reach etcd either (or none runs): nobody can
 *   change the route (changes go through etcd, failovers through a controller), so serving the
 *   last one is safe — but not while a controller runs that it cannot ask (one without an HTTP
 *   API, `--listen`): that one may be failing a master over;
 * - nobody answers: the proxy keeps forwarding only until its lease could have expired (the TTL
 *   after the last confirmation), then refuses with CLUSTERDOWN and /healthz says not ready, so
 *   that a stalled proxy cannot write to a master the route no longer names.
 */
import type { Logger } from 'winston';
import { routeSchema, type Route } from '../model/schemas.js';
import { getJson } from '../util/get-json.js';

/** How the proxy reaches the controllers' API when it is protected (docs/security.md). */
export interface ControllerApiAccess {
  /** The bearer token, when the controllers want it on reads. */
  token?: string | null;
  /** The CA of the controllers' https certificates (default: the system's roots). */
  ca?: Buffer;
}

export interface RouteGuardOptions {
  cluster: string;
  /** How long a confirmation holds: the proxy's lease TTL. */
  ttlMs: number;
  /** How often the guard looks (and asks the controllers when it must). */
  checkMs: number;
  /** How long the proxy's own etcd lease surely lives on (0 when it may be gone). */
  leaseRemainingMs(): number;
  /** The epoch in use. */
  epoch(): number;
  /** This proxy's id and the epoch it has drained, told to the controllers it asks (guard-ledger.ts). */
  proxyId: string;
  drainedEpoch(): number | null;
  /** Base URLs (http://HOST:PORT or https://…) of the controller replicas last seen in etcd. */
  controllers(): string[];
  /** How many controller replicas last seen in etcd have no HTTP API to ask (none when absent). */
  controllersWithoutApi?(): number;
  /** Token and CA for a protected API; none: plain requests, as before. */
  api?: ControllerApiAccess;
  /** A newer route a controller gave. */
  onRoute(route: Route): void;
  log: Logger;
}

type Answer = { kind: 'route'; route: Route } | { kind: 'no-etcd' } | { kind: 'none' };

export class RouteGuard {
  /** Logged state: whether the last look found forwarding refused (for the log lines only). */
  private refused = false;
  private confirmedUntil: number;
  private timer: NodeJS.Timeout | null = null;
  private asking = false;
  /** See inDoubt. True until the first look. */
  private doubt = true;
  /** Controllers that refused our token, logged once each. */
  private readonly refusedBy = new Set<string>();

  constructor(private readonly o: RouteGuardOptions) {
    this.confirmedUntil = Date.now() + o.ttlMs;
  }

  /**
   * Forwarding is refused: the lease is not alive *now* and no controller confirmed the route
   * within the TTL. Computed on every call rather than at the last look, so that the proxy stops
   * at its lease's own deadline — before etcd drops its registration and a barrier stops waiting
   * for it — not up to one look later.
   */
  get blocked(): boolean {
    return Date.now() > this.confirmedUntil && this.o.leaseRemainingMs() <= 0;
  }

  /**
   * False while the lease was comfortably alive at the last look (more than two looks' time
   * left): `blocked` cannot turn true before the next look, which comes first after a stall of
   * the event loop too (timers run before I/O callbacks).
   */
  get inDoubt(): boolean {
    return this.doubt;
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.o.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One look: confirm the route by the lease or by a controller, or block at the deadline. */
  async check(): Promise<void> {
    // Confirmed by the lease only until the lease's own deadline: etcd drops the proxy's
    // registration then, and a barrier stops waiting for it.
    const leaseMs = this.o.leaseRemainingMs();
    const comfortable = leaseMs > 2 * this.o.checkMs;
    this.doubt = !comfortable;
    if (leaseMs > 0) this.confirm('lease', leaseMs);
    // Comfortably alive: nothing more to do. About to lapse (a renewal is late): ask the
    // controllers now, so that a proxy that reaches one has its route confirmed past the lease's
    // deadline instead of stopping there until its next look.
    if (comfortable || this.asking) return;
    this.asking = true;
    // Controllers without an API cannot be asked: one may be failing a master over this moment.
    const unaskable = this.o.controllersWithoutApi?.() ?? 0;
    try {
      const answers = await Promise.all(this.o.controllers().map((c) => this.ask(c)));
      const routes = answers.flatMap((a) => (a.kind === 'route' ? [a.route] : []));
      const newest = routes.reduce<Route | null>((best, r) => (best === null || r.epoch > best.epoch ? r : best), null);
      if (newest && newest.epoch > this.o.epoch()) {
        this.o.log.warn('route from a controller while cut off from etcd', { epoch: newest.epoch, previous: this.o.epoch() });
        this.o.onRoute(newest);
      }
      if (newest && newest.epoch >= this.o.epoch()) return this.confirm('a controller');
      // No controller runs (so none can fail a master over), or every one is cut off from etcd
      // too: nobody can change the route now — unless one runs that could not be asked.
      if (unaskable === 0 && answers.every((a) => a.kind === 'no-etcd')) return this.confirm(answers.length === 0 ? 'no controller runs' : 'every controller is cut off from etcd too');
    } finally {
      this.asking = false;
    }
    if (!this.refused && this.blocked) {
      this.refused = true;
      this.o.log.error('cut off from etcd and from every controller past the lease TTL: refusing to forward', { epoch: this.o.epoch(), ...(unaskable > 0 ? { controllersWithoutApi: unaskable, why: 'a controller without an HTTP API (--listen) cannot confirm the route' } : {}) });
    }
  }

  private confirm(by: string, forMs = this.o.ttlMs): void {
    // Each confirmation is a bound of its own (the lease's deadline, a controller's answer + TTL): the later one holds.
    this.confirmedUntil = Math.max(this.confirmedUntil, Date.now() + forMs);
    if (this.refused) {
      this.refused = false;
      this.o.log.warn('route confirmed again: forwarding', { by, epoch: this.o.epoch() });
    }
  }

  /**
   * What one controller says, within a short timeout; a malformed answer counts as none, and so
   * does a refusal (401: our token is missing or wrong — logged, since only the operator can fix it).
   */
  private async ask(baseUrl: string): Promise<Answer> {
    const token = this.o.api?.token;
    try {
      const who = new URLSearchParams({ proxy: this.o.proxyId, epoch: String(this.o.drainedEpoch() ?? 0), ttl: String(this.o.ttlMs) });
      const res = await getJson(`${baseUrl}/v1/clusters/${encodeURIComponent(this.o.cluster)}/route?${who}`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        ca: this.o.api?.ca,
        timeoutMs: Math.min(1000, this.o.checkMs),
      });
      const body = res.body as { error?: { code?: string } } | undefined;
      if (res.status === 503 && body?.error?.code === 'ETCD_UNAVAILABLE') return { kind: 'no-etcd' };
      if (res.status === 401) {
        // Said once per controller until it answers again: the guard asks every half second.
        if (!this.refusedBy.has(baseUrl)) this.o.log.error('a controller refused the route request: the API token is missing or wrong (--api-token-file)', { controller: baseUrl });
        this.refusedBy.add(baseUrl);
      }
      if (res.status !== 200) return { kind: 'none' };
      this.refusedBy.delete(baseUrl);
      const parsed = routeSchema.safeParse(res.body);
      return parsed.success && parsed.data.cluster === this.o.cluster ? { kind: 'route', route: parsed.data } : { kind: 'none' };
    } catch (err) {
      this.o.log.debug('a controller did not answer the route request', { controller: baseUrl, error: err instanceof Error ? err.message : String(err) });
      return { kind: 'none' };
    }
  }
}
