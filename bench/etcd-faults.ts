/**
 * etcd member faults against a running cfgserver: a 3-member etcd on loopback, 3 controller
 * processes (lease TTL 3 s, the default), one cluster of one shard with a live master and slave.
 *
 *   node --import tsx bench/etcd-faults.ts [--kills N] [--stops N] [--stop-seconds S] [--ttl S] [--keep]
 *
 * Faults, one after the other: N times kill -9 of the etcd Raft leader (then it is restarted on
 * its data directory), N times SIGSTOP of one member (in turn) for S seconds, then SIGCONT.
 * Counted for each fault, from its start until TTL + 2 s after it ended: cfgserver leader changes
 * (distinct create revisions of the election key, polled every 100 ms), "lease lost" lines in the
 * controllers' logs, and failovers (failover tasks and history entries of the cluster) — a master
 * that never went down must see none. Progress to stderr, the table to stdout.
 *
 * Run `npm run build` first: controller replicas run the compiled code in dist/.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argNumber } from './common.js';
import { spawnController, startEtcdCluster, startRedis, waitFor, type EtcdCluster, type EtcdMember, type ManagedProcess } from '../src/playground/processes.js';
import { AdminService } from '../src/service/admin-service.js';
import { createEtcd } from '../src/store/etcd.js';
import { Keys } from '../src/store/keys.js';

const CLUSTER = 'faults';
const PREFIX = '/bench-faults';
const TTL = argNumber('ttl', 3);

const kills = argNumber('kills', 10);
const stops = argNumber('stops', 5);
const stopSeconds = argNumber('stop-seconds', 10);
const keep = process.argv.includes('--keep');
const say = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface FaultResult {
  fault: string;
  member: string;
  leaderChanges: number;
  leaseLost: number;
  /** Of those, the ones etcd answered "expired" to (it revoked the lease), not our own deadline. */
  revokedByEtcd: number;
  /** Fault start → a cfgserver leader key held again, when it went missing. */
  leaderGapMs: number | null;
  failovers: number;
}

/** Polls the election key: every distinct create revision is one leadership term. */
class LeaderTracker {
  readonly terms: { rev: string; holder: string; at: number }[] = [];
  private missingSince: number | null = null;
  lastGapMs: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly keys: Keys, private readonly etcd: ReturnType<typeof createEtcd>) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), 100);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const res = await this.etcd.get(this.keys.leader()).exec();
      const kv = res.kvs[0];
      const now = Date.now();
      if (!kv) {
        this.missingSince ??= now;
        return;
      }
      if (this.missingSince !== null) {
        this.lastGapMs = now - this.missingSince;
        this.missingSince = null;
      }
      if (this.terms.at(-1)?.rev !== kv.create_revision) this.terms.push({ rev: kv.create_revision, holder: kv.value.toString(), at: now });
    } catch {
      // etcd busy electing: the next poll tells
    } finally {
      this.busy = false;
    }
  }
}

/** "lease lost" lines in the controllers' logs; `revoked`: those where etcd itself said the lease was gone. */
function leaseLostLines(controllers: ManagedProcess[], revoked = false): number {
  const pattern = revoked ? /"lease lost","reason":"etcd says the lease expired"/g : /"lease lost"/g;
  return controllers.reduce((n, c) => n + (readFileSync(c.logFile, 'utf8').match(pattern)?.length ?? 0), 0);
}

async function failoverCount(admin: AdminService): Promise<number> {
  const [tasks, history] = await Promise.all([admin.listTasks(CLUSTER), admin.listHistory(CLUSTER, 1000)]);
  return tasks.tasks.filter((t) => t.kind === 'failover').length + history.entries.filter((e) => e.action.startsWith('failover')).length;
}

async function healthy(cluster: EtcdCluster): Promise<void> {
  await waitFor('every etcd member to be back with a leader', async () => {
    const leader = await cluster.leader();
    if (!leader) return false;
    const answers = await Promise.all(cluster.members.map((m) => fetch(`${m.endpoint}/health`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)));
    return answers.every(Boolean);
  }, 30_000, 200);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cfgserver-bench-faults-'));
  const cleanup: (() => Promise<void> | void)[] = [];
  const results: FaultResult[] = [];
  const onSignal = () => void finish(130);
  process.once('SIGINT', onSignal);
  async function finish(code: number): Promise<void> {
    for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
    if (keep) say(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  }
  try {
    say(`etcd: 3 members; controllers: 3, lease TTL ${TTL} s; faults: ${kills} kills, ${stops} stops of ${stopSeconds} s`);
    const cluster = await startEtcdCluster(dir, 3);
    cleanup.push(() => cluster.stop());
    const master = await startRedis(dir);
    cleanup.push(() => master.stop());
    const slave = await startRedis(dir);
    cleanup.push(() => slave.stop());
    const client = createEtcd({ endpoints: cluster.endpoints });
    cleanup.push(() => client.close());
    const keys = new Keys(PREFIX);
    const admin = new AdminService(client, keys);
    await admin.createCluster({
      name: CLUSTER,
      // Tight detection, so that an etcd fault that made a controller misjudge Redis would show.
      file: { probe: { intervalMs: 200, timeoutMs: 200, downAfterMs: 1000 }, shards: [{ master: master.address, slaves: [slave.address] }] },
    });
    const controllers = ['c1', 'c2', 'c3'].map((id) => {
      const p = spawnController({ id, etcd: cluster.endpoints, prefix: PREFIX, leaseTtlSeconds: TTL, logFile: join(dir, `controller-${id}.log`) });
      cleanup.push(() => p.stop());
      return p;
    });
    const tracker = new LeaderTracker(keys, client);
    tracker.start();
    cleanup.push(() => tracker.stop());
    await waitFor('a cfgserver leader', async () => tracker.terms.length > 0, 30_000, 100);
    await sleep(2000);

    const plan: { kind: 'kill -9 etcd leader' | 'SIGSTOP member'; n: number }[] = [
      ...Array.from({ length: kills }, (_, n) => ({ kind: 'kill -9 etcd leader' as const, n })),
      ...Array.from({ length: stops }, (_, n) => ({ kind: 'SIGSTOP member' as const, n })),
    ];
    for (const step of plan) {
      const termsBefore = tracker.terms.length;
      const lostBefore = leaseLostLines(controllers);
      const revokedBefore = leaseLostLines(controllers, true);
      const failoversBefore = await failoverCount(admin);
      tracker.lastGapMs = null;
      let member: EtcdMember;
      let label: string | null = null;
      if (step.kind === 'kill -9 etcd leader') {
        member = (await waitFor('an etcd leader', () => cluster.leader(), 30_000, 100))!;
        await member.kill9();
        await waitFor('a new etcd leader', () => cluster.leader(), 30_000, 100);
        await sleep((TTL + 2) * 1000);
        await member.restart();
      } else {
        member = cluster.members[step.n % cluster.members.length]!;
        if ((await cluster.leader()) === member) label = `${member.name} (Raft leader)`;
        member.signal('SIGSTOP');
        await sleep(stopSeconds * 1000);
        member.signal('SIGCONT');
        await sleep((TTL + 2) * 1000);
      }
      await healthy(cluster);
      await waitFor('a cfgserver leader', async () => (await client.get(keys.leader()).exec()).kvs.length > 0, 30_000, 100);
      const result: FaultResult = {
        fault: `${step.kind} #${step.n + 1}`,
        member: label ?? member.name,
        leaderChanges: tracker.terms.length - termsBefore,
        leaseLost: leaseLostLines(controllers) - lostBefore,
        revokedByEtcd: leaseLostLines(controllers, true) - revokedBefore,
        leaderGapMs: tracker.lastGapMs,
        failovers: (await failoverCount(admin)) - failoversBefore,
      };
      results.push(result);
      say(`${result.fault} (${result.member}): leader changes ${result.leaderChanges}, lease lost ${result.leaseLost} (${result.revokedByEtcd} revoked by etcd), failovers ${result.failovers}${result.leaderGapMs !== null ? `, no leader for ${result.leaderGapMs} ms` : ''}`);
    }

    const rows = [['fault', 'member', 'cfgserver leader changes', 'lease lost (logs)', 'of which etcd revoked', 'no-leader gap ms', 'failovers']];
    for (const r of results) rows.push([r.fault, r.member, String(r.leaderChanges), String(r.leaseLost), String(r.revokedByEtcd), r.leaderGapMs === null ? '-' : String(r.leaderGapMs), String(r.failovers)]);
    const sum = (pick: (r: FaultResult) => number, kind: string) => results.filter((r) => r.fault.startsWith(kind)).reduce((n, r) => n + pick(r), 0);
    for (const kind of ['kill -9 etcd leader', 'SIGSTOP member']) {
      rows.push([`total ${kind}`, '', String(sum((r) => r.leaderChanges, kind)), String(sum((r) => r.leaseLost, kind)), String(sum((r) => r.revokedByEtcd, kind)), '', String(sum((r) => r.failovers, kind))]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) process.stdout.write(`| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |\n`);
    await finish(0);
  } catch (err) {
    say(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
    await finish(1);
  }
}

void main();
