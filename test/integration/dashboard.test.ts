/**
 * The operator's dashboard in headless Chromium (Debian's `chromium`, driven by playwright-core):
 * two controller replicas with an API token, a cluster of two shards on real redis-servers, a
 * proxy. The page must show what happens — a master killed, a switchover asked from the page —
 * and refuse an action without the token, saying so. Every wait is on the page's content.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnController, waitFor, type ManagedProcess } from '../../src/playground/processes.js';
import { makeCluster, replicating, type TestCluster } from '../helpers/cluster.js';
import { useProxies } from '../helpers/proxy.js';
import type { Proxy } from '../../src/proxy/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { TEST_LEASE_TTL, useWorld } from '../helpers/servers.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? 'chromium';
const TOKEN = 'dashboard-test-token-0123456789';
/** Bounds on waits for what the page must show: a failover takes ~2 s here, a page poll 1 s. */
const SHOWN_WITHIN = 30_000;

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

describe('the dashboard', () => {
  let browser: Browser;
  let page: Page;
  let cluster: TestCluster;
  let base: string;
  let proxy: Proxy;
  const controllers: ManagedProcess[] = [];

  beforeAll(async () => {
    cluster = await makeCluster(world, 'web', { shards: 2, slaves: 1 });
    const ports = [await freePort(), await freePort()];
    ports.forEach((port, i) => {
      controllers.push(
        spawnController({
          id: `dash${i + 1}`,
          etcd: world.etcd.endpoint,
          prefix: cluster.prefix,
          leaseTtlSeconds: TEST_LEASE_TTL,
          logFile: join(world.dir, `controller-dash${i + 1}.log`),
          listen: `127.0.0.1:${port}`,
          extraArgs: ['--log-level', 'debug'],
          // The API's token for changes (docs/security.md); reads stay open.
          env: { CFGSERVER_API_TOKEN: TOKEN },
        }),
      );
    });
    base = `http://127.0.0.1:${ports[0]}`;
    await waitFor('the first replica to answer', async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 15_000);
    for (const shard of cluster.shards) await replicating(redis, shard.slaves, shard.master.address);
    proxy = await proxies.start(world.etcd.endpoint, cluster.prefix, 'web');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage();
    // Every action asks for confirmation first: the operator says yes.
    page.on('dialog', (dialog) => void dialog.accept());
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    for (const c of controllers) await c.kill9();
  });

  it('loads at / and shows the cluster: shards, every replica\'s verdict, the proxy\'s epoch', async () => {
    await page.goto(`${base}/`);
    expect(new URL(page.url()).pathname).toBe('/ui/');
    await page.locator('#clusters tr[data-cluster="web"] a').click();
    expect(page.url()).toContain('#/cluster/web');
    for (const shard of cluster.shards) {
      await page.waitForSelector(`.shard[data-master="${shard.master.address}"] tr[data-instance="${shard.master.address}"][data-seen="master"]`, { timeout: SHOWN_WITHIN });
      await page.waitForSelector(`tr[data-instance="${shard.slaves[0]!.address}"][data-seen="slave"]`, { timeout: SHOWN_WITHIN });
    }
    // Both replicas probe every instance: one verdict column each, "ok" in every row.
    await page.waitForFunction(() => document.querySelectorAll('#shards td[data-verdict="ok"]').length === 8, undefined, { timeout: SHOWN_WITHIN });
    const route = await cluster.admin.route('web');
    expect(await page.textContent('#route-epoch')).toBe(String(route.epoch));
    await page.waitForSelector(`#proxies tr[data-epoch="${route.epoch}"]`, { timeout: SHOWN_WITHIN });
    expect(await page.textContent('#proxies tbody')).toContain('current');
  });

  it('refuses an action without the token and says so; nothing changes', async () => {
    await page.locator('button[data-action="pause"]').click();
    await page.waitForSelector('#message.bad', { timeout: SHOWN_WITHIN });
    const text = await page.textContent('#message');
    expect(text).toContain('401');
    expect(text).toContain('API token');
    expect((await cluster.admin.getCluster('web')).spec.paused).toBe(false);
    // The page still shows the cluster as running.
    expect(await page.locator('button[data-action="pause"]').count()).toBe(1);

    // A wrong token: refused too, and the page says the token is not the right one.
    await page.fill('#token', 'not-the-token-of-this-api');
    await page.click('#token-form button[type="submit"]');
    await page.locator('button[data-action="pause"]').click();
    await page.waitForFunction(() => document.querySelector('#message')?.textContent?.includes('not accepted'), undefined, { timeout: SHOWN_WITHIN });
    expect((await cluster.admin.getCluster('web')).spec.paused).toBe(false);
    await page.click('#token-forget');
    expect(await page.evaluate(() => sessionStorage.getItem('cfgserver.apiToken'))).toBeNull();
  });

  it('follows a migration live, paused and resumed from the page', async () => {
    const client = proxies.client(proxy);
    const writes = client.pipeline();
    for (let i = 0; i < 6000; i++) writes.set(`dash:${i}`, String(i));
    await writes.exec();
    // About 600 keys in slots 0-99: three batches of the mover's 200, 4 s apart at 50 keys/s, so
    // that progress shows between batches and the migration still moves when the page pauses it.
    const m = await cluster.admin.migrations.migrate('web', { slots: '0-99', to: 's1', requestedBy: 'test', rate: 50 });
    const row = `#migrations tr[data-migration="${m.id}"]`;
    await page.fill('#token', TOKEN);
    await page.click('#token-form button[type="submit"]');
    await page.waitForFunction((sel) => Number(document.querySelector<HTMLElement>(sel)?.dataset['moved']) > 0, row, { timeout: SHOWN_WITHIN });
    expect(await page.textContent(row)).toMatch(/keys moved of \d+ seen/);
    expect(await page.textContent('.facts')).toContain('100 s0 → s1 (moving)');
    await page.locator(`${row} button[data-op="pause"]`).click();
    await page.waitForSelector(`${row}[data-state="paused"]`, { timeout: SHOWN_WITHIN });
    expect(await page.textContent('#message')).toContain('pause asked');
    await page.locator(`${row} button[data-op="resume"]`).click();
    await page.waitForFunction((sel) => document.querySelector('#message')?.textContent?.includes('resume asked'), row, { timeout: SHOWN_WITHIN });
    // The rest at full speed (it may be too short to be seen running again), and the page shows it done.
    await cluster.admin.migrations.throttle('web', 'test', 0, m.id).catch(() => undefined);
    await page.waitForSelector(`${row}[data-state="done"]`, { timeout: SHOWN_WITHIN });
    expect(Number(await page.getAttribute(row, 'data-moved'))).toBeGreaterThan(0);
    // Both asked from the page, in the history with who asked; the leader recorded the pause it made.
    const history = (await cluster.admin.listHistory('web', 200)).entries;
    expect(history.filter((e) => e.reason.includes('asked by dashboard')).map((e) => e.action)).toEqual(['migration:pause', 'migration:resume']);
    expect(history.some((e) => e.action === 'migration:pause' && e.reason.startsWith('paused by an admin'))).toBe(true);
    expect(await client.get('dash:5999')).toBe('5999');
    await page.click('#token-forget');
  });

  it('shows a kill -9 of a master as a failover, and the new master', async () => {
    const [s0] = cluster.shards;
    await s0!.master.process.kill9();
    const promoted = s0!.slaves[0]!.address;
    await page.waitForSelector('#tasks tr[data-kind="failover"][data-shard="s0"][data-state="done"]', { timeout: SHOWN_WITHIN });
    await page.waitForSelector(`.shard[data-shard="s0"][data-master="${promoted}"]`, { timeout: SHOWN_WITHIN });
    // Every replica judged the old master down (the failover's quorum), and says so on the page.
    const oldMaster = s0!.master.address;
    await page.waitForFunction((addr) => document.querySelectorAll(`tr[data-instance="${addr}"] td[data-verdict="DOWN"]`).length === 2, oldMaster, { timeout: SHOWN_WITHIN });
    const history = await page.textContent('#history tbody');
    expect(history).toMatch(/failover/);
    expect((await cluster.admin.route('web')).shards[0]!.master).toBe(promoted);
  });

  it('runs a switchover asked from the page with the token, and shows it done', async () => {
    await page.fill('#token', TOKEN);
    await page.click('#token-form button[type="submit"]');
    expect(await page.textContent('#token-state')).toContain('token set');
    expect(await page.evaluate(() => sessionStorage.getItem('cfgserver.apiToken'))).toBe(TOKEN);
    const s1 = cluster.shards[1]!;
    const button = page.locator('.shard[data-shard="s1"] .shard-head button[data-action="switchover"]');
    await page.waitForFunction(() => !document.querySelector<HTMLButtonElement>('.shard[data-shard="s1"] .shard-head button[data-action="switchover"]')?.disabled, undefined, { timeout: SHOWN_WITHIN });
    await button.click();
    await page.waitForSelector('#message.ok', { timeout: SHOWN_WITHIN });
    expect(await page.textContent('#message')).toContain('Switchover of s1 asked');
    await page.waitForSelector('#tasks tr[data-kind="switchover"][data-shard="s1"][data-state="done"]', { timeout: SHOWN_WITHIN });
    await page.waitForSelector(`.shard[data-shard="s1"][data-master="${s1.slaves[0]!.address}"]`, { timeout: SHOWN_WITHIN });
    expect((await cluster.admin.route('web')).shards[1]!.master).toBe(s1.slaves[0]!.address);
    const tasks = (await cluster.admin.listTasks('web')).tasks.filter((t) => t.kind === 'switchover');
    expect(tasks.map((t) => [t.shard, t.state, t.requestedBy])).toEqual([['s1', 'done', 'dashboard']]);
  });
});

describe('the endpoints behind the page', () => {
  it('answers the overview, refuses bad input to its actions with the reason, and changes nothing', async () => {
    const cluster = await makeCluster(world, 'api', { shards: 1, slaves: 1 });
    const port = await freePort();
    world.controller('dashapi', cluster.prefix, ['--listen', `127.0.0.1:${port}`]);
    const base = `http://127.0.0.1:${port}`;
    const overview = await waitFor('an overview with the replica\'s views', async () => {
      const res = await fetch(`${base}/v1/clusters/api/overview`).catch(() => null);
      const body = res?.ok ? ((await res.json()) as { views: { controller: string; instances: unknown[] }[]; status: { spec: { name: string } }; history: unknown[] }) : null;
      return body && body.views.length === 1 && body.views[0]!.instances.length === 2 ? body : null;
    }, 15_000);
    expect(overview.status.spec.name).toBe('api');
    expect(overview.views[0]!.controller).toBe('dashapi');

    const missing = await fetch(`${base}/v1/clusters/nope/overview`);
    expect(missing.status).toBe(404);
    const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const before = await cluster.admin.getCluster('api');
    const noShard = await post('/v1/clusters/api/switchover', { shard: 's9' });
    expect(noShard.status).toBe(404);
    expect(((await noShard.json()) as { error: { message: string } }).error.message).toContain('no shard s9');
    const notASlave = await post('/v1/clusters/api/switchover', { shard: 's0', to: '127.0.0.1:1' });
    expect(notASlave.status).toBe(422);
    expect(((await notASlave.json()) as { error: { message: string } }).error.message).toContain('is not a slave of shard s0');
    const badTarget = await post('/v1/clusters/api/switchover', { shard: 's0', to: 'not an address' });
    expect(badTarget.status).toBe(400);
    expect((await post('/v1/clusters/nope/pause', {})).status).toBe(404);
    expect((await cluster.admin.listTasks('api')).tasks).toEqual([]);
    const after = await cluster.admin.getCluster('api');
    expect([after.specRevision, after.routeRevision]).toEqual([before.specRevision, before.routeRevision]);

    // Pause and resume answer whether they changed anything.
    expect(await (await post('/v1/clusters/api/pause', {})).json()).toEqual({ cluster: 'api', paused: true, changed: true });
    expect(await (await post('/v1/clusters/api/pause', {})).json()).toEqual({ cluster: 'api', paused: true, changed: false });
    expect((await cluster.admin.getCluster('api')).spec.paused).toBe(true);
    expect(await (await post('/v1/clusters/api/resume', {})).json()).toEqual({ cluster: 'api', paused: false, changed: true });
    const proxies = (await (await fetch(`${base}/v1/clusters/api/proxies`)).json()) as { proxies: unknown[] };
    expect(proxies.proxies).toEqual([]);
  });

  it('serves the page\'s files from the package, with a policy that runs no inline script', async () => {
    const cluster = await makeCluster(world, 'files', { shards: 1, slaves: 0 });
    const port = await freePort();
    world.controller('dashfiles', cluster.prefix, ['--listen', `127.0.0.1:${port}`]);
    const base = `http://127.0.0.1:${port}`;
    const page = await waitFor('the page', async () => (await fetch(`${base}/ui/`).catch(() => null)) ?? null, 15_000);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('<script type="module" src="app.js">');
    for (const file of ['app.js', 'api.js', 'dom.js', 'cluster-view.js', 'list-view.js', 'style.css']) {
      expect((await fetch(`${base}/ui/${file}`)).status).toBe(200);
    }
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    expect([root.status, root.headers.get('location')]).toEqual([302, '/ui/']);
  });
});

describe('the dashboard with reads protected and the read-only token', () => {
  const READ_TOKEN = 'dashboard-read-only-token-0123456789';
  let browser: Browser;
  let controller: ManagedProcess;

  afterAll(async () => {
    await browser?.close();
    await controller?.kill9();
  });

  it('shows the clusters once the read-only token is pasted; an action with it is refused (403) and said; nothing changes', async () => {
    const { prefix, admin } = await makeCluster(world, 'ro', { shards: 1, slaves: 0 });
    const port = await freePort();
    controller = spawnController({
      id: 'dash-ro',
      etcd: world.etcd.endpoint,
      prefix,
      leaseTtlSeconds: TEST_LEASE_TTL,
      logFile: join(world.dir, 'controller-dash-ro.log'),
      listen: `127.0.0.1:${port}`,
      extraArgs: ['--api-auth-reads'],
      env: { CFGSERVER_API_TOKEN: TOKEN, CFGSERVER_API_READ_TOKEN: READ_TOKEN },
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor('the replica to answer', async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 15_000);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const page = await browser.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    // The page itself loads without a token; its reads are refused until one is pasted.
    await page.goto(`${base}/`);
    await page.waitForSelector('#updated.bad', { timeout: SHOWN_WITHIN });
    expect(await page.textContent('#updated')).toContain('Refused (401): this needs the API token');
    await page.fill('#token', READ_TOKEN);
    await page.click('#token-form button[type="submit"]');
    await page.locator('#clusters tr[data-cluster="ro"] a').click({ timeout: SHOWN_WITHIN });
    await page.locator('button[data-action="pause"]').click({ timeout: SHOWN_WITHIN });
    await page.waitForFunction(() => document.querySelector('#message')?.textContent?.includes('403'), undefined, { timeout: SHOWN_WITHIN });
    expect(await page.textContent('#message')).toContain('read-only');
    expect((await admin.getCluster('ro')).spec.paused).toBe(false);
  }, 90_000);
});
