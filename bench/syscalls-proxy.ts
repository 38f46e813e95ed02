/**
 * bench/syscalls-proxy — system calls per command of cfgserver's proxy, the minimal Node proxy and
 * twemproxy under the same redis-benchmark load (strace -c on each process): how many reads,
 * writes and epoll waits each needs per command, which is what the kernel time per command follows.
 *
 *   npm run build && node --import tsx bench/syscalls-proxy.ts [--pipeline 16] [--requests N] [--tests set,get]
 *
 * strace slows every system call, so throughput here means nothing: only the counts do.
 */
import { spawn } from 'node:child_process';
import { argNumber, argText, redisBenchmark, startComparedProxies, withCluster } from './common.js';

const REQUESTS = argNumber('requests', 100_000);
const PIPELINE = argNumber('pipeline', 16);

/** Runs `load` with strace counting the system calls of `pid` (all its threads); the counts by name. */
async function countSyscalls(pid: number, load: () => Promise<unknown>): Promise<Map<string, number>> {
  const strace = spawn('strace', ['-c', '-f', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let report = '';
  strace.stderr.on('data', (d: Buffer) => (report += d.toString()));
  await new Promise((r) => setTimeout(r, 500));
  await load();
  strace.kill('SIGINT');
  await new Promise((r) => strace.on('close', r));
  const counts = new Map<string, number>();
  for (const line of report.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (cols.length >= 5 && /^\d/.test(cols[0]!) && cols.at(-1) !== 'total') counts.set(cols.at(-1)!, Number(cols[3]));
  }
  return counts;
}

await withCluster('bench', 3, async (c) => {
  const targets = await startComparedProxies(c, 'bench');
  for (const test of argText('tests', 'set,get').split(',') as ('set' | 'get')[]) {
    console.log(`\n${test.toUpperCase()} -P ${PIPELINE}, ${REQUESTS} commands: system calls per command`);
    for (const t of targets) {
      const counts = await countSyscalls(t.pid, () => redisBenchmark(t.port, test, PIPELINE, 50, REQUESTS));
      const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 6);
      console.log(`  ${t.name.padEnd(20)} ${top.map(([name, n]) => `${name} ${(n / REQUESTS).toFixed(3)}`).join(', ')}`);
    }
  }
});
