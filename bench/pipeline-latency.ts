/**
 * bench/pipeline-latency — how long a pipelined client waits, through twemproxy, the platform
 * control and cfgserver over the same three shards (and Redis directly), measured two ways by
 * one client (bench/pipeline-client.ts): to the first byte of a pipeline's replies, which is what
 * redis-benchmark's latencies are, and to its last reply, which is when the client can go on.
 * A proxy that writes each shard's replies as they come shows a short first-byte time; one that
 * writes a pipeline's replies at once (cfgserver, like Redis) does not, and the completion time
 * says what that costs the client.
 *
 *   npm run build && node --import tsx bench/pipeline-latency.ts [--rounds 3] [--requests 200000] [--clients 50] [--pipeline 16] [--tests get,set]
 */
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/playground/processes.js';
import { argNumber, argText, median, run, startComparedProxies, withCluster } from './common.js';

const ROUNDS = argNumber('rounds', 3);
const REQUESTS = argNumber('requests', 200_000);
const CLIENTS = argNumber('clients', 50);
const PIPELINE = argNumber('pipeline', 16);
const TESTS = argText('tests', 'get,set').split(',');

interface Result {
  rps: number;
  firstP50: number;
  firstP99: number;
  completeP50: number;
  completeP99: number;
}

async function measure(port: number, test: string): Promise<Result> {
  const args = ['--import', 'tsx', join(packageRoot(), 'bench', 'pipeline-client.ts'), '--port', String(port), '--clients', String(CLIENTS), '--pipeline', String(PIPELINE), '--requests', String(REQUESTS), '--test', test];
  const { stdout } = await run(process.execPath, args, { cwd: packageRoot() });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Result;
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0]!.toFixed(2);
  await withCluster('bench', 3, async (c) => {
    const targets = [{ name: 'redis (direct, one shard)', port: c.shards[0]!.port }, ...(await startComparedProxies(c, 'bench'))];
    const results = new Map<string, Result[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const test of TESTS) {
        for (const t of targets) {
          const r = await measure(t.port, test);
          const key = `${t.name}|${test}`;
          results.set(key, [...(results.get(key) ?? []), r]);
          process.stderr.write(`round ${round} ${test.toUpperCase()} ${t.name}: ${Math.round(r.rps)} ops/s, first byte p99 ${r.firstP99.toFixed(2)} ms, complete p99 ${r.completeP99.toFixed(2)} ms\n`);
        }
      }
    }
    console.log(`\nbench/pipeline-latency: ${CLIENTS} clients, pipelines of ${PIPELINE}, ${REQUESTS} commands, one Node client process, median of ${ROUNDS} interleaved rounds`);
    console.log(`machine: ${cpus().length} cores, node ${process.version}; 3 shards on loopback; load average at start ${loadAtStart}\n`);
    console.log('test  target                        ops/s   first byte p50, p99 ms   complete p50, p99 ms');
    for (const test of TESTS) {
      for (const t of targets) {
        const rs = results.get(`${t.name}|${test}`)!;
        const m = (f: (r: Result) => number) => median(rs.map(f)).toFixed(2);
        console.log(`${test.toUpperCase().padEnd(5)} ${t.name.padEnd(27)} ${String(Math.round(median(rs.map((r) => r.rps)))).padStart(8)}   ${`${m((r) => r.firstP50)}, ${m((r) => r.firstP99)}`.padEnd(22)}   ${m((r) => r.completeP50)}, ${m((r) => r.completeP99)}`);
      }
      const of = (name: string, f: (r: Result) => number) => median(results.get(`${name}|${test}`)!.map(f));
      const ratio = (f: (r: Result) => number) => (of('cfgserver proxy', f) / of('twemproxy -v 3', f)).toFixed(2);
      console.log(`      cfgserver / twemproxy: throughput ${ratio((r) => r.rps)}x, first-byte p99 ${ratio((r) => r.firstP99)}x, completion p99 ${ratio((r) => r.completeP99)}x\n`);
    }
  });
}

await main();
