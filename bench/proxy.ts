/**
 * bench/proxy — throughput and p99 of one cfgserver proxy process against twemproxy (nutcracker)
 * over the same three shards, and against Redis directly, measured in one interleaved run.
 *
 *   node --import tsx bench/proxy.ts [--requests N] [--rounds R] [--clients C]
 *
 * Needs etcd, redis-server, redis-benchmark and nutcracker (apt-get install etcd-server
 * redis-server redis-tools nutcracker) and a build (npm run build). Prints ops/s, p99 and CPU
 * microseconds per command of the proxy process, and the ratios cfgserver / twemproxy.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { ManagedProcess, cfgserverEntry, freePort, startEtcd, startRedis, waitFor } from '../src/playground/processes.js';

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
  /** CPU microseconds per command of the proxy process: user space, kernel. */
  userUsPerOp: number | null;
  sysUsPerOp: number | null;
}

/** CPU time of a process so far, [user, system], in microseconds, from /proc. */
function cpuMicros(pid: number): [number, number] {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime, stime in clock ticks; USER_HZ is 100 on Linux
  return [(Number(fields[11]) * 1e6) / 100, (Number(fields[12]) * 1e6) / 100];
}

async function benchmark(port: number, test: 'set' | 'get', pipeline: number, pid: number | null): Promise<Result> {
  const before = pid ? cpuMicros(pid) : [0, 0];
  const { stdout } = await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(REQUESTS), '-r', '100000', '-t', test, '-P', String(pipeline), '--csv'], { maxBuffer: 1 << 20 });
  const after = pid ? cpuMicros(pid) : [0, 0];
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const row = stdout.trim().split('\n').find((l) => l.startsWith(`"${test.toUpperCase()}"`));
  if (!row) throw new Error(`unexpected redis-benchmark output: ${stdout}`);
  const cols = row.split(',').map((c) => Number(c.replace(/"/g, '')));
  return {
    rps: cols[1]!,
    p99: cols[6]!,
    userUsPerOp: pid ? (after[0]! - before[0]!) / REQUESTS : null,
    sysUsPerOp: pid ? (after[1]! - before[1]!) / REQUESTS : null,
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cfgserver-bench-proxy-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    const etcd = await startEtcd(dir);
    stops.push(etcd.stop);
    const shards = [];
    for (let i = 0; i < 3; i++) {
      const r = await startRedis(dir);
      stops.push(r.stop);
      shards.push(r);
    }
    const client = createEtcd({ endpoints: etcd.endpoint });
    await new AdminService(client, new Keys()).createCluster({ name: 'bench', file: { shards: shards.map((s) => ({ master: s.address })) } });
    client.close();

    const cfgPort = await freePort();
    const cfgProxy = new ManagedProcess('cfgserver proxy', process.execPath, [cfgserverEntry(), 'proxy', '--cluster', 'bench', '--listen', `127.0.0.1:${cfgPort}`, '--etcd', etcd.endpoint, '--log-level', 'warn'], join(dir, 'proxy.log'));
    stops.push(() => cfgProxy.stop());

    const twemPort = await freePort();
    const twemStats = await freePort();
    const conf = join(dir, 'nutcracker.yml');
    writeFileSync(
      conf,
      `bench:\n  listen: 127.0.0.1:${twemPort}\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  preconnect: true\n  auto_eject_hosts: false\n  servers:\n${shards.map((s) => `   - ${s.address}:1`).join('\n')}\n`,
    );
    // -v 3: nutcracker's fastest log level (FIELD-NOTES: the default costs a getpeername per dozen requests).
    const twem = new ManagedProcess('nutcracker', 'nutcracker', ['-c', conf, '-v', '3', '-a', '127.0.0.1', '-s', String(twemStats), '-o', join(dir, 'nutcracker.log')], join(dir, 'nutcracker.out'));
    stops.push(() => twem.stop());

    for (const port of [cfgPort, twemPort]) {
      await waitFor(`proxy on ${port}`, async () => (await run('redis-cli', ['-p', String(port), 'set', 'warm', 'up'])).stdout.trim() === 'OK', 15_000);
    }

    const targets = [
      { name: 'redis (direct, one shard)', port: shards[0]!.port, pid: null as number | null },
      { name: 'twemproxy -v 3', port: twemPort, pid: twem.pid },
      { name: 'cfgserver proxy', port: cfgPort, pid: cfgProxy.pid },
    ];
    const results = new Map<string, Result[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const pipeline of [1, 16]) {
        for (const test of ['set', 'get'] as const) {
          for (const t of targets) {
            const r = await benchmark(t.port, test, pipeline, t.pid);
            const key = `${t.name}|${test}|${pipeline}`;
            results.set(key, [...(results.get(key) ?? []), r]);
            process.stderr.write(`round ${round} ${test.toUpperCase()} -P ${pipeline} ${t.name}: ${Math.round(r.rps)} ops/s, p99 ${r.p99} ms\n`);
          }
        }
      }
    }

    const { stdout: redisVersion } = await run('redis-server', ['--version']);
    console.log(`\nbench/proxy: redis-benchmark -c ${CLIENTS} -n ${REQUESTS} -r 100000, median of ${ROUNDS} interleaved rounds`);
    console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}, ${redisVersion.trim().split(' ').slice(0, 3).join(' ')}, nutcracker 0.5.0; 3 shards on loopback\n`);
    console.log('test  -P  target                       ops/s     p99 ms  proxy CPU µs/op (user + kernel)');
    for (const pipeline of [1, 16]) {
      for (const test of ['set', 'get'] as const) {
        for (const t of targets) {
          const rs = results.get(`${t.name}|${test}|${pipeline}`)!;
          const cpu = rs[0]!.userUsPerOp === null ? '-' : `${median(rs.map((r) => r.userUsPerOp! + r.sysUsPerOp!)).toFixed(2)} (${median(rs.map((r) => r.userUsPerOp!)).toFixed(2)} + ${median(rs.map((r) => r.sysUsPerOp!)).toFixed(2)})`;
          console.log(`${test.toUpperCase().padEnd(5)} ${String(pipeline).padStart(2)}  ${t.name.padEnd(27)} ${String(Math.round(median(rs.map((r) => r.rps)))).padStart(8)}  ${median(rs.map((r) => r.p99)).toFixed(3).padStart(7)}  ${cpu}`);
        }
        const ours = results.get(`cfgserver proxy|${test}|${pipeline}`)!;
        const theirs = results.get(`twemproxy -v 3|${test}|${pipeline}`)!;
        const rpsRatio = median(ours.map((r) => r.rps)) / median(theirs.map((r) => r.rps));
        const p99Ratio = median(ours.map((r) => r.p99)) / median(theirs.map((r) => r.p99));
        const cpu = (rs: Result[]) => median(rs.map((r) => r.userUsPerOp! + r.sysUsPerOp!));
        const cpuRatio = cpu(ours) / cpu(theirs);
        console.log(`${''.padEnd(9)}cfgserver / twemproxy: throughput ${rpsRatio.toFixed(2)}x, p99 ${p99Ratio.toFixed(2)}x, CPU per op ${cpuRatio.toFixed(2)}x\n`);
      }
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
