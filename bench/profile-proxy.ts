/**
 * bench/profile-proxy — where one cfgserver proxy process spends its time under redis-benchmark
 * load: a V8 CPU profile (`node --cpu-prof`), summed by function (self time), top 30 printed.
 *
 *   npm run build && node --import tsx bench/profile-proxy.ts [--tests get,set] [--pipeline 16] [--requests N] [--minimal]
 *
 * `--minimal` profiles the platform control bench/minimal-proxy.ts instead, for comparison.
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SLOTS } from '../src/model/schemas.js';
import { ManagedProcess, cfgserverEntry, freePort, packageRoot } from '../src/playground/processes.js';
import { argNumber, argText, redisBenchmark, whenServing, withCluster } from './common.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/**
 * Self time per function over the samples taken from `fromMicros` on (the load, not the start-up),
 * in percent of those samples and in microseconds per command. V8 stamps samples with the same
 * monotonic clock as process.hrtime, in microseconds.
 */
function summarize(file: string, fromMicros: number, commands: number): [string, number, number][] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    at += dt;
    if (at < fromMicros) return;
    const f = byId.get(id)!.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber}`;
    self.set(name, (self.get(name) ?? 0) + dt);
    total += dt;
  });
  return [...self].map(([k, t]): [string, number, number] => [k, (100 * t) / total, t / commands]).sort((a, b) => b[1] - a[1]);
}

await withCluster('bench', 3, async ({ dir, etcd, shards, stops }) => {
  const profiles = mkdtempSync(join(tmpdir(), 'cfgserver-profile-'));
  const port = await freePort();
  const program = process.argv.includes('--minimal')
    ? ['--import', 'tsx', join(packageRoot(), 'bench', 'minimal-proxy.ts'), '--listen', String(port), '--shards', shards.map((s) => s.address).join(','), '--slots', String(DEFAULT_SLOTS)]
    : [cfgserverEntry(), 'proxy', '--cluster', 'bench', '--listen', `127.0.0.1:${port}`, '--etcd', etcd.endpoint, '--log-level', 'warn'];
  const proxy = new ManagedProcess('proxy', process.execPath, ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', profiles, ...program], join(dir, 'proxy.log'));
  stops.push(() => proxy.stop());
  await whenServing('proxy', port);
  const pipeline = argNumber('pipeline', 16);
  const loadStart = Number(process.hrtime.bigint() / 1000n);
  let commands = 0;
  for (const test of argText('tests', 'get,set').split(',') as ('get' | 'set')[]) {
    const { rps, p99 } = await redisBenchmark(port, test, pipeline, 50, argNumber('requests', 400_000));
    commands += argNumber('requests', 400_000);
    console.log(`${test.toUpperCase()} -P ${pipeline}: ${Math.round(rps)} ops/s, p99 ${p99} ms`);
  }
  await proxy.stop(); // SIGTERM: the profile is written on exit
  const file = readdirSync(profiles).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no profile was written');
  console.log(`\nself time by function during the load (${join(profiles, file)}):`);
  for (const [name, pct, us] of summarize(join(profiles, file), loadStart, commands).slice(0, argNumber('top', 30))) console.log(`${pct.toFixed(1).padStart(5)} %  ${us.toFixed(3).padStart(6)} µs/op  ${name}`);
});
