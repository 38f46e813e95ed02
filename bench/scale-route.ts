/**
 * Route scale (issue 11, item 4, the route's share): how big is the route of a large cluster, and
 * how fast does a route change reach many proxies watching it?
 *
 *   node --import tsx bench/scale-route.ts [--shards 500] [--slots 16384] [--watchers 500] [--changes 10]
 *
 * One etcd on loopback. A cluster of --shards shards (a master and a slave each, addresses only:
 * nothing connects to Redis) owning --slots slots, written as cfgserver writes it. Then --watchers
 * RouteWatchers — each with an etcd client of its own, as each proxy process has — watch it, and
 * --changes route changes (a new epoch each, a master swapped) are published one at a time; for each,
 * the time until every watcher applied it. Goals (issue 11): route ≤ 128 KiB; p99 ≤ 300 ms.
 *
 * All the watchers run in this one Node process, so each change costs --watchers decodes on one
 * thread before the last can have it — a deployment runs one proxy per host, each decoding once.
 * The same run therefore also measures etcd's fan-out alone: as many plain etcd watches (an etcd
 * client each) that only note when the new value arrives. What one proxy of a deployment sees is
 * about that delivery plus one decode.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { nextRoute } from '../src/model/route.js';
import type { Route, Shard } from '../src/model/schemas.js';
import { startEtcd } from '../src/playground/processes.js';
import { AdminService } from '../src/service/admin-service.js';
import type { IKeyValue } from 'etcd3';
import { createEtcd, decodeKv } from '../src/store/etcd.js';
import { routeSchema } from '../src/model/schemas.js';
import { Keys } from '../src/store/keys.js';
import { RouteWatcher } from '../src/store/route-watcher.js';
import { argNumber, median, percentile } from './common.js';

const SHARDS = argNumber('shards', 500);
const SLOTS = argNumber('slots', 16384);
const WATCHERS = argNumber('watchers', 500);
const CHANGES = argNumber('changes', 10);
const CLUSTER = 'big';

function shardsOf(count: number, slots: number): Shard[] {
  const per = Math.floor(slots / count);
  return Array.from({ length: count }, (_, i) => ({
    id: `s${i}`,
    master: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:6379`,
    slaves: [`10.1.${Math.floor(i / 250)}.${(i % 250) + 1}:6379`],
    slots: [[i * per, i === count - 1 ? slots - 1 : (i + 1) * per - 1]] as [number, number][],
  }));
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cfgserver-bench-scale-'));
  const etcd = await startEtcd(dir);
  const client = createEtcd({ endpoints: etcd.endpoint });
  const watchers: RouteWatcher[] = [];
  try {
    const admin = new AdminService(client, new Keys());
    await admin.createCluster({ name: CLUSTER, slots: SLOTS, file: { shards: shardsOf(SHARDS, SLOTS).map((s) => ({ master: s.master, slaves: s.slaves, id: s.id })) } });
    let route: Route = await admin.route(CLUSTER);
    const bytes = Buffer.byteLength(JSON.stringify(route));

    // etcd's fan-out alone: plain watches that note each value's arrival, then go away.
    const delivered = new Map<string, number[]>();
    const plain: { client: ReturnType<typeof createEtcd>; cancel(): Promise<void> }[] = [];
    for (let i = 0; i < WATCHERS; i++) {
      const c = createEtcd({ endpoints: etcd.endpoint });
      const w = await c.watch().key(new Keys().route(CLUSTER)).create();
      w.on('put', (kv) => {
        const list = delivered.get(kv.mod_revision) ?? [];
        list.push(performance.now());
        delivered.set(kv.mod_revision, list);
      });
      plain.push({ client: c, cancel: () => w.cancel() });
    }
    const deliveries: number[] = [];
    for (let c = 0; c < CHANGES; c++) {
      const current = await admin.getCluster(CLUSTER);
      const started = performance.now();
      const revision = await admin.clusters.writeRoute(nextRoute(current.route, current.route.shards), current.routeRevision);
      const deadline = Date.now() + 30_000;
      while ((delivered.get(String(revision))?.length ?? 0) < WATCHERS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      deliveries.push(...(delivered.get(String(revision)) ?? []).map((t) => t - started));
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const w of plain) {
      await w.cancel().catch(() => undefined);
      w.client.close();
    }

    // Each watcher applies the route by epoch: record when each epoch reached it.
    const seen = new Map<number, number[]>();
    for (let i = 0; i < WATCHERS; i++) {
      const w = new RouteWatcher({ cluster: CLUSTER, etcd: { endpoints: etcd.endpoint } });
      w.on('change', (r) => {
        const list = seen.get(r.epoch) ?? [];
        list.push(performance.now());
        seen.set(r.epoch, list);
      });
      await w.start();
      watchers.push(w);
    }
    const spreads: number[] = [];
    const all: number[] = [];
    for (let c = 0; c < CHANGES; c++) {
      const current = await admin.getCluster(CLUSTER);
      const shards = current.route.shards.map((s, i) => (i === c % SHARDS ? { ...s, master: s.slaves[0]!, slaves: [s.master] } : s));
      route = nextRoute(current.route, shards);
      const started = performance.now();
      await admin.clusters.writeRoute(route, current.routeRevision);
      const deadline = Date.now() + 30_000;
      while ((seen.get(route.epoch)?.length ?? 0) < WATCHERS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      const times = (seen.get(route.epoch) ?? []).map((t) => t - started);
      if (times.length < WATCHERS) throw new Error(`epoch ${route.epoch}: only ${times.length} of ${WATCHERS} watchers applied it in 30 s`);
      all.push(...times);
      spreads.push(Math.max(...times));
      await new Promise((r) => setTimeout(r, 200));
    }
    const p99 = percentile(all, 99);
    // The work each watcher does per change, alone: decode and validate the route's JSON (what a
    // proxy does on every change). Times the number of watchers, it is the CPU a change costs when
    // all of them share this machine's cores.
    const kv = { key: Buffer.from('route'), value: Buffer.from(JSON.stringify(route)) } as unknown as IKeyValue;
    const reps = 200;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) decodeKv(kv, routeSchema);
    const decodeMs = (performance.now() - t0) / reps;
    console.log(`bench/scale-route: ${SHARDS} shards (master + slave each), ${SLOTS} slots, ${WATCHERS} watchers (an etcd client each), ${CHANGES} route changes; one etcd on loopback`);
    console.log(`route document: ${bytes} bytes (${(bytes / 1024).toFixed(1)} KiB; goal <= 128 KiB: ${bytes <= 128 * 1024 ? 'met' : 'MISSED'})`);
    console.log(`write -> applied by a watcher, over ${all.length} applications: median ${median(all).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...all).toFixed(1)} ms (goal p99 <= 300 ms: ${p99 <= 300 ? 'met' : 'MISSED'})`);
    console.log(`decoding and validating the route once: ${decodeMs.toFixed(2)} ms; times ${WATCHERS} watchers in this one process: >= ${(decodeMs * WATCHERS).toFixed(0)} ms of one thread's time per change before the last watcher can have it`);
    const d99 = percentile(deliveries, 99);
    console.log(`etcd's fan-out alone (${WATCHERS} plain watches, no decode), over ${deliveries.length} deliveries: median ${median(deliveries).toFixed(1)} ms, p99 ${d99.toFixed(1)} ms`);
    console.log(`one proxy per host (delivery p99 + one decode): ${(d99 + decodeMs).toFixed(1)} ms (goal p99 <= 300 ms: ${d99 + decodeMs <= 300 ? 'met' : 'MISSED'})`);
    console.log(`last watcher per change: median ${median(spreads).toFixed(1)} ms, max ${Math.max(...spreads).toFixed(1)} ms`);
  } finally {
    await Promise.all(watchers.map((w) => w.stop().catch(() => undefined)));
    client.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
