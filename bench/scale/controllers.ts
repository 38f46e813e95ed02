/**
 * Controller scale (issue 11, item 4): many clusters and instances probed by several controller
 * replicas on this one machine — the leader's CPU, etcd's requests and writes per second while
 * nothing happens, and the time from a master's death to its failover at that scale.
 *
 *   npm run build && node --import tsx bench/scale/controllers.ts [--clusters 100] [--shards 5] [--replicas 3] [--seconds 20]
 *
 * Instances are a stand-in (responder.ts: one process answering PING, INFO, CONFIG and REPLICAOF
 * on every port, a master and a slave per shard): 1,000 real redis-servers would take the two
 * cores being measured. Goals (issue 11): leader under half a core; failover time as with few.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort, spawnController, startEtcd, waitFor, type ManagedProcess } from '../../src/playground/processes.js';
import { AdminService } from '../../src/service/admin-service.js';
import { createEtcd } from '../../src/store/etcd.js';
import { Keys } from '../../src/store/keys.js';
import { argNumber } from '../common.js';
import { Responder } from './responder.js';

const CLUSTERS = argNumber('clusters', 100);
const SHARDS = argNumber('shards', 5);
const REPLICAS = argNumber('replicas', 3);
const SECONDS = argNumber('seconds', 20);

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** etcd's gRPC requests started so far, from its /metrics. */
async function etcdRequests(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith('grpc_server_started_total{')) sum += Number(line.split(' ').pop());
  return sum;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cfgserver-bench-scale-'));
  const etcd = await startEtcd(dir);
  const client = createEtcd({ endpoints: etcd.endpoint });
  const responder = new Responder();
  const controllers: ManagedProcess[] = [];
  try {
    const admin = new AdminService(client, new Keys());
    const started = performance.now();
    const firstMaster: number[] = [];
    for (let c = 0; c < CLUSTERS; c++) {
      const shards = [];
      for (let s = 0; s < SHARDS; s++) {
        const [m, sl] = [await freePort(), await freePort()];
        await responder.add(m, null);
        await responder.add(sl, m);
        shards.push({ master: `127.0.0.1:${m}`, slaves: [`127.0.0.1:${sl}`] });
        if (c === 0 && s === 0) firstMaster.push(m, sl);
      }
      // Probes every second, down after 3 s: the defaults.
      await admin.createCluster({ name: `c${c}`, file: { shards } });
    }
    const instances = CLUSTERS * SHARDS * 2;
    console.error(`${CLUSTERS} clusters, ${instances} instances created in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    for (let r = 0; r < REPLICAS; r++) controllers.push(spawnController({ id: `scale-c${r}`, etcd: etcd.endpoint, logFile: join(dir, `controller-${r}.log`) }));
    await waitFor('a leader', async () => (await admin.controllers.leader()) !== null, 30_000);
    // Settled: every replica has probed and published its views, and etcd's revision stands still.
    let last = -1;
    let still = 0;
    await waitFor('etcd to stand still', async () => {
      const rev = Number((await client.get('x').exec()).header.revision);
      still = rev === last ? still + 1 : 0;
      last = rev;
      return still >= 6;
    }, 180_000, 500);
    const leader = (await admin.controllers.leader())!.controller;
    const cpuBefore = controllers.map((p) => cpuSeconds(p.pid));
    const reqBefore = await etcdRequests(etcd.endpoint);
    const revBefore = Number((await client.get('x').exec()).header.revision);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const wall = (performance.now() - t0) / 1000;
    const cpu = controllers.map((p, i) => (cpuSeconds(p.pid) - cpuBefore[i]!) / wall);
    const reqs = ((await etcdRequests(etcd.endpoint)) - reqBefore) / wall;
    const writes = (Number((await client.get('x').exec()).header.revision) - revBefore) / wall;

    // A master dies: how long until the route names its slave?
    const [master, slave] = firstMaster as [number, number];
    const killedAt = performance.now();
    responder.kill(master);
    await waitFor('the failover of c0/s0', async () => (await admin.route('c0')).shards[0]!.master === `127.0.0.1:${slave}`, 60_000, 50);
    const failoverMs = performance.now() - killedAt;

    console.log(`bench/scale/controllers: ${CLUSTERS} clusters x ${SHARDS} shards (master + slave) = ${instances} stand-in instances, ${REPLICAS} controller replicas probing every 1 s; one etcd; ${SECONDS} s idle window`);
    console.log(`controller CPU (cores): ${controllers.map((p, i) => `${i === Number(leader.replace('scale-c', '')) ? 'leader ' : ''}scale-c${i} ${cpu[i]!.toFixed(2)}`).join(', ')} (goal: leader < 0.5)`);
    console.log(`etcd while idle: ${reqs.toFixed(0)} requests/s, ${writes.toFixed(2)} writes (revisions)/s`);
    console.log(`kill of a master -> the route names its slave: ${failoverMs.toFixed(0)} ms (down after 3 s, the default)`);
  } catch (err) {
    // What the controllers said last tells why (their logs go with the directory).
    for (let r = 0; r < controllers.length; r++) {
      const lines = readFileSync(join(dir, `controller-${r}.log`), 'utf8').trim().split('\n');
      console.error(`--- controller-${r}.log (last lines)\n${lines.slice(-15).join('\n')}`);
    }
    throw err;
  } finally {
    await Promise.all(controllers.map((p) => p.stop().catch(() => undefined)));
    await responder.close();
    client.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
