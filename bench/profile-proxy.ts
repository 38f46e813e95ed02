/**
 * bench/profile-proxy — where one cfgserver proxy process spends its time under redis-benchmark
 * load: a V8 CPU profile (`node --cpu-prof`), summed by function (self time), top 30 printed.
 *
 *   npm run build && node --import tsx bench/profile-proxy.ts [--tests get,set] [--pipeline 16] [--requests N]
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, cfgserverEntry, freePort } from '../src/playground/processes.js';
import { argNumber, argText, redisBenchmark, whenServing, withCluster } from './common.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Self time per function, in percent of all samples. */
function summarize(file: string): [string, number][] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber}`;
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(name, (self.get(name) ?? 0) + dt);
    total += dt;
  });
  return [...self].map(([k, t]): [string, number] => [k, (100 * t) / total]).sort((a, b) => b[1] - a[1]);
}

await withCluster('bench', 3, async ({ dir, etcd, stops }) => {
  const profiles = mkdtempSync(join(tmpdir(), 'cfgserver-profile-'));
  const port = await freePort();
  const proxy = new ManagedProcess('proxy', process.execPath, ['--cpu-prof', '--cpu-prof-dir', profiles, cfgserverEntry(), 'proxy', '--cluster', 'bench', '--listen', `127.0.0.1:${port}`, '--etcd', etcd.endpoint, '--log-level', 'warn'], join(dir, 'proxy.log'));
  stops.push(() => proxy.stop());
  await whenServing('proxy', port);
  const pipeline = argNumber('pipeline', 16);
  for (const test of argText('tests', 'get,set').split(',') as ('get' | 'set')[]) {
    const { rps, p99 } = await redisBenchmark(port, test, pipeline, 50, argNumber('requests', 400_000));
    console.log(`${test.toUpperCase()} -P ${pipeline}: ${Math.round(rps)} ops/s, p99 ${p99} ms`);
  }
  await proxy.stop(); // SIGTERM: the profile is written on exit
  const file = readdirSync(profiles).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no profile was written');
  console.log(`\nself time by function (${join(profiles, file)}):`);
  for (const [name, pct] of summarize(join(profiles, file)).slice(0, 30)) console.log(`${pct.toFixed(1).padStart(5)} %  ${name}`);
});
