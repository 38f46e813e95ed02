/**
 * A shard split on the dashboard (issue 14), in headless Chromium (Debian's `chromium`, driven by
 * playwright-core) against a real controller, etcd and redis-servers: the page shows the split
 * under way with its step, the sync's progress, the hold and each side's trim moving, then done
 * with the numbers of the record; and its buttons pause, resume and cancel a split with the API
 * token, Cancel offered only before the commit. Every wait is on the page's content.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../src/playground/processes.js';
import { makeCluster, type TestCluster } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? 'chromium';
/** Bounds on waits for what the page must show: a page poll is 1 s, the split's sync a few. */
const SHOWN_WITHIN = 40_000;

const world = useWorld();
const redis = useRedisClients();

/** A data attribute of the first element `selector` matches, read in the page. */
function dataOf(page: Page, selector: string, name: string): Promise<string | undefined> {
  return page.$eval(selector, (el, n) => (el as HTMLElement).dataset[n], name);
}

describe('a split on the dashboard', () => {
  let browser: Browser;
  let page: Page;
  let cluster: TestCluster;
  let base: string;

  beforeAll(async () => {
    cluster = await makeCluster(world, 'dsplit', { shards: 1, slaves: 0 });
    const api = `127.0.0.1:${await freePort()}`;
    world.controller('dsplit-c0', cluster.prefix, ['--listen', api]);
    base = `http://${api}`;
    await waitFor('the controller to answer', async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 15_000);
    const fill = redis.at(cluster.master.address).pipeline();
    for (let i = 0; i < 6000; i++) fill.set(`k:${i}`, String(i));
    await fill.exec();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('shows the split with its step, sync, hold and trim progress, live, then done', async () => {
    await page.goto(`${base}/ui/#/cluster/dsplit`);
    await page.waitForFunction(() => document.querySelector('#splits')?.textContent?.includes('No split.'), undefined, { timeout: SHOWN_WITHIN });

    // About 3,000 foreign keys a side at 300 keys/s: the trim lasts seconds, long enough to be seen moving.
    const newMaster = await world.redis();
    const asked = await cluster.admin.splits.split('dsplit', { shard: 's0', newShard: 's1', master: newMaster.address, trimRate: 300, requestedBy: 'test' });
    const row = `#splits tr[data-split="${asked.id}"]`;
    await page.waitForSelector(row, { timeout: SHOWN_WITHIN });
    expect(await page.textContent(`${row}`)).toContain('s0 → s1: 512-1023');

    // The trim under way: the hold of the record, the sync's keys, each side's trim not done yet.
    await page.waitForSelector(`${row}[data-next="trim"] [data-side="source"][data-done="false"]`, { timeout: SHOWN_WITHIN });
    // Past its commit a cancel would be refused: the page's Cancel is disabled and says why.
    expect(await page.isDisabled(`${row} button[data-op="cancel"]`)).toBe(true);
    expect(await page.getAttribute(`${row} button[data-op="cancel"]`, 'title')).toMatch(/past its commit \(at step trim\)/);
    expect(await page.isEnabled(`${row} button[data-op="pause"]`)).toBe(true);
    const during = (await cluster.admin.splits.list('dsplit')).splits.find((s) => s.id === asked.id)!;
    expect(during.holdMs).not.toBeNull();
    expect(await dataOf(page, `${row} td.hold`, 'hold')).toBe(String(during.holdMs));
    expect(await dataOf(page, `${row} td.sync > span`, 'link')).toBe('up');
    expect(await dataOf(page, `${row} td.sync > span`, 'keys')).toBe('6000');
    expect(await page.textContent(`${row} td.hold`)).toMatch(/\d+ ms/);
    // Live: the removed count on the page grows while the split is still trimming.
    const first = Number(await dataOf(page, `${row} [data-side="source"]`, 'removed'));
    await page.waitForFunction(
      ([sel, n]) => Number(document.querySelector<HTMLElement>(`${sel} [data-side="source"]`)?.dataset['removed']) > Number(n) && document.querySelector<HTMLElement>(sel)?.dataset['next'] === 'trim',
      [row, String(first)] as const,
      { timeout: SHOWN_WITHIN },
    );

    // Done: both sides' trims done, with the record's counts; the steps in order.
    await page.waitForSelector(`${row}[data-state="done"]`, { timeout: 60_000 });
    const done = (await cluster.admin.splits.list('dsplit')).splits.find((s) => s.id === asked.id)!;
    expect(done.state).toBe('done');
    await page.waitForSelector(`${row} [data-side="shard"][data-done="true"]`, { timeout: SHOWN_WITHIN });
    expect(await dataOf(page, `${row} [data-side="source"]`, 'removed')).toBe(String(done.trim.source.removed));
    expect(await dataOf(page, `${row} [data-side="shard"]`, 'removed')).toBe(String(done.trim.shard.removed));
    expect(done.trim.source.removed + done.trim.shard.removed).toBe(6000);
    expect(await page.textContent(`${row} details summary`)).toBe(`${done.steps.length} steps, last: trim`);

    // The overview carries the split for any other client of the API.
    const overview = (await (await fetch(`${base}/v1/clusters/dsplit/overview`)).json()) as { splits: { id: string; state: string }[] };
    expect(overview.splits.map((s) => [s.id, s.state])).toEqual([[asked.id, 'done']]);
    expect(await page.$$(`${row} button`), 'no button for a finished split').toEqual([]);
  });

  it('pauses, resumes and cancels a split from the page, with the API token; the cancel undoes it', async () => {
    // A cluster of its own, behind a controller that needs a token for changes (docs/security.md).
    const token = 'dashboard-split-token-0123456789';
    const tokenFile = join(world.dir, 'dctl-token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const own = await makeCluster(world, 'dctl', { shards: 1, slaves: 0 });
    const api = `127.0.0.1:${await freePort()}`;
    world.controller('dctl-c0', own.prefix, ['--listen', api, '--api-token-file', tokenFile]);
    const ownBase = `http://${api}`;
    await waitFor('the controller to answer', async () => (await fetch(`${ownBase}/healthz`).catch(() => null))?.ok, 15_000);
    const source = redis.at(own.master.address);
    const fill = source.pipeline();
    // Values of 100 bytes: the source's fork sends the RDB in 16 KiB writes, one every half second here.
    for (let i = 0; i < 6000; i++) fill.set(`k:${i}`, `v${i}`.padEnd(100, 'x'));
    await fill.exec();
    // The full sync slowed to about 18 s (3 ms per key in the source's fork): the split stays in its
    // sync, where a cancel still undoes it, while the page pauses and resumes it.
    await source.config('SET', 'rdb-key-save-delay', '3000');
    const routeBefore = await own.admin.route('dctl');

    await page.goto(`${ownBase}/ui/#/cluster/dctl`);
    await page.fill('#token', token);
    await page.click('#token-form button[type="submit"]');
    page.on('dialog', (dialog) => void dialog.accept());
    const newMaster = await world.redis();
    // Its load reported every 4 KiB, not every 2 MiB (more than this RDB): the page shows the bytes of the full sync.
    await redis.at(newMaster.address).config('SET', 'loading-process-events-interval-bytes', '4096');
    const asked = await own.admin.splits.split('dctl', { shard: 's0', newShard: 's1', master: newMaster.address, requestedBy: 'test' });
    const row = `#splits tr[data-split="${asked.id}"]`;
    await page.waitForSelector(`${row}[data-next="sync"]`, { timeout: SHOWN_WITHIN });

    await page.locator(`${row} button[data-op="pause"]`).click();
    await page.waitForSelector(`${row}[data-state="paused"]`, { timeout: SHOWN_WITHIN });
    expect(await page.textContent('#message')).toContain(`Split ${asked.id}: pause asked.`);
    // Paused, the full sync goes on, and the page shows its bytes so far.
    await page.waitForFunction((sel) => Number(document.querySelector<HTMLElement>(`${sel} td.sync > span`)?.dataset['fullSyncBytes']) > 0, row, { timeout: SHOWN_WITHIN });
    expect(await page.textContent(`${row} td.sync`)).toMatch(/link down, full sync [\d.]+ (B|KiB|MiB) so far/);
    await page.locator(`${row} button[data-op="resume"]`).click();
    await page.waitForSelector(`${row}[data-state="running"] button[data-op="pause"]`, { timeout: SHOWN_WITHIN });
    await page.locator(`${row} button[data-op="pause"]`).click();
    await page.waitForSelector(`${row}[data-state="paused"]`, { timeout: SHOWN_WITHIN });

    // Cancelled while the new master still loads the RDB: it answers LOADING to REPLICAOF NO ONE
    // until its load ends, and the undo waits for that to detach it.
    expect(await page.isEnabled(`${row} button[data-op="cancel"]`)).toBe(true);
    expect(await dataOf(page, `${row} td.sync > span`, 'link')).toBe('down');
    await page.locator(`${row} button[data-op="cancel"]`).click();
    await page.waitForSelector(`${row}[data-state="cancelled"]`, { timeout: SHOWN_WITHIN });
    const cancelled = (await own.admin.splits.list('dctl')).splits.find((s) => s.id === asked.id)!;
    expect(cancelled.steps.map((s) => s.step)).toEqual(['attach', 'pause', 'resume', 'pause', 'cancel']);
    // Undone: the route as before, the new instance detached, the source with every key.
    expect(await own.admin.route('dctl')).toEqual(routeBefore);
    expect((await redis.at(newMaster.address).info('replication')).includes('role:master')).toBe(true);
    expect(await source.dbsize()).toBe(6000);
    // Each asked from the page, in the history with who asked.
    const history = (await own.admin.listHistory('dctl', 200)).entries;
    expect(history.find((e) => e.action === 'split:cancel' && e.outcome === 'cancelled')?.reason).toMatch(/detached \(REPLICAOF NO ONE\).*settings put back/);
    expect(history.filter((e) => e.reason.includes('asked by dashboard')).map((e) => e.action)).toEqual(['split:pause', 'split:resume', 'split:pause', 'split:cancel']);
  }, 120_000);
});
