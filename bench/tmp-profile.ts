import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';
import { ManagedProcess, cfgserverEntry, freePort, startEtcd, startRedis, waitFor } from '../src/playground/processes.js';
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'prof-'));
const etcd = await startEtcd(dir);
const shards = [];
for (let i = 0; i < 3; i++) shards.push(await startRedis(dir));
const client = createEtcd({ endpoints: etcd.endpoint });
await new AdminService(client, new Keys()).createCluster({ name: 'bench', file: { shards: shards.map((s) => ({ master: s.address })) } });
client.close();
const port = await freePort();
const proxy = new ManagedProcess('proxy', process.execPath, ['--cpu-prof', '--cpu-prof-dir', '/tmp/prof', cfgserverEntry(), 'proxy', '--cluster', 'bench', '--listen', `127.0.0.1:${port}`, '--etcd', etcd.endpoint, '--log-level', 'warn'], join(dir, 'p.log'));
await waitFor('proxy', async () => (await run('redis-cli', ['-p', String(port), 'set', 'w', 'u'])).stdout.trim() === 'OK', 15000);
for (const t of (process.argv[2] ?? 'get').split(',')) {
  const { stdout } = await run('redis-benchmark', ['-p', String(port), '-c', '50', '-n', '400000', '-r', '100000', '-t', t, '-P', process.argv[3] ?? '16', '--csv']);
  console.log(stdout);
}
await proxy.stop();
for (const s of shards) await s.stop();
await etcd.stop();
