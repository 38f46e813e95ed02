/**
 * The operator's dashboard: static pages shipped in the package (src/api/dashboard-assets, copied
 * to dist by the build; no CDN, no build step at runtime) and the one read it polls. The page is
 * read-only; its buttons call the API's own mutating endpoints, with the operator's token.
 */
import { fileURLToPath } from 'node:url';
import express, { type Router } from 'express';
import { DashboardService } from '../service/dashboard-service.js';
import type { AdminService } from '../service/admin-service.js';

/** Next to this module in src/ (tests, tsx) and in dist/ (the package). */
export const DASHBOARD_ASSETS = fileURLToPath(new URL('./dashboard-assets/', import.meta.url));

export function dashboardRouter(admin: AdminService): Router {
  const router = express.Router();
  const dashboard = new DashboardService(admin);
  router.get('/', (_req, res) => res.redirect(302, '/ui/'));
  // The page fetches only from its own origin and runs no inline script: a history reason or an
  // instance name shown on it can never run as code.
  router.use('/ui', (_req, res, next) => {
    res.set('Content-Security-Policy', "default-src 'self'; frame-ancestors 'none'");
    res.set('X-Content-Type-Options', 'nosniff');
    next();
  });
  // `no-cache`: revalidated on every load (ETag), so a controller upgrade serves the new page at once.
  router.use('/ui', express.static(DASHBOARD_ASSETS, { cacheControl: true, maxAge: 0, setHeaders: (res) => res.set('Cache-Control', 'no-cache') }));
  router.get('/v1/clusters/:name/overview', async (req, res) => {
    res.json(await dashboard.overview(String(req.params['name'])));
  });
  return router;
}
