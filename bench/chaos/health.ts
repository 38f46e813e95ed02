/**
 * "The cluster is whole again": what the runner waits for after each fault and before its final
 * reads. Every instance of the route plays the role the route gives it (slaves replicating from
 * their master with the link up), no task is unfinished, and every proxy has applied the route.
 */
import { Redis } from 'ioredis';
import { isTerminal, type Route } from '../../src/model/schemas.js';
import { parseReplicationInfo } from '../../src/redis/info.js';
import { waitFor } from '../../src/playground/processes.js';
import { CLUSTER, type ChaosSetup } from './setup.js';

/** One short-lived client per address, closed with `close()`. */
export class DirectClients {
  private readonly clients = new Map<string, Redis>();

  at(address: string): Redis {
    let c = this.clients.get(address);
    if (!c) {
      const i = address.lastIndexOf(':');
      c = new Redis({ host: address.slice(0, i), port: Number(address.slice(i + 1)), maxRetriesPerRequest: 0, commandTimeout: 1000, retryStrategy: () => 200, enableOfflineQueue: false, lazyConnect: true });
      c.on('error', () => undefined);
      this.clients.set(address, c);
    }
    return c;
  }

  async ready(address: string): Promise<Redis> {
    const c = this.at(address);
    if (c.status === 'wait' || c.status === 'end') await c.connect().catch(() => undefined);
    return c;
  }

  close(): void {
    for (const c of this.clients.values()) c.disconnect();
    this.clients.clear();
  }
}

/** What is still not whole, or null when everything is. */
export async function notWhole(setup: ChaosSetup, direct: DirectClients): Promise<string | null> {
  const route: Route = await setup.admin.route(CLUSTER);
  for (const shard of route.shards) {
    const master = parseReplicationInfo(await (await direct.ready(shard.master)).call('INFO', 'replication'));
    if (master.role !== 'master') return `${shard.id}: ${shard.master} is not a master`;
    for (const slave of shard.slaves) {
      const info = parseReplicationInfo(await (await direct.ready(slave)).call('INFO', 'replication'));
      if (info.role !== 'slave' || info.masterAddress !== shard.master || !info.linkUp) return `${shard.id}: ${slave} does not replicate from ${shard.master}`;
    }
  }
  const open = (await setup.admin.listTasks(CLUSTER)).tasks.filter((t) => !isTerminal(t));
  if (open.length > 0) return `task ${open[0]!.id} (${open[0]!.kind}) is ${open[0]!.state}`;
  const proxies = (await setup.admin.listProxies(CLUSTER)).proxies;
  const behind = setup.proxies.filter((p) => proxies.find((r) => r.id === p.id)?.epoch !== route.epoch);
  if (behind.length > 0) return `proxy ${behind.map((p) => p.id).join(', ')} not at epoch ${route.epoch}`;
  return null;
}

/**
 * An old master that took writes its successor never got is left alone by the controller (it
 * will not discard data on its own), which is right, and says so in `cluster show`. The runner
 * then does what the message tells an operator: REPLICAOF by hand, discarding those writes. An
 * acknowledged one among them shows up as lost in the final checks. Returns what it discarded.
 */
export async function discardRefused(setup: ChaosSetup, direct: DirectClients): Promise<string[]> {
  const discarded: string[] = [];
  const status = await setup.admin.describeCluster(CLUSTER);
  for (const shard of status.shards) {
    const master = shard.instances.find((i) => i.expectedRole === 'master')!.address;
    for (const i of shard.instances) {
      if (!i.refused) continue;
      const at = master.lastIndexOf(':');
      await (await direct.ready(i.address)).call('REPLICAOF', master.slice(0, at), master.slice(at + 1));
      discarded.push(`${i.address} (${i.refused.summary.slice(0, 160)})`);
    }
  }
  return discarded;
}

export interface Wholeness {
  /** What was still wrong at the deadline, null if the cluster became whole. */
  wrong: string | null;
  /** Old masters the runner discarded on the way. */
  discarded: string[];
}

/** Waits until the cluster is whole, discarding refused old masters as an operator would. */
export async function waitWhole(setup: ChaosSetup, direct: DirectClients, timeoutMs: number): Promise<Wholeness> {
  let wrong: string | null = 'not checked';
  const discarded: string[] = [];
  try {
    await waitFor('the cluster to be whole', async () => {
      wrong = await notWhole(setup, direct).catch((err: unknown) => `check failed: ${String(err)}`);
      if (wrong?.includes('does not replicate')) discarded.push(...(await discardRefused(setup, direct).catch(() => [])));
      return wrong === null;
    }, timeoutMs, 250);
    return { wrong: null, discarded };
  } catch {
    return { wrong, discarded };
  }
}
