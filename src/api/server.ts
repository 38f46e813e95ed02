/**
 * The HTTP API of a controller replica. Any replica answers: everything is read from etcd.
 */
import express, { type Request } from 'express';
import type { Registry } from 'prom-client';
import type { AdminService } from '../service/admin-service.js';
import { GuardLedger } from './guard-ledger.js';
import { errorHandler, intQuery } from './http-errors.js';
import { ValidationError } from '../model/errors.js';
import type { ApiSecurity } from './api-security.js';
import { requireToken } from './auth.js';
import { dashboardRouter } from './dashboard.js';

export interface ApiDeps {
  admin: AdminService;
  registry: Registry;
  controllerId: string;
  isLeader: () => boolean;
  /** Proxies that follow routes through this API (default: a ledger of this app's own). */
  guards?: GuardLedger;
  /** The bearer token (and whether reads need it); none: an open API, as before. */
  security?: Pick<ApiSecurity, 'token' | 'authReads' | 'readToken'>;
}

export function createApp(deps: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Before the body is parsed: a request without the token is refused without reading it.
  if (deps.security?.token) app.use(requireToken(deps.security));
  app.use(express.json({ limit: '1mb' }));
  const name = (req: Request) => String(req.params['name']);

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, controller: deps.controllerId, leader: deps.isLeader() });
  });
  app.get('/v1/clusters', async (_req, res) => {
    res.json(await deps.admin.listClusters());
  });
  app.post('/v1/clusters', async (req, res) => {
    const body = (req.body ?? {}) as { name?: unknown; slots?: unknown; shards?: unknown; proxy?: unknown; force?: unknown };
    // force: add instances that do not answer anyway (as cfgctl cluster create --force).
    const route = await deps.admin.createCluster({ name: String(body.name ?? ''), file: { slots: body.slots, proxy: body.proxy, shards: body.shards ?? [] }, force: body.force === true });
    res.status(201).json(route);
  });
  app.get('/v1/clusters/:name', async (req, res) => {
    // Offsets are read from Redis now unless ?live=false (then: the views' offsets, with observedAt).
    res.json(await deps.admin.describeCluster(name(req), { live: req.query['live'] !== 'false' }));
  });
  const guards = deps.guards ?? new GuardLedger();
  // A proxy cut off from etcd asks with ?proxy=ID&epoch=DRAINED&ttl=MS (its route guard): noted
  // once the route could be read, for the migration's hold barrier (guarded-proxies.ts).
  app.get('/v1/clusters/:name/route', async (req, res) => {
    const route = await deps.admin.route(name(req));
    const { proxy, epoch, ttl } = req.query;
    if (typeof proxy === 'string' && proxy && Number.isSafeInteger(Number(epoch)) && Number(ttl) > 0) guards.note(route.cluster, proxy, Number(epoch), Number(ttl));
    res.json(route);
  });
  app.get('/v1/clusters/:name/guarded-proxies', (req, res) => {
    res.json({ controller: deps.controllerId, since: new Date(guards.startedAt).toISOString(), proxies: guards.of(name(req)) });
  });
  app.get('/v1/clusters/:name/history', async (req, res) => {
    const count = intQuery(req.query['limit'], 'limit', { min: 1, max: 1000, fallback: 100 });
    res.json(await deps.admin.listHistory(name(req), count));
  });
  app.get('/v1/clusters/:name/tasks', async (req, res) => {
    res.json(await deps.admin.listTasks(name(req)));
  });
  app.post('/v1/clusters/:name/tasks/:id/cancel', async (req, res) => {
    const body = (req.body ?? {}) as { by?: unknown };
    res.json(await deps.admin.cancelTask(name(req), String(req.params['id']), typeof body.by === 'string' && body.by ? body.by : `http@${req.ip ?? 'unknown'}`));
  });
  app.get('/v1/clusters/:name/migrations', async (req, res) => {
    res.json(await deps.admin.migrations.list(name(req)));
  });
  // Asking for a migration: {slots: "A-B,...", to: SHARD} moves slots; {drain: SHARD} empties a shard;
  // {rebalance: true} evens the slots out. {dryRun: true} answers the moves and writes nothing.
  app.post('/v1/clusters/:name/migrations', async (req, res) => {
    const body = (req.body ?? {}) as { slots?: unknown; to?: unknown; drain?: unknown; rebalance?: unknown; dryRun?: unknown; by?: unknown; rate?: unknown };
    const request = { requestedBy: typeof body.by === 'string' && body.by ? body.by : `http@${req.ip ?? 'unknown'}`, dryRun: body.dryRun === true, rate: body.rate as number | undefined };
    const m =
      body.rebalance === true
        ? await deps.admin.migrations.rebalance(name(req), request)
        : body.drain !== undefined
          ? await deps.admin.migrations.drain(name(req), { ...request, shard: String(body.drain) })
          : await deps.admin.migrations.migrate(name(req), { ...request, slots: String(body.slots ?? ''), to: String(body.to ?? '') });
    res.status(request.dryRun ? 200 : 201).json(m);
  });
  app.post('/v1/clusters/:name/migrations/:id/:action', async (req, res) => {
    const action = String(req.params['action']);
    const body = (req.body ?? {}) as { by?: unknown; rate?: unknown };
    const by = typeof body.by === 'string' && body.by ? body.by : `http@${req.ip ?? 'unknown'}`;
    const id = String(req.params['id']);
    // {rate: N} with throttle: keys/s at most for the leader's mover (0: no limit).
    if (action === 'throttle') {
      res.json(await deps.admin.migrations.throttle(name(req), by, body.rate, id));
      return;
    }
    if (action !== 'pause' && action !== 'resume' && action !== 'cancel') {
      res.status(404).json({ error: { code: 'NOT_FOUND', message: `no migration action ${action}: pause, resume, cancel or throttle` } });
      return;
    }
    res.json(await deps.admin.migrations[action](name(req), by, id));
  });
  app.get('/v1/clusters/:name/splits', async (req, res) => {
    res.json(await deps.admin.splits.list(name(req)));
  });
  // Asking for a split (docs/split.md): {shard, newShard, master, slaves?, slots?, force?, trimRate?}.
  app.post('/v1/clusters/:name/splits', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const by = typeof body['by'] === 'string' && body['by'] ? body['by'] : `http@${req.ip ?? 'unknown'}`;
    res.status(201).json(await deps.admin.splits.split(name(req), { ...body, requestedBy: by }));
  });
  // An admin's control of a split (docs/split.md): pause, resume, cancel.
  app.post('/v1/clusters/:name/splits/:id/:action', async (req, res) => {
    const action = String(req.params['action']);
    const body = (req.body ?? {}) as { by?: unknown };
    const by = typeof body.by === 'string' && body.by ? body.by : `http@${req.ip ?? 'unknown'}`;
    if (action !== 'pause' && action !== 'resume' && action !== 'cancel') {
      res.status(404).json({ error: { code: 'NOT_FOUND', message: `no split action ${action}: pause, resume or cancel` } });
      return;
    }
    res.json(await deps.admin.splits[action](name(req), by, String(req.params['id'])));
  });
  app.get('/v1/clusters/:name/config', async (req, res) => {
    res.json(await deps.admin.config.get(name(req), typeof req.query['pattern'] === 'string' ? req.query['pattern'] : undefined));
  });
  // The whole desired config, of the shape of `cfgctl config set -f`: {global, roles, shards}.
  app.put('/v1/clusters/:name/config', async (req, res) => {
    res.json(await deps.admin.config.replace(name(req), req.body ?? {}, `http@${req.ip ?? 'unknown'}`));
  });
  app.get('/v1/clusters/:name/config/diff', async (req, res) => {
    res.json(await deps.admin.config.diff(name(req)));
  });
  // Recommended-settings warnings (as `cfgctl config check --json`); ?sampleMs=&minBacklogSeconds=.
  app.get('/v1/clusters/:name/config/check', async (req, res) => {
    res.json(await deps.admin.config.check(name(req), { sampleMs: req.query['sampleMs'], minBacklogSeconds: req.query['minBacklogSeconds'] }));
  });
  // Redis credentials (docs/redis-auth.md): what is stored, never the secret.
  app.get('/v1/clusters/:name/auth', async (req, res) => {
    res.json(await deps.admin.auth.show(name(req)));
  });
  app.put('/v1/clusters/:name/auth', async (req, res) => {
    const body = (req.body ?? {}) as { user?: unknown; password?: unknown };
    if (body.user !== undefined && body.user !== null && typeof body.user !== 'string') throw new ValidationError('invalid user: a user name must be a string');
    res.json(await deps.admin.auth.set(name(req), { user: (body.user as string | null | undefined) ?? null, password: body.password as string }));
  });
  app.post('/v1/clusters/:name/auth/rotate', async (req, res) => {
    const body = (req.body ?? {}) as { password?: unknown; adoptTimeoutMs?: unknown };
    const adoptTimeoutMs = typeof body.adoptTimeoutMs === 'number' ? body.adoptTimeoutMs : undefined;
    res.json(await deps.admin.auth.rotate(name(req), body.password as string, { adoptTimeoutMs }));
  });
  app.get('/v1/controllers', async (_req, res) => {
    res.json(await deps.admin.listControllers());
  });
  app.get('/v1/replicas', async (_req, res) => {
    res.json(await deps.admin.replicaStatus());
  });
  // Cluster pause/resume, switchover and proxies: what the dashboard's buttons and tables need
  // beyond the endpoints above (the same rules as cfgctl, in AdminService).
  app.post('/v1/clusters/:name/pause', async (req, res) => {
    res.json({ cluster: name(req), paused: true, changed: await deps.admin.setPaused(name(req), true) });
  });
  app.post('/v1/clusters/:name/resume', async (req, res) => {
    res.json({ cluster: name(req), paused: false, changed: await deps.admin.setPaused(name(req), false) });
  });
  // {shard, to?: H:P, force?: true}: a pending task the leader carries out (as `cfgctl failover --no-wait`).
  app.post('/v1/clusters/:name/switchover', async (req, res) => {
    const body = (req.body ?? {}) as { shard?: unknown; to?: unknown; force?: unknown };
    const to = body.to === undefined || body.to === null || body.to === '' ? undefined : String(body.to);
    res.status(201).json(await deps.admin.requestSwitchover(name(req), { shard: String(body.shard ?? ''), to, force: body.force === true, requestedBy: requester(req) }));
  });
  app.get('/v1/clusters/:name/tasks/:id', async (req, res) => {
    res.json(await deps.admin.getTask(name(req), String(req.params['id'])));
  });
  app.get('/v1/clusters/:name/proxies', async (req, res) => {
    res.json(await deps.admin.listProxies(name(req)));
  });
  app.use(dashboardRouter(deps.admin));
  app.get('/metrics', async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });
  app.use(errorHandler);
  return app;
}

/** Who asked, for tasks and history: the body's `by`, else the caller's address. */
function requester(req: Request): string {
  const by = (req.body as { by?: unknown } | undefined)?.by;
  return typeof by === 'string' && by ? by : `http@${req.ip ?? 'unknown'}`;
}
