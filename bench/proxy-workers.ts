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
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { ManagedProcess, cfgserverEntry, freePort, packageRoot, startEtcd, startRedis, waitFor, type RedisServer } from '../src/playground/processes.js';

const run = promisify(execFile);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const REQUESTS = arg('requests', 200_000);
const ROUNDS = arg('rounds', 3);
const CLIENTS = arg('clients', 50);

interface Result {
  rps: number;
  p99: number;
  /** CPU µs per command summed over the target's processes, and each process's share of it. */
  cpuUsPerOp: number | null;
  shares: number[];
}

/** CPU time (user + kernel) of a process so far, in microseconds; 0 once it is gone. */
function cpuMicros(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime, stime in clock ticks; USER_HZ is 100 on Linux
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
  } catch {
    return 0;
  }
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
  const before = pids.map(cpuMicros);
  const { stdout } = await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(REQUESTS), '-r', '100000', '-t', test, '-P', String(pipeline), '--csv'], { maxBuffer: 1 << 20 });
  const used = pids.map((p, i) => cpuMicros(p) - before[i]!);
  const row = stdout.trim().split('\n').find((l) => l.startsWith(`"${test.toUpperCase()}"`));
  if (!row) throw new Error(`unexpected redis-benchmark output: ${stdout}`);
  const cols = row.split(',').map((c) => Number(c.replace(/"/g, '')));
  const total = used.reduce((a, b) => a + b, 0);
  return { rps: cols[1]!, p99: cols[6]!, cpuUsPerOp: pid ? total / REQUESTS : null, shares: total > 0 ? used.map((u) => u / total) : [] };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cfgserver-bench-workers-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    const etcd = await startEtcd(dir);
    stops.push(etcd.stop);
    const shards: RedisServer[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await startRedis(dir);
      stops.push(r.stop);
      shards.push(r);
    }
    const client = createEtcd({ endpoints: etcd.endpoint });
    await new AdminService(client, new Keys()).createCluster({ name: 'bench', file: { shards: shards.map((s) => ({ master: s.address })) } });
    client.close();

    const start = async (name: string, command: string, args: (port: number) => string[], env: NodeJS.ProcessEnv = process.env) => {
      const port = await freePort();
      const p = new ManagedProcess(name, command, args(port), join(dir, `${name.replace(/\W+/g, '-')}.log`), env);
      stops.push(() => p.stop());
      return { name, port, pid: p.pid as number | null };
    };
    const cfg = (workers: number) => (port: number) => [cfgserverEntry(), 'proxy', '--cluster', 'bench', '--listen', `127.0.0.1:${port}`, '--etcd', etcd.endpoint, '--log-level', 'warn', '--workers', String(workers)];
    const forwarder = (workers: number) => (port: number) => ['--import', 'tsx', join(packageRoot(), 'bench', 'forwarder.ts'), '--listen', String(port), '--backend', shards[0]!.address, '--workers', String(workers)];

    const twemPort = await freePort();
    const conf = join(dir, 'nutcracker.yml');
    writeFileSync(
      conf,
      `bench:\n  listen: 127.0.0.1:${twemPort}\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  preconnect: true\n  auto_eject_hosts: false\n  servers:\n${shards.map((s) => `   - ${s.address}:1`).join('\n')}\n`,
    );
    const twem = new ManagedProcess('nutcracker', 'nutcracker', ['-c', conf, '-v', '3', '-a', '127.0.0.1', '-s', String(await freePort()), '-o', join(dir, 'nutcracker.log')], join(dir, 'nutcracker.out'));
    stops.push(() => twem.stop());

    const targets = [
      { name: 'redis (direct, one shard)', port: shards[0]!.port, pid: null as number | null },
      { name: 'twemproxy -v 3', port: twemPort, pid: twem.pid as number | null },
      await start('cfgserver --workers 1', process.execPath, cfg(1)),
      await start('cfgserver --workers 2', process.execPath, cfg(2)),
      await start('cfgserver --workers 2 (rr)', process.execPath, cfg(2), { ...process.env, NODE_CLUSTER_SCHED_POLICY: 'rr' }),
      await start('forwarder, 1 process', process.execPath, forwarder(1)),
      await start('forwarder, 2 workers', process.execPath, forwarder(2)),
    ];
    for (const t of targets) {
      await waitFor(`${t.name} on ${t.port}`, async () => (await run('redis-cli', ['-p', String(t.port), 'set', 'warm', 'up'])).stdout.trim() === 'OK', 20_000);
    }
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
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
