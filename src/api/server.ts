/**
 * The HTTP API of a controller replica. Any replica answers: everything is read from etcd.
 */
import express, { type Request } from 'express';
import type { Registry } from 'prom-client';
import type { AdminService } from '../service/admin-service.js';
import { errorHandler } from './http-errors.js';

export interface ApiDeps {
  admin: AdminService;
  registry: Registry;
  controllerId: string;
  isLeader: () => boolean;
}

export function createApp(deps: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '1mb' }));
  const name = (req: Request) => String(req.params['name']);

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, controller: deps.controllerId, leader: deps.isLeader() });
  });
  app.get('/v1/clusters', async (_req, res) => {
    res.json(await deps.admin.listClusters());
  });
  app.post('/v1/clusters', async (req, res) => {
    const body = (req.body ?? {}) as { name?: unknown; slots?: unknown; shards?: unknown; proxy?: unknown };
    const route = await deps.admin.createCluster({ name: String(body.name ?? ''), file: { slots: body.slots, proxy: body.proxy, shards: body.shards ?? [] } });
    res.status(201).json(route);
  });
  app.get('/v1/clusters/:name', async (req, res) => {
    // Offsets are read from Redis now unless ?live=false (then: the views' offsets, with observedAt).
    res.json(await deps.admin.describeCluster(name(req), { live: req.query['live'] !== 'false' }));
  });
  app.get('/v1/clusters/:name/route', async (req, res) => {
    res.json(await deps.admin.route(name(req)));
  });
  app.get('/v1/clusters/:name/history', async (req, res) => {
    const count = Math.min(1000, Math.max(1, Number(req.query['limit'] ?? 100) || 100));
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
    const body = (req.body ?? {}) as { slots?: unknown; to?: unknown; drain?: unknown; rebalance?: unknown; dryRun?: unknown; by?: unknown };
    const request = { requestedBy: typeof body.by === 'string' && body.by ? body.by : `http@${req.ip ?? 'unknown'}`, dryRun: body.dryRun === true };
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
    if (action !== 'pause' && action !== 'resume' && action !== 'cancel') {
      res.status(404).json({ error: { code: 'NOT_FOUND', message: `no migration action ${action}: pause, resume or cancel` } });
      return;
    }
    const body = (req.body ?? {}) as { by?: unknown };
    res.json(await deps.admin.migrations[action](name(req), typeof body.by === 'string' && body.by ? body.by : `http@${req.ip ?? 'unknown'}`, String(req.params['id'])));
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
  app.get('/v1/controllers', async (_req, res) => {
    res.json(await deps.admin.listControllers());
  });
  app.get('/v1/replicas', async (_req, res) => {
    res.json(await deps.admin.replicaStatus());
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });
  app.use(errorHandler);
  return app;
}
