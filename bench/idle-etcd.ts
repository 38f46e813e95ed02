/**
 * etcd writes of an idle deployment: one etcd member, 3 controller processes (default lease TTL
 * and probe settings), one cluster of 2 shards and 5 instances (a master with 2 slaves, a master
 * with 1), nothing happening. Once the revision has been still for 3 s (at most 60 s of settling),
 * counts the etcd revisions over --seconds and lists the keys written, to stdout.
 *
 *   npm run build && node --import tsx bench/idle-etcd.ts [--seconds 20] [--replicas 3] [--keep]
 *
 * --replicas 0 leaves the replica count unset (the default quorum).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argNumber } from './common.js';
import { spawnController, startEtcd, startRedis, waitFor, type ManagedProcess, type RedisServer } from '../src/playground/processes.js';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';

const PREFIX = '/bench-idle';
const seconds = argNumber('seconds', 20);
const replicas = argNumber('replicas', 3);
const keep = process.argv.includes('--keep');
const say = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'cfgserver-idle-'));
const etcd = await startEtcd(dir);
const client = createEtcd({ endpoints: etcd.endpoint });
const redis: RedisServer[] = [];
const controllers: ManagedProcess[] = [];
const revision = async () => Number((await client.get('/none').exec()).header.revision);
try {
  for (let i = 0; i < 5; i++) redis.push(await startRedis(dir));
  const [m0, s0a, s0b, m1, s1] = redis.map((r) => r.address) as [string, string, string, string, string];
  const admin = new AdminService(client, new Keys(PREFIX));
  await admin.createCluster({ name: 'idle', file: { shards: [{ master: m0, slaves: [s0a, s0b] }, { master: m1, slaves: [s1] }] } });
  if (replicas > 0) await admin.setReplicas(replicas);
  for (const id of ['c1', 'c2', 'c3']) controllers.push(spawnController({ id, etcd: etcd.endpoint, prefix: PREFIX, logFile: join(dir, `controller-${id}.log`) }));
  say('waiting for the 3 replicas to register and publish a view of every instance');
  await waitFor('every replica to publish its views', async () => {
    const views = await admin.health.read('idle');
    return views.size === 3 && [...views.values()].every((v) => v.size === 5);
  }, 60_000);
  say('settling: waiting until the revision has been still for 3 s');
  let last = await revision();
  await waitFor('the revision to be still for 3 s', async () => {
    await sleep(3000);
    const now = await revision();
    const still = now === last;
    last = now;
    return still;
  }, 60_000, 0);

  const written = new Map<string, number>();
  const watch = await client.watch().prefix(PREFIX).create();
  const count = (what: string) => (kv: { key: Buffer }) => {
    const key = `${what} ${kv.key.toString().slice(PREFIX.length)}`;
    written.set(key, (written.get(key) ?? 0) + 1);
  };
  watch.on('put', count('put'));
  watch.on('delete', count('delete'));
  const before = await revision();
  say(`measuring for ${seconds} s from revision ${before}`);
  await sleep(seconds * 1000);
  const after = await revision();
  await watch.cancel();
  const live = (await admin.listControllers()).controllers.length;
  process.stdout.write(`${after - before} etcd revisions in ${seconds} s (3 controllers, ${live} registered at the end; 2 shards, 5 instances; replicas ${replicas > 0 ? replicas : 'unset'})\n`);
  for (const [key, n] of [...written].sort()) process.stdout.write(`  ${n}× ${key}\n`);
} finally {
  for (const c of controllers) await c.kill9();
  for (const r of redis) await r.process.kill9();
  client.close();
  await etcd.stop();
  if (!keep) rmSync(dir, { recursive: true, force: true });
  else say(`kept ${dir}`);
}
