/**
 * Test harness: real etcd and redis-server processes on free loopback ports, always stopped,
 * with a fresh key prefix per test so that tests never see each other's keys.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { createEtcd } from '../../src/store/etcd.js';
import { Keys } from '../../src/store/keys.js';
import { silentLogger } from '../../src/log.js';
import { AdminService } from '../../src/service/admin-service.js';
import { etcdUsers } from './etcd-partition.js';
import {
  packageRoot,
  spawnController,
  startEtcd,
  startEtcdCluster,
  startRedis,
  type EtcdCluster,
  type EtcdServer,
  type ManagedProcess,
  type RedisServer,
} from '../../src/playground/processes.js';

export const log = silentLogger();

/** Controllers under test hold 2 s leases: etcd's minimum, so that take-over tests run fast. */
export const TEST_LEASE_TTL = 2;

export function randomPrefix(): string {
  return `/test-${randomBytes(4).toString('hex')}`;
}

/** Faults the harness injects into a controller process (test/helpers/faults/preload.mjs). */
export interface ControllerFaults {
  /** Addresses this replica alone cannot connect to (a partial network cut). */
  unreachable?: string[];
  /** The leader sleeps this long after recording this task step (to kill or stop it in between). */
  pauseAfter?: { step: string; ms: number };
  /** The leader sleeps this long after recording this step of a shard split. */
  splitPauseAfter?: { step: string; ms: number };
}

const FAULT_PRELOAD = pathToFileURL(join(packageRoot(), 'test', 'helpers', 'faults', 'preload.mjs')).href;

export interface TestWorld {
  dir: string;
  /** The etcd every client uses: one member, or all members of `etcdCluster` (comma-separated endpoints). */
  etcd: Pick<EtcdServer, 'endpoint' | 'stop'>;
  /** Set with `useWorld({ etcdMembers: 3 })`: the members, to kill, stop or cut one. */
  etcdCluster?: EtcdCluster;
  client: Etcd3;
  /** Starts a redis-server (on `port`, e.g. to restart one) that is stopped after the test file. */
  redis(extraArgs?: string[], port?: number): Promise<RedisServer>;
  /** Starts a controller process that is stopped after the test file. */
  /** Starts a controller process (with injected faults, if any) that is stopped after the test file. */
  controller(id: string, prefix: string, extraArgs?: string[], faults?: ControllerFaults): ManagedProcess;
  admin(prefix: string): AdminService;
}

/**
 * One etcd per test file (started in beforeAll), redis servers and controllers on demand; all
 * stopped in afterAll, whatever happened.
 */
export function useWorld(options: { etcdMembers?: 1 | 3; /** Each member as its own user, for useEtcdPartitions. */ etcdAsUsers?: boolean } = {}): TestWorld {
  const cleanups: (() => Promise<void> | void)[] = [];
  const world = {} as TestWorld;
  beforeAll(async () => {
    world.dir = mkdtempSync(join(tmpdir(), 'cfgserver-test-'));
    if (options.etcdMembers === 3) {
      world.etcdCluster = await startEtcdCluster(world.dir, 3, [], options.etcdAsUsers ? etcdUsers : {});
      world.etcd = { endpoint: world.etcdCluster.endpoints, stop: () => world.etcdCluster!.stop() };
    } else {
      world.etcd = await startEtcd(world.dir);
    }
    world.client = createEtcd({ endpoints: world.etcd.endpoint });
    world.redis = async (extraArgs = [], port) => {
      const r = await startRedis(world.dir, port, extraArgs);
      cleanups.push(() => r.process.kill9());
      return r;
    };
    world.controller = (id, prefix, extraArgs = [], faults = {}) => {
      const env: Record<string, string> = {};
      if (faults.unreachable) env['FAULT_UNREACHABLE'] = faults.unreachable.join(',');
      if (faults.pauseAfter) env['FAULT_PAUSE_AFTER'] = `${faults.pauseAfter.step}:${faults.pauseAfter.ms}`;
      if (faults.splitPauseAfter) env['FAULT_SPLIT_PAUSE_AFTER'] = `${faults.splitPauseAfter.step}:${faults.splitPauseAfter.ms}`;
      const p = spawnController({
        nodeArgs: Object.keys(env).length > 0 ? ['--import', FAULT_PRELOAD] : [],
        id,
        etcd: world.etcd.endpoint,
        prefix,
        leaseTtlSeconds: TEST_LEASE_TTL,
        logFile: join(world.dir, `controller-${id}.log`),
        extraArgs: ['--log-level', 'debug', ...extraArgs],
        env,
      });
      cleanups.push(() => p.kill9());
      return p;
    };
    world.admin = (prefix) => new AdminService(world.client, new Keys(prefix));
  });
  // A failed test prints the end of each controller's log: a flake on a loaded CI machine can
  // then be read from the CI output, after the test directory is gone.
  beforeEach((ctx) => ctx.onTestFailed(() => printControllerLogs(world.dir)));
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    world.client?.close();
    await world.etcd?.stop();
    // KEEP_TEST_DIR=1 keeps the logs of a failed run for reading (a debugging aid of the harness).
    if (world.dir && !process.env['KEEP_TEST_DIR']) rmSync(world.dir, { recursive: true, force: true });
  });
  return world;
}

/** The last lines of every controller log in `dir`, on stderr. */
function printControllerLogs(dir: string | undefined, lines = 30): void {
  if (!dir) return;
  for (const file of readdirSync(dir).filter((f) => f.startsWith('controller-') && f.endsWith('.log'))) {
    const tail = readFileSync(join(dir, file), 'utf8').trimEnd().split('\n').slice(-lines);
    process.stderr.write(`\n--- last ${tail.length} lines of ${file} ---\n${tail.map((l) => l.slice(0, 400)).join('\n')}\n`);
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A cfgctl that runs until stopped (`--watch`): its output so far, and a stop that kills it. */
export function cfgctlRunning(etcd: string, prefix: string, args: string[]): { output(): string; stop(): void } {
  const child = spawn(process.execPath, [join(packageRoot(), 'dist', 'cli', 'cfgctl.js'), '--etcd', etcd, '--prefix', prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000); // bounded, whatever the test does
  return {
    output: () => out,
    stop: () => {
      clearTimeout(timer);
      child.kill('SIGINT');
    },
  };
}

/** Runs the built cfgctl, as an operator would. */
export function cfgctl(etcd: string, prefix: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const entry = join(packageRoot(), 'dist', 'cli', 'cfgctl.js');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [entry, '--etcd', etcd, '--prefix', prefix, ...args],
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
