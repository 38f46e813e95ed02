/**
 * bench/proxy — throughput and p99 of one cfgserver proxy process against twemproxy (nutcracker)
 * over the same three shards, against Redis directly, and against the platform control
 * bench/minimal-proxy.ts (the least a Node process does to shard RESP: what Node allows here),
 * measured in one interleaved run.
 *
 *   node --import tsx bench/proxy.ts [--requests N] [--rounds R] [--clients C] [--pipelines 1,16] [--tests set,get] [--compare path/to/cfgserver.js]
 *
 * Needs etcd, redis-server, redis-benchmark and nutcracker (apt-get install etcd-server
 * redis-server redis-tools nutcracker) and a build (npm run build). Prints ops/s, p99 and CPU
 * microseconds per command of the proxy process, and the ratios cfgserver / twemproxy,
 * minimal-node / twemproxy and cfgserver / minimal-node.
 */
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, freePort } from '../src/playground/processes.js';
import { argNumber, argText, cpuMicros, hostBusyMicros, ioCalls, median, redisBenchmark, run, startComparedProxies, whenServing, withCluster } from './common.js';

const REQUESTS = argNumber('requests', 200_000);
const ROUNDS = argNumber('rounds', 3);
const CLIENTS = argNumber('clients', 50);
const PIPELINES = argText('pipelines', '1,16').split(',').map(Number);
const TESTS = argText('tests', 'set,get').split(',') as ('set' | 'get')[];

interface Result {
  rps: number;
  p99: number;
  /** CPU microseconds per command of the proxy process: user space, kernel. */
  userUsPerOp: number | null;
  sysUsPerOp: number | null;
  /** Read and write system calls of the proxy process per command. */
  readsPerOp: number | null;
  writesPerOp: number | null;
  /** CPU microseconds per command of the whole host (every process and the kernel's softirq work). */
  hostUsPerOp: number;
  /** CPU microseconds and read system calls per command of the three Redis servers together. */
  redisUsPerOp: number;
  redisReadsPerOp: number;
}

async function benchmark(port: number, test: 'set' | 'get', pipeline: number, pid: number | null, redisPids: number[]): Promise<Result> {
  const before = pid ? cpuMicros(pid) : [0, 0];
  const ioBefore = pid ? ioCalls(pid) : [0, 0];
  const hostBefore = hostBusyMicros();
  const redisBefore = sumOver(redisPids);
  const { rps, p99 } = await redisBenchmark(port, test, pipeline, CLIENTS, REQUESTS);
  const after = pid ? cpuMicros(pid) : [0, 0];
  const ioAfter = pid ? ioCalls(pid) : [0, 0];
  const hostAfter = hostBusyMicros();
  const redisAfter = sumOver(redisPids);
  return {
    hostUsPerOp: (hostAfter - hostBefore) / REQUESTS,
    redisUsPerOp: (redisAfter.cpu - redisBefore.cpu) / REQUESTS,
    redisReadsPerOp: (redisAfter.reads - redisBefore.reads) / REQUESTS,
    rps,
    p99,
    userUsPerOp: pid ? (after[0]! - before[0]!) / REQUESTS : null,
    sysUsPerOp: pid ? (after[1]! - before[1]!) / REQUESTS : null,
    readsPerOp: pid ? (ioAfter[0]! - ioBefore[0]!) / REQUESTS : null,
    writesPerOp: pid ? (ioAfter[1]! - ioBefore[1]!) / REQUESTS : null,
  };
}

/** CPU and read calls of a set of processes so far (the three Redis servers). */
function sumOver(pids: number[]): { cpu: number; reads: number } {
  let cpu = 0;
  let reads = 0;
  for (const pid of pids) {
    const [user, sys] = cpuMicros(pid);
    cpu += user! + sys!;
    reads += ioCalls(pid)[0]!;
  }
  return { cpu, reads };
}

/** "label: throughput 1.20x, p99 0.80x, CPU per op 0.90x" — medians of `a` over medians of `b`. */
function ratios(a: Result[], b: Result[], label: string): string {
  const ratio = (f: (r: Result) => number) => median(a.map(f)) / median(b.map(f));
  const rps = ratio((r) => r.rps);
  const p99 = ratio((r) => r.p99);
  const cpu = ratio((r) => r.userUsPerOp! + r.sysUsPerOp!);
  return `${label.padEnd(25)} throughput ${rps.toFixed(2)}x, p99 ${p99.toFixed(2)}x, CPU per op ${cpu.toFixed(2)}x`;
}

/**
 * What a proxy may spend per command for 1.3x twemproxy's throughput on this host. The host's
 * cores are shared by the proxy, redis-benchmark, the Redis servers and the kernel's loopback
 * work; at the same host load as twemproxy's run, 1.3x its throughput needs 1/1.3 of its host
 * CPU per command, and what is not the proxy's (measured through cfgserver) comes off first.
 */
function proxyBudget(twemproxy: Result[], cfgserver: Result[], minimal: Result[]): string {
  const m = (rs: Result[], f: (r: Result) => number) => median(rs.map(f));
  const proxyCpu = (r: Result) => r.userUsPerOp! + r.sysUsPerOp!;
  const needed = m(twemproxy, (r) => r.hostUsPerOp) / 1.3;
  const rest = m(cfgserver, (r) => r.hostUsPerOp - proxyCpu(r));
  return `1.3x twemproxy at its host load: host ${needed.toFixed(2)} µs/op, of which Redis, redis-benchmark and the kernel take ${rest.toFixed(2)} => a proxy may spend ${(needed - rest).toFixed(2)} µs/op; twemproxy spends ${m(twemproxy, proxyCpu).toFixed(2)}, minimal node ${m(minimal, proxyCpu).toFixed(2)}, cfgserver ${m(cfgserver, proxyCpu).toFixed(2)}`;
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0]!.toFixed(2);
  await withCluster('bench', 3, async (c) => {
    const { dir, etcd, shards, stops } = c;
    // Each target with the Redis servers its commands reach (whose CPU the run counts).
    const everyShard = shards.map((s) => s.process.pid);
    const targets: { name: string; port: number; pid: number | null; redisPids: number[] }[] = [
      { name: 'redis (direct, one shard)', port: shards[0]!.port, pid: null, redisPids: [shards[0]!.process.pid] },
      ...(await startComparedProxies(c, 'bench')).map((t) => ({ ...t, redisPids: everyShard })),
    ];
    // --compare ENTRY: another build of cfgserver (e.g. the previous commit's) in the same run.
    const compare = argText('compare', '');
    if (compare) {
      const port = await freePort();
      const other = new ManagedProcess('cfgserver compare', process.execPath, [compare, 'proxy', '--cluster', 'bench', '--listen', `127.0.0.1:${port}`, '--etcd', etcd.endpoint, '--log-level', 'warn'], join(dir, 'compare.log'));
      stops.push(() => other.stop());
      await whenServing('compare', port, 15_000);
      targets.push({ name: 'cfgserver (--compare)', port, pid: other.pid, redisPids: everyShard });
    }
    const results = new Map<string, Result[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const pipeline of PIPELINES) {
        for (const test of TESTS) {
          for (const t of targets) {
            const r = await benchmark(t.port, test, pipeline, t.pid, t.redisPids);
            const key = `${t.name}|${test}|${pipeline}`;
            results.set(key, [...(results.get(key) ?? []), r]);
            process.stderr.write(`round ${round} ${test.toUpperCase()} -P ${pipeline} ${t.name}: ${Math.round(r.rps)} ops/s, p99 ${r.p99} ms\n`);
          }
        }
      }
    }

    const { stdout: redisVersion } = await run('redis-server', ['--version']);
    console.log(`\nbench/proxy: redis-benchmark -c ${CLIENTS} -n ${REQUESTS} -r 100000, median of ${ROUNDS} interleaved rounds`);
    console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}, ${redisVersion.trim().split(' ').slice(0, 3).join(' ')}, nutcracker 0.5.0; 3 shards on loopback; load average at start ${loadAtStart}\n`);
    console.log('test  -P  target                       ops/s     p99 ms  proxy CPU µs/op (user + kernel)  reads, writes /op  Redis CPU µs/op, reads/op  host CPU µs/op');
    for (const pipeline of PIPELINES) {
      for (const test of TESTS) {
        for (const t of targets) {
          const rs = results.get(`${t.name}|${test}|${pipeline}`)!;
          const cpu = rs[0]!.userUsPerOp === null ? '-' : `${median(rs.map((r) => r.userUsPerOp! + r.sysUsPerOp!)).toFixed(2)} (${median(rs.map((r) => r.userUsPerOp!)).toFixed(2)} + ${median(rs.map((r) => r.sysUsPerOp!)).toFixed(2)})`;
          const io = rs[0]!.readsPerOp === null ? '' : `${median(rs.map((r) => r.readsPerOp!)).toFixed(3)}, ${median(rs.map((r) => r.writesPerOp!)).toFixed(3)}`;
          const redis = `${median(rs.map((r) => r.redisUsPerOp)).toFixed(2)}, ${median(rs.map((r) => r.redisReadsPerOp)).toFixed(3)}`;
          console.log(`${test.toUpperCase().padEnd(5)} ${String(pipeline).padStart(2)}  ${t.name.padEnd(27)} ${String(Math.round(median(rs.map((r) => r.rps)))).padStart(8)}  ${median(rs.map((r) => r.p99)).toFixed(3).padStart(7)}  ${cpu.padEnd(31)}  ${io.padEnd(17)}  ${redis.padEnd(25)}  ${median(rs.map((r) => r.hostUsPerOp)).toFixed(2)} (${median(rs.map((r) => (r.hostUsPerOp * r.rps) / 1e6)).toFixed(2)} cores busy)`);
        }
        const of = (name: string) => results.get(`${name}|${test}|${pipeline}`)!;
        for (const [a, b, label] of [
          ['cfgserver proxy', 'twemproxy -v 3', 'cfgserver / twemproxy'],
          ['minimal node proxy', 'twemproxy -v 3', 'minimal-node / twemproxy'],
          ['cfgserver proxy', 'minimal node proxy', 'cfgserver / minimal-node'],
        ] as const) {
          console.log(`${''.padEnd(9)}${ratios(of(a), of(b), label)}`);
        }
        console.log(`${''.padEnd(9)}${proxyBudget(of('twemproxy -v 3'), of('cfgserver proxy'), of('minimal node proxy'))}`);
        console.log('');
      }
    }
  });
}

await main();
