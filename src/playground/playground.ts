/**
 * `cfgserver playground`: a whole local deployment on loopback — etcd, a cluster `demo` of
 * 3 shards × (master + slave), 2 spare empty redis-servers to scale out onto (a shard added and
 * rebalanced, a shard split), 2 controller replicas and a proxy — with data in a temporary folder.
 * Ctrl-C stops everything.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminService } from '../service/admin-service.js';
import { createEtcd } from '../store/etcd.js';
import { Keys } from '../store/keys.js';
import { keyPlace } from '../model/route.js';
import type { Route } from '../model/schemas.js';
import { ManagedProcess, packageRoot, portOrFree, spawnController, startEtcd, startRedis, type RedisServer } from './processes.js';

export interface PlaygroundOptions {
  dir?: string;
  keep: boolean;
  shards: number;
}

export async function runPlayground(options: PlaygroundOptions): Promise<void> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'cfgserver-playground-'));
  const stoppers: (() => Promise<void>)[] = [];
  const say = (line = '') => process.stdout.write(`${line}\n`);
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('\nstopping the playground...');
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
    say(options.keep ? `stopped; data kept in ${dir}` : 'stopped; temporary data removed');
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    say(`playground data in ${dir}`);
    const etcd = await startEtcd(dir, 2379);
    stoppers.push(etcd.stop);
    say(`etcd          ${etcd.endpoint}`);

    const shards: { master: string; slaves: string[] }[] = [];
    const masterPids: number[] = [];
    // A redis-server that dies (kill -9) comes back 5 s later, empty, as a failed machine would
    // after a reboot: the controller must make it a slave, never let it serve as a master again.
    const live = new Map<number, RedisServer>();
    const supervise = (server: RedisServer) => {
      live.set(server.port, server);
      void server.process.waitExit().then(() => {
        if (stopping) return;
        say(`redis ${server.address} died; restarting it in 5 s, empty`);
        setTimeout(() => {
          if (stopping) return;
          startRedis(dir, server.port).then(
            (back) => {
              say(`redis ${back.address} is back (pid ${back.process.pid})`);
              supervise(back);
            },
            (err) => say(`could not restart redis ${server.address}: ${err instanceof Error ? err.message : String(err)}`),
          );
        }, 5000);
      });
    };
    stoppers.push(async () => {
      for (const server of live.values()) await server.stop();
    });
    for (let i = 0; i < options.shards; i++) {
      const master = await startRedis(dir, 7000 + 2 * i);
      const slave = await startRedis(dir, 7001 + 2 * i);
      supervise(master);
      supervise(slave);
      shards.push({ master: master.address, slaves: [slave.address] });
      masterPids.push(master.process.pid);
      say(`redis shard s${i}: master ${master.address} (pid ${master.process.pid}), slave ${slave.address} (pid ${slave.process.pid})`);
    }

    // Empty instances in no cluster, for the scale-out steps the printout shows (shard add, split).
    const spares: string[] = [];
    for (const preferred of SPARE_PORTS) {
      const spare = await startRedis(dir, preferred);
      supervise(spare);
      spares.push(spare.address);
    }
    say(`redis spares  ${spares.join(', ')}: empty, in no cluster (to scale out onto)`);

    const client = createEtcd({ endpoints: etcd.endpoint });
    const admin = new AdminService(client, new Keys());
    const route = await admin.createCluster({ name: 'demo', file: { shards } });
    client.close();
    say('cluster demo  created in etcd, slots spread evenly over the shards');
    const writerKey = keyOnFirstShard(route);

    const controllers: ManagedProcess[] = [];
    const controllerPorts: number[] = [];
    for (let i = 1; i <= 2; i++) {
      const apiPort = await portOrFree(7100 + i);
      const ctl = spawnController({ id: `ctl-${i}`, etcd: etcd.endpoint, listen: `127.0.0.1:${apiPort}`, logFile: join(dir, `controller-${i}.log`) });
      controllers.push(ctl);
      controllerPorts.push(apiPort);
      stoppers.push(() => ctl.stop());
      say(`controller    ctl-${i}: http://127.0.0.1:${apiPort} (pid ${ctl.pid}, log ${ctl.logFile})`);
    }

    const proxyPort = await portOrFree(6380);
    const metricsPort = await portOrFree(6381);
    const proxy = new ManagedProcess(
      'proxy',
      process.execPath,
      [join(packageRoot(), 'dist/cli/cfgserver.js'), 'proxy', '--cluster', 'demo', '--listen', `127.0.0.1:${proxyPort}`, '--metrics', `127.0.0.1:${metricsPort}`, '--etcd', etcd.endpoint, '--id', 'proxy-1'],
      join(dir, 'proxy.log'),
    );
    stoppers.push(() => proxy.stop());
    say(`proxy         127.0.0.1:${proxyPort} (metrics http://127.0.0.1:${metricsPort}/metrics, pid ${proxy.pid}, log ${proxy.logFile})`);

    say(tryText({ proxyPort, etcd: etcd.endpoint, cfgctl: `node ${join(packageRoot(), 'dist/cli/cfgctl.js')}`, apiPort: controllerPorts[0]!, shards, masterPids, writerKey, spares }));
    await new Promise(() => undefined);
  } catch (err) {
    process.stderr.write(`playground failed: ${err instanceof Error ? err.message : String(err)}\n`);
    await stopAll(1);
  }
}

/**
 * The demo writer's key: one on shard s0, the shard whose master the printout (and the README)
 * tells you to kill, so that the writer notices the failover. `demo:clicks` is on s0 with the
 * default 3 shards of 1024 slots; with other shard counts the first `demo:clicks:N` that is.
 */
export function keyOnFirstShard(route: Route): string {
  const first = route.shards[0]?.id;
  for (let n = 0; ; n++) {
    const key = n === 0 ? 'demo:clicks' : `demo:clicks:${n}`;
    if (keyPlace(route, key).shard === first || n > 10_000) return key;
  }
}

/** Where the spare instances listen when free (the README's scale-out steps name these). */
export const SPARE_PORTS = [7010, 7011] as const;

export interface TryTextInput {
  proxyPort: number;
  etcd: string;
  cfgctl: string;
  /** The first controller's HTTP port (dashboard, metrics). */
  apiPort: number;
  shards: { master: string; slaves: string[] }[];
  masterPids: number[];
  writerKey: string;
  /** The spare empty instances: one for a shard added and rebalanced, one for a split. */
  spares: string[];
}

/** What the playground prints to try; the README's demo is the same (test/unit/playground-demo.test.ts). */
export function tryText(p: TryTextInput): string {
  const port = (address: string) => address.split(':')[1];
  return `
Try, in another terminal:
  redis-cli -p ${p.proxyPort}                    # talk to the cluster as to one Redis
  redis-benchmark -p ${p.proxyPort} -t set,get -r 100000 -q      # a quick load through the proxy
  while :; do redis-cli -p ${p.proxyPort} incr ${p.writerKey}; sleep 0.2; done
                                        # a writer that keeps going; meanwhile, elsewhere:
  export CFGSERVER_ETCD=${p.etcd}
  alias cfgctl='${p.cfgctl}'
  cfgctl slot demo ${p.writerKey}            # the writer's key: its slot, shard s0 and its master
  open http://127.0.0.1:${p.apiPort}/          # the dashboard: all of the below, live, in a browser
  cfgctl proxies demo                   # the proxy and the route epoch it applied
  cfgctl controllers                    # the two replicas; one leads
  cfgctl cluster show demo              # shards, roles, offsets as the leader sees them
  cfgctl route demo --json              # the route document proxies consume
  redis-cli -p ${port(p.shards[0]!.slaves[0]!)} replicaof 127.0.0.1 ${port(p.shards[p.shards.length - 1]!.master)}
                                        # break replication; watch the leader repair it:
  cfgctl history demo
  kill -9 ${p.masterPids[0]}                          # the master of s0 (${p.shards[0]!.master}), the writer's: it errs for
                                        # ~4 s, then s0's slave is master and it goes on
  cfgctl route demo; cfgctl tasks demo  # the new route epoch, the failover step by step
                                        # 5 s after the kill the old master restarts, empty:
  cfgctl cluster show demo              # it is made a slave of the new master
  cfgctl failover demo --shard s${p.shards.length - 1}       # a planned switchover, losing no write
  cfgctl cluster pause demo             # no automatic action until: cfgctl cluster resume demo
  kill -9 <pid of the leading controller>   # the other takes over within the lease TTL
  curl http://127.0.0.1:${p.apiPort}/metrics
${scaleOutText(p)}
Ctrl-C stops everything.`;
}

/** Scaling out onto the spares, the writer still running: a shard added and rebalanced, then a split of s0. */
function scaleOutText(p: TryTextInput): string {
  const [forAdd, forSplit] = p.spares;
  if (!forAdd || !forSplit) return '';
  const added = `s${p.shards.length}`;
  const split = `s${p.shards.length + 1}`;
  return `
Scale out onto the spare empty instances, the writer still running:
  cfgctl shard add demo --master ${forAdd} --id ${added}
  cfgctl rebalance demo --dry-run       # the moves that even the slots out: a share of them to ${added}
  cfgctl rebalance demo                 # ask for them; the leader moves the keys
  cfgctl migrations demo --watch        # keys moved, keys/s, until done
  cfgctl shard split demo s0 --new-shard ${split} --master ${forSplit} --trim-rate 2000
                                        # halve s0 by replication: sync, a hold of ~0.1 s, then a trim
  cfgctl splits demo                    # its step, the sync, the hold in ms, each side's trim
  redis-cli -p ${p.proxyPort} dbsize              # exact, even while both sides still hold the other's keys
`;
}
