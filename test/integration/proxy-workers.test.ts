/**
 * `cfgserver proxy --workers 2`, the real CLI: a supervisor and two workers on one client port,
 * each registered in etcd; a worker killed with -9 comes back; SIGTERM stops them all and their
 * registrations go with them.
 */
import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManagedProcess, cfgserverEntry, freePort, waitFor } from '../../src/playground/processes.js';
import { makeCluster } from '../helpers/cluster.js';
import { useRedisClients } from '../helpers/redis.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const procs: ManagedProcess[] = [];
afterAll(async () => {
  for (const p of procs) await p.kill9();
});

interface Health {
  ok: boolean;
  workers: number;
  ready: number;
  epochs: (number | null)[];
  list: { worker: number; id: string; pid: number | null; ready: boolean; epoch: number | null; connections: number; restarts: number }[];
}

async function health(metricsPort: number): Promise<Health> {
  return (await (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).json()) as Health;
}

/** `n` separate client connections, each writing and reading back keys spread over every slot. */
async function serveMany(port: number, n: number, tag: string): Promise<void> {
  const clients = Array.from({ length: n }, () => new Redis({ port, maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true }));
  try {
    await Promise.all(clients.map((c) => c.connect()));
    await Promise.all(
      clients.map(async (c, i) => {
        for (let j = 0; j < 20; j++) {
          const key = `${tag}:${i}:${j}`;
          expect(await c.set(key, `${i}-${j}`)).toBe('OK');
          expect(await c.get(key)).toBe(`${i}-${j}`);
        }
      }),
    );
  } finally {
    clients.forEach((c) => c.disconnect());
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('cfgserver proxy --workers 2', () => {
  it('serves many clients from both workers, restarts a killed worker, stops cleanly on SIGTERM', async () => {
    const { prefix, admin, shards } = await makeCluster(world, 'wk', { shards: 3, slaves: 0 });
    const route = await admin.route('wk');
    const port = await freePort();
    const metricsPort = await freePort();
    const logFile = join(world.dir, 'proxy-workers.log');
    const proc = new ManagedProcess('proxy --workers 2', process.execPath, [cfgserverEntry(), 'proxy', '--cluster', 'wk', '--listen', `127.0.0.1:${port}`, '--metrics', `127.0.0.1:${metricsPort}`, '--etcd', world.etcd.endpoint, '--prefix', prefix, '--id', 'pw', '--workers', '2'], logFile);
    procs.push(proc);

    const registered = await waitFor('both workers registered', async () => {
      const { proxies } = await admin.listProxies('wk');
      return proxies.length === 2 && proxies.every((p) => p.epoch === route.epoch) ? proxies : null;
    }, 20_000);
    expect(registered.map((p) => p.id)).toEqual(['pw-w0', 'pw-w1']);
    expect(new Set(registered.map((p) => p.address))).toEqual(new Set([`127.0.0.1:${port}`]));
    const pids = registered.map((p) => p.pid);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(proc.pid);

    // The supervisor hears of its workers' state by IPC, which may come just after the registration.
    const h = await waitFor('the supervisor to see both workers ready', async () => {
      const now = await health(metricsPort);
      return (now as { ready?: number }).ready === 2 ? now : null;
    });
    expect(h).toMatchObject({ ok: true, workers: 2, ready: 2, epochs: [route.epoch, route.epoch] });

    await serveMany(port, 60, 'a');
    // Keys of every shard went through: each master holds some.
    for (const s of shards) expect(await redis.at(s.master.address).dbsize()).toBeGreaterThan(0);

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const commands = Number(/^cfgserver_proxy_commands_total (\d+)/m.exec(metrics)?.[1]);
    expect(commands).toBeGreaterThanOrEqual(60 * 40);
    expect(metrics).toMatch(/^cfgserver_proxy_workers_ready 2$/m);
    expect(metrics).toMatch(new RegExp(`^cfgserver_proxy_route_epoch ${route.epoch}$`, 'm'));

    // kill -9 of worker 1: the supervisor forks a new one, which registers under the same id.
    process.kill(pids[1]!, 'SIGKILL');
    const back = await waitFor('worker 1 restarted and registered', async () => {
      const { proxies } = await admin.listProxies('wk');
      const w1 = proxies.find((p) => p.id === 'pw-w1');
      return w1 && w1.pid !== pids[1] && alive(w1.pid) ? w1 : null;
    }, 20_000);
    expect(back.epoch).toBe(route.epoch);
    await waitFor('two workers ready again', async () => (await health(metricsPort)).ready === 2, 10_000);
    expect((await health(metricsPort)).list[1]!.restarts).toBe(1);
    expect(alive(pids[0]!)).toBe(true);
    await serveMany(port, 60, 'b');
    expect(readFileSync(logFile, 'utf8')).toMatch(/proxy worker exited; restarting it/);

    // SIGTERM: the workers revoke their leases, so the registrations go at once, not at TTL.
    const workerPids = [pids[0]!, back.pid];
    await proc.stop(15_000);
    expect(proc.exitCode).toBe(0);
    expect((await admin.listProxies('wk')).proxies).toEqual([]);
    for (const pid of workerPids) expect(alive(pid)).toBe(false);
  });

  it('stops with exit code 1, instead of restarting forever, when the workers cannot start (port taken)', async () => {
    const { prefix } = await makeCluster(world, 'wkbad', { shards: 1, slaves: 0 });
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const logFile = join(world.dir, 'proxy-workers-bad.log');
      const proc = new ManagedProcess('proxy --workers 2 (bad)', process.execPath, [cfgserverEntry(), 'proxy', '--cluster', 'wkbad', '--listen', `127.0.0.1:${port}`, '--etcd', world.etcd.endpoint, '--prefix', prefix, '--workers', '2'], logFile);
      procs.push(proc);
      expect(await proc.waitExit()).toBe(1);
      expect(readFileSync(logFile, 'utf8')).toMatch(/failed before any worker was ready/);
    } finally {
      taken.close();
    }
  });
});
