/**
 * Everything the chaos runner starts: a 3-member etcd, Redis shards (a master and slaves each),
 * 3 controller processes and 2 proxy processes, all on 127.0.0.1 free ports with their data in
 * one temporary folder. Each process can be killed, stopped and started again on the same port;
 * `stop()` ends them all (stopped ones too) whatever state the run left them in.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { AdminService } from '../../src/service/admin-service.js';
import { createEtcd } from '../../src/store/etcd.js';
import { Keys } from '../../src/store/keys.js';
import {
  freePort,
  spawnController,
  spawnProxy,
  startEtcdCluster,
  startRedis,
  waitFor,
  type EtcdCluster,
  type ManagedProcess,
  type RedisServer,
} from '../../src/playground/processes.js';
import { FAST_PROBE, makeCluster, type ClusterWorld } from '../../test/helpers/cluster.js';
import { EtcdPartitions, etcdUsers } from '../../test/helpers/etcd-partition.js';
import { TEST_LEASE_TTL } from '../../test/helpers/servers.js';

export const CLUSTER = 'chaos';
export const CONTROLLER_IDS = ['c1', 'c2', 'c3'];
export const LEASE_TTL_SECONDS = TEST_LEASE_TTL;
export const PROBE = FAST_PROBE;
/**
 * The default allows 3 automatic failovers an hour per cluster, then only reports: a long run
 * kills masters more often than that, and a killed master that is not failed over comes back
 * empty as the master, which loses its shard (seen in a long run before this was set).
 */
export const FAILOVER = { maxPerWindow: 1000 };

export interface ProxyHandle {
  id: string;
  port: number;
  /** The one etcd member this proxy talks to: cutting that member cuts this proxy off. */
  etcdEndpoint: string;
  process: ManagedProcess;
}

export class ChaosSetup {
  readonly redis = new Map<string, RedisServer>();
  readonly controllers = new Map<string, ManagedProcess>();
  readonly proxies: ProxyHandle[] = [];
  etcd!: EtcdCluster;
  client!: Etcd3;
  keys!: Keys;
  admin!: AdminService;
  /** Cuts of etcd members' peer links (the "cut etcd member" fault); healed and removed by stop(). */
  readonly partitions = new EtcdPartitions();
  /** The HTTP API port of each controller that has one (kept across its restarts). */
  private readonly apiPorts = new Map<string, number>();
  /** The etcd revision right after the cluster was created: history is read from here. */
  startRevision = '0';

  private constructor(readonly dir: string) {}

  /** `created` gets the setup before anything starts, so that a Ctrl-C during the start can end what did. */
  static async start(shardSlaves: number[], say: (line: string) => void, created: (setup: ChaosSetup) => void): Promise<ChaosSetup> {
    const setup = new ChaosSetup(mkdtempSync(join(tmpdir(), 'cfgserver-chaos-')));
    created(setup);
    try {
      await setup.startAll(shardSlaves, say);
    } catch (err) {
      await setup.stop(false);
      throw err;
    }
    return setup;
  }

  private async startAll(shardSlaves: number[], say: (line: string) => void): Promise<void> {
    // Each member as its own user, so that the "cut etcd member" fault can tell its links apart
    // (test/helpers/etcd-partition.ts): root only.
    this.etcd = await startEtcdCluster(this.dir, 3, [], etcdUsers);
    this.client = createEtcd({ endpoints: this.etcd.endpoints });
    const world: ClusterWorld = {
      redis: (extraArgs = [], port) => this.startRedis(extraArgs, port),
      admin: (prefix) => new AdminService(this.client, new Keys(prefix)),
    };
    const made = await makeCluster(world, CLUSTER, { slaves: shardSlaves, probe: PROBE, failover: FAILOVER });
    this.keys = new Keys(made.prefix);
    this.admin = made.admin;
    this.startRevision = (await this.client.get(this.keys.leader()).exec()).header.revision;
    // One controller with an HTTP API, which a proxy cut off from etcd asks for the route; the
    // other two without, which it cannot ask (so it must not take its route as confirmed).
    this.apiPorts.set(CONTROLLER_IDS[0]!, await freePort());
    for (const id of CONTROLLER_IDS) this.startController(id);
    for (const [i, member] of this.etcd.members.slice(0, 2).entries()) {
      const port = await freePort();
      const id = `p${i + 1}`;
      this.proxies.push({ id, port, etcdEndpoint: member.endpoint, process: this.spawnProxy(id, port, member.endpoint) });
    }
    await waitFor('both proxies to register', async () => (await this.admin.listProxies(CLUSTER)).proxies.length === this.proxies.length, 30_000, 200);
    say(`setup: etcd ${this.etcd.endpoints}; prefix ${this.keys.prefix}; data in ${this.dir}`);
  }

  async startRedis(extraArgs: string[] = [], port?: number): Promise<RedisServer> {
    const server = await startRedis(this.dir, port, extraArgs);
    this.redis.set(server.address, server);
    return server;
  }

  /** Starts a killed Redis again on its port, empty (as the test harness's instances come back). */
  async restartRedis(address: string): Promise<void> {
    const old = this.redis.get(address);
    if (!old) throw new Error(`no redis-server at ${address}`);
    await old.process.kill9();
    await this.startRedis([], old.port);
  }

  startController(id: string): ManagedProcess {
    const port = this.apiPorts.get(id);
    const p = spawnController({
      id,
      ...(port !== undefined ? { listen: `127.0.0.1:${port}` } : {}),
      etcd: this.etcd.endpoints,
      prefix: this.keys.prefix,
      leaseTtlSeconds: LEASE_TTL_SECONDS,
      logFile: join(this.dir, `controller-${id}.log`),
    });
    this.controllers.set(id, p);
    return p;
  }

  /** Starts a killed proxy again on its port, with the same etcd member. */
  startProxy(handle: ProxyHandle): void {
    handle.process = this.spawnProxy(handle.id, handle.port, handle.etcdEndpoint);
  }

  private spawnProxy(id: string, port: number, etcd: string): ManagedProcess {
    return spawnProxy({
      id,
      cluster: CLUSTER,
      listen: `127.0.0.1:${port}`,
      etcd,
      prefix: this.keys.prefix,
      logFile: join(this.dir, `proxy-${id}.log`),
      extraArgs: ['--log-level', 'warn'],
    });
  }

  /**
   * On Ctrl-C: every process killed at once, synchronously, so that nothing the run is still
   * doing (a restart in a fault) can start one again before the runner exits.
   */
  killNow(keep: boolean): void {
    const processes = [
      ...this.proxies.map((p) => p.process),
      ...this.controllers.values(),
      ...[...this.redis.values()].map((r) => r.process),
      ...(this.etcd?.members.map((m) => m.process) ?? []),
    ].filter((p) => p?.running());
    for (const p of processes) {
      p.signal('SIGCONT');
      p.signal('SIGKILL');
    }
    this.partitions.remove();
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Every process ended (continued first: a stopped process ignores SIGTERM), and the folder removed unless `keep`. */
  async stop(keep: boolean): Promise<void> {
    const processes = [
      ...this.proxies.map((p) => p.process),
      ...this.controllers.values(),
      ...[...this.redis.values()].map((r) => r.process),
    ].filter((p) => p?.running());
    for (const p of processes) p.signal('SIGCONT');
    await Promise.all(processes.map((p) => p.stop(2000).catch(() => undefined)));
    this.client?.close();
    this.partitions.remove();
    await this.etcd?.stop().catch(() => undefined);
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
