/**
 * The second half of the hold barrier of a slot migration: proxies cut off from etcd that follow
 * the route through the controllers' API (src/api/guard-ledger.ts). The registry barrier does not
 * see them — their leases expired — but they forward on whatever route a controller last confirmed.
 *
 * The leader asks every registered controller with an API which such proxies asked it lately, and
 * waits until each one has either drained `epoch` or gone quiet for longer than its confirmation
 * holds (then its own guard refuses to forward). One still behind at the timeout fails the barrier
 * like a registered one would. When a controller cannot be asked, nobody can vouch for the proxies
 * that may be asking it: the caller falls back to a fixed grace.
 */
import type { GuardedProxy } from '../api/guard-ledger.js';
import { errorMessage } from '../model/errors.js';
import type { ControllerRegistry } from '../store/controller-registry.js';
import { getJson } from '../util/get-json.js';

/** How this leader talks to the other controllers' APIs: their bearer token and the CA of their https (docs/security.md). */
export interface ControllerApiClient {
  token: string | null;
  ca?: Buffer;
}

export type GuardedOutcome =
  | { kind: 'none'; durationMs: number }
  | { kind: 'drained'; proxies: string[]; durationMs: number }
  /** Some asked lately and had not drained the epoch by the timeout. */
  | { kind: 'behind'; proxies: string[]; durationMs: number }
  /** A controller could not be asked: nobody can vouch for the proxies that may be asking it. */
  | { kind: 'unknown'; why: string; durationMs: number };

export interface GuardedOptions {
  /** How long to wait for guarded proxies to drain the epoch. */
  timeoutMs: number;
  /** How often to ask again while some are behind. */
  everyMs?: number;
  /** One controller's answer must come within this. */
  askTimeoutMs?: number;
  /** Token and CA for the controllers' APIs (default: none, plain http as registered). */
  api?: ControllerApiClient;
}

/** What one controller says; throws when it cannot be asked or answers nonsense. */
async function ask(baseUrl: string, cluster: string, timeoutMs: number, api: ControllerApiClient | undefined): Promise<GuardedProxy[]> {
  const res = await getJson(`${baseUrl}/v1/clusters/${encodeURIComponent(cluster)}/guarded-proxies`, {
    headers: api?.token ? { authorization: `Bearer ${api.token}` } : {},
    ca: api?.ca,
    timeoutMs,
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  const body = (res.body ?? {}) as { proxies?: unknown };
  if (!Array.isArray(body.proxies)) throw new Error('no proxies list in the answer');
  return body.proxies.map((p: Partial<GuardedProxy>) => {
    if (typeof p?.proxy !== 'string' || typeof p.epoch !== 'number' || typeof p.ttlMs !== 'number' || typeof p.agoMs !== 'number') throw new Error('a malformed entry');
    return p as GuardedProxy;
  });
}

/** The proxies that may still forward on a route older than `epoch`: asked lately, and behind. */
export function behind(reports: GuardedProxy[], epoch: number): string[] {
  const latest = new Map<string, GuardedProxy>();
  for (const r of reports) {
    const known = latest.get(r.proxy);
    if (!known || r.agoMs < known.agoMs) latest.set(r.proxy, r);
  }
  return [...latest.values()].filter((r) => r.epoch < epoch && r.agoMs <= r.ttlMs).map((r) => r.proxy);
}

export async function waitForGuardedProxies(registry: Pick<ControllerRegistry, 'list'>, cluster: string, epoch: number, o: GuardedOptions): Promise<GuardedOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const everyMs = o.everyMs ?? 100;
  const askTimeoutMs = o.askTimeoutMs ?? 500;
  const seen = new Set<string>();
  for (;;) {
    let reports: GuardedProxy[];
    try {
      const urls = (await registry.list()).flatMap((c) => (c.address ? [`${c.tls ? 'https' : 'http'}://${c.address}`] : []));
      reports = (await Promise.all(urls.map((a) => ask(a, cluster, askTimeoutMs, o.api).catch((err) => {
        throw new Error(`controller ${a} could not be asked (${errorMessage(err)})`);
      })))).flat();
    } catch (err) {
      return { kind: 'unknown', why: errorMessage(err), durationMs: elapsed() };
    }
    for (const r of reports) if (r.agoMs <= r.ttlMs) seen.add(r.proxy);
    const late = behind(reports, epoch);
    if (late.length === 0) return seen.size === 0 ? { kind: 'none', durationMs: elapsed() } : { kind: 'drained', proxies: [...seen], durationMs: elapsed() };
    if (elapsed() >= o.timeoutMs) return { kind: 'behind', proxies: late, durationMs: elapsed() };
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function describeGuarded(o: GuardedOutcome, epoch: number, graceMs: number): string {
  if (o.kind === 'none') return `no proxy follows the route through a controller (asked every controller in ${o.durationMs} ms)`;
  if (o.kind === 'drained') return `proxies following the route through a controller drained it too: ${o.proxies.join(', ')} (${o.durationMs} ms)`;
  if (o.kind === 'behind') return `proxies following the route through a controller had not drained epoch ${epoch} in ${o.durationMs} ms: ${o.proxies.join(', ')}`;
  return `${o.why}: then ${graceMs} ms for a proxy cut off from etcd to learn the route from a controller`;
}
