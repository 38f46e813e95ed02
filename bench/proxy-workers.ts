/**
 * bench/proxy-workers — how `cfgserver proxy --workers N` scales on this host: the proxy with 1
 * and 2 workers (and 2 workers under SCHED_RR, for the scheduling choice) against twemproxy -v 3
 * over the same three shards, with a minimal Node forwarder (bench/forwarder.ts) at 1 and 2
 * workers as the platform line, all in one interleaved run.
 *
 *   node --import tsx bench/proxy-workers.ts [--requests N] [--rounds R] [--clients C]
 *
 * Needs what bench/proxy needs (etcd, redis-server, redis-benchmark, nutcracker, npm run build).
 * CPU µs per op is summed over every process of a target: the supervisor and its workers.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, cfgserverEntry, freePort, packageRoot } from '../src/playground/processes.js';
import { argNumber, cpuMicros, median, redisBenchmark, run, startTwemproxy, whenServing, withCluster } from './common.js';

const REQUESTS = argNumber('requests', 200_000);
const ROUNDS = argNumber('rounds', 3);
const CLIENTS = argNumber('clients', 50);

interface Result {
  rps: number;
  p99: number;
  /** CPU µs per command summed over the target's processes, and each process's share of it. */
  cpuUsPerOp: number | null;
  shares: number[];
}

/** CPU time (user + kernel) of a process so far, in microseconds. */
function cpuTotal(pid: number): number {
  const [user, kernel] = cpuMicros(pid);
  return user + kernel;
}

/** `pid` and its children (a supervisor's workers), from /proc/<pid>/task/<tid>/children. */
function family(pid: number): number[] {
  const children: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    if (text) children.push(...text.split(' ').map(Number));
  }
  // tsx's esbuild service is a child of the forwarder too; it is no part of forwarding.
  return [pid, ...children.filter((c) => !readFileSync(`/proc/${c}/comm`, 'utf8').startsWith('esbuild'))];
}

async function benchmark(port: number, test: 'set' | 'get', pipeline: number, pid: number | null): Promise<Result> {
  const pids = pid ? family(pid) : [];
  const before = pids.map(cpuTotal);
  const { rps, p99 } = await redisBenchmark(port, test, pipeline, CLIENTS, REQUESTS);
  const used = pids.map((p, i) => cpuTotal(p) - before[i]!);
  const total = used.reduce((a, b) => a + b, 0);
  return { rps, p99, cpuUsPerOp: pid ? total / REQUESTS : null, shares: total > 0 ? used.map((u) => u / total) : [] };
}

async function main(): Promise<void> {
  await withCluster('bench', 3, async (c) => {
    const { dir, etcd, shards, stops } = c;
    const start = async (name: string, command: string, args: (port: number) => string[], env: NodeJS.ProcessEnv = process.env) => {
      const port = await freePort();
      const p = new ManagedProcess(name, command, args(port), join(dir, `${name.replace(/\W+/g, '-')}.log`), env);
      stops.push(() => p.stop());
      return { name, port, pid: p.pid as number | null };
    };
    const cfg = (workers: number) => (port: number) => [cfgserverEntry(), 'proxy', '--cluster', 'bench', '--listen', `127.0.0.1:${port}`, '--etcd', etcd.endpoint, '--log-level', 'warn', '--workers', String(workers)];
    const forwarder = (workers: number) => (port: number) => ['--import', 'tsx', join(packageRoot(), 'bench', 'forwarder.ts'), '--listen', String(port), '--backend', shards[0]!.address, '--workers', String(workers)];

    const twem = await startTwemproxy(c);

    const targets = [
      { name: 'redis (direct, one shard)', port: shards[0]!.port, pid: null as number | null },
      { name: 'twemproxy -v 3', port: twem.port, pid: twem.pid as number | null },
      await start('cfgserver --workers 1', process.execPath, cfg(1)),
      await start('cfgserver --workers 2', process.execPath, cfg(2)),
      await start('cfgserver --workers 2 (rr)', process.execPath, cfg(2), { ...process.env, NODE_CLUSTER_SCHED_POLICY: 'rr' }),
      await start('forwarder, 1 process', process.execPath, forwarder(1)),
      await start('forwarder, 2 workers', process.execPath, forwarder(2)),
    ];
    for (const t of targets) await whenServing(t.name, t.port);
    // Every worker must be up before a run, or the CPU sums would miss one.
    await new Promise((r) => setTimeout(r, 2000));

    const load = loadavg()[0]!;
    const results = new Map<string, Result[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const pipeline of [1, 16]) {
        for (const test of ['set', 'get'] as const) {
          for (const t of targets) {
            const r = await benchmark(t.port, test, pipeline, t.pid);
            const key = `${t.name}|${test}|${pipeline}`;
            results.set(key, [...(results.get(key) ?? []), r]);
            process.stderr.write(`round ${round} ${test.toUpperCase()} -P ${pipeline} ${t.name}: ${Math.round(r.rps)} ops/s, p99 ${r.p99} ms, ${r.cpuUsPerOp?.toFixed(2) ?? '-'} µs/op\n`);
          }
        }
      }
    }

    const { stdout: redisVersion } = await run('redis-server', ['--version']);
    console.log(`\nbench/proxy-workers: redis-benchmark -c ${CLIENTS} -n ${REQUESTS} -r 100000, median of ${ROUNDS} interleaved rounds`);
    console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}, ${redisVersion.trim().split(' ').slice(0, 3).join(' ')}, nutcracker 0.5.0; 3 shards on loopback; load average at start ${load.toFixed(2)}\n`);
    console.log('test  -P  target                        ops/s     p99 ms  CPU µs/op (all processes)  CPU split supervisor/workers');
    for (const pipeline of [1, 16]) {
      for (const test of ['set', 'get'] as const) {
        for (const t of targets) {
          const rs = results.get(`${t.name}|${test}|${pipeline}`)!;
          const cpu = rs[0]!.cpuUsPerOp === null ? '-' : median(rs.map((r) => r.cpuUsPerOp!)).toFixed(2);
          const split = rs[0]!.shares.length > 1 ? rs[rs.length - 1]!.shares.map((s) => `${Math.round(s * 100)}%`).join(' / ') : '';
          console.log(`${test.toUpperCase().padEnd(5)} ${String(pipeline).padStart(2)}  ${t.name.padEnd(28)} ${String(Math.round(median(rs.map((r) => r.rps)))).padStart(8)}  ${median(rs.map((r) => r.p99)).toFixed(3).padStart(7)}  ${cpu.padStart(8)}                   ${split}`);
        }
        const rps = (name: string) => median(results.get(`${name}|${test}|${pipeline}`)!.map((r) => r.rps));
        console.log(
          `${''.padEnd(9)}2 workers / 1: cfgserver ${(rps('cfgserver --workers 2') / rps('cfgserver --workers 1')).toFixed(2)}x, forwarder ${(rps('forwarder, 2 workers') / rps('forwarder, 1 process')).toFixed(2)}x;` +
            ` cfgserver / twemproxy: 1 worker ${(rps('cfgserver --workers 1') / rps('twemproxy -v 3')).toFixed(2)}x, 2 workers ${(rps('cfgserver --workers 2') / rps('twemproxy -v 3')).toFixed(2)}x\n`,
        );
      }
    }
  });
}

await main();
