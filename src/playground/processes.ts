/**
 * Starting and stopping the real servers cfgserver works with — etcd, redis-server and controller
 * replicas — on loopback. The playground and the test harness both use this module.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A free TCP port on 127.0.0.1 (the OS picks it; a later bind may still race, rarely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `preferred` when it is free, else any free port. */
export async function portOrFree(preferred: number | undefined): Promise<number> {
  return preferred !== undefined && (await portIsFree(preferred)) ? preferred : freePort();
}

export async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A child process with its output in a log file, stopped politely then firmly. */
export class ManagedProcess {
  readonly child: ChildProcess;
  private exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    readonly logFile: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    mkdirSync(dirname(logFile), { recursive: true });
    const fd = openSync(logFile, 'a');
    this.child = spawn(command, args, { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? null : code);
        resolve(code);
      });
      this.child.once('error', () => resolve(null));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  running(): boolean {
    return this.exitCode === undefined;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves when the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running()) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** kill -9: no chance to clean up, as in a machine failure. */
  async kill9(): Promise<void> {
    if (!this.running()) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }
}

export interface EtcdServer {
  endpoint: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startEtcd(dir: string, clientPort?: number): Promise<EtcdServer> {
  const port = await portOrFree(clientPort);
  const peer = await freePort();
  const dataDir = join(dir, `etcd-${port}`);
  const url = `http://127.0.0.1:${port}`;
  const proc = new ManagedProcess('etcd', 'etcd', [
    '--name', 'n1',
    '--data-dir', dataDir,
    '--listen-client-urls', url,
    '--advertise-client-urls', url,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `n1=http://127.0.0.1:${peer}`,
    '--initial-cluster-state', 'new',
    '--logger=zap',
    '--log-outputs', join(dir, `etcd-${port}.log`),
  ], join(dir, `etcd-${port}.out`));
  await waitFor('etcd to become healthy', async () => {
    if (!proc.running()) throw new Error(`etcd exited; see ${proc.logFile}`);
    const res = await fetch(`${url}/health`);
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  }, 15_000);
  return { endpoint: url, process: proc, stop: () => proc.stop() };
}

export interface RedisServer {
  address: string;
  port: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startRedis(dir: string, port?: number, extraArgs: string[] = []): Promise<RedisServer> {
  const p = await portOrFree(port);
  const dataDir = join(dir, `redis-${p}`);
  mkdirSync(dataDir, { recursive: true });
  const proc = new ManagedProcess('redis', 'redis-server', [
    '--bind', '127.0.0.1',
    '--port', String(p),
    '--save', '',
    '--appendonly', 'no',
    '--dir', dataDir,
    '--repl-diskless-sync-delay', '0',
    // Without persistence, a replica still writes the RDB of each full sync to its dir unless it
    // loads it from the socket; a restart would then reload that stale copy (which cfgserver, not
    // able to prove it holds nothing the new master lacks, refuses to wipe). These instances are
    // meant to come back empty. `on-empty-db` is not enough: a demoted old master is not empty,
    // so its full sync went through dump.rdb (the chaos runner met that file on a restart).
    '--repl-diskless-load', 'swapdb',
    ...extraArgs,
  ], join(dir, `redis-${p}.log`));
  await waitFor(`redis-server on port ${p}`, async () => {
    if (!proc.running()) throw new Error(`redis-server exited; see ${proc.logFile}`);
    // An instance started with a password answers NOAUTH: it is up all the same.
    return /^(\+PONG|-NOAUTH)/.test(await redisPing(p));
  });
  return { address: `127.0.0.1:${p}`, port: p, process: proc, stop: () => proc.stop() };
}

function redisPing(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.setTimeout(1000, () => socket.destroy(new Error('timeout')));
    socket.once('data', (d) => {
      resolve(d.toString().trim());
      socket.end();
    });
    socket.once('error', reject);
  });
}

/** The root of this package (where package.json is), from wherever this module runs. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above this module');
    dir = up;
  }
  return dir;
}

/** The compiled cfgserver entry point: controller processes always run the built code. */
export function cfgserverEntry(): string {
  const entry = join(packageRoot(), 'dist', 'cli', 'cfgserver.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build first`);
  return entry;
}

export interface ControllerProcessOptions {
  id: string;
  etcd: string;
  prefix?: string;
  listen?: string;
  leaseTtlSeconds?: number;
  logFile: string;
  extraArgs?: string[];
  /** Extra environment. */
  env?: Record<string, string>;
  /** Node options before the entry point (a test harness's `--import` of fault injection). */
  nodeArgs?: string[];
}

export function spawnController(o: ControllerProcessOptions): ManagedProcess {
  const args = [...(o.nodeArgs ?? []), cfgserverEntry(), 'controller', '--id', o.id, '--etcd', o.etcd];
  if (o.prefix) args.push('--prefix', o.prefix);
  if (o.listen) args.push('--listen', o.listen);
  if (o.leaseTtlSeconds) args.push('--lease-ttl', String(o.leaseTtlSeconds));
  args.push(...(o.extraArgs ?? []));
  return new ManagedProcess(`controller ${o.id}`, process.execPath, args, o.logFile, { ...process.env, ...o.env });
}

export interface ProxyProcessOptions {
  id: string;
  cluster: string;
  /** HOST:PORT for clients. */
  listen: string;
  /** etcd endpoints, comma-separated: naming only some members cuts the proxy off with them. */
  etcd: string;
  prefix?: string;
  logFile: string;
  extraArgs?: string[];
}

/** A `cfgserver proxy` process running the built code. */
export function spawnProxy(o: ProxyProcessOptions): ManagedProcess {
  const args = [cfgserverEntry(), 'proxy', '--id', o.id, '--cluster', o.cluster, '--listen', o.listen, '--etcd', o.etcd];
  if (o.prefix) args.push('--prefix', o.prefix);
  args.push(...(o.extraArgs ?? []));
  return new ManagedProcess(`proxy ${o.id}`, process.execPath, args, o.logFile);
}

export interface EtcdMember {
  name: string;
  endpoint: string;
  peerUrl: string;
  process: ManagedProcess;
  readonly pid: number;
  /** SIGTERM, then SIGKILL. */
  stop(): Promise<void>;
  kill9(): Promise<void>;
  /** SIGSTOP / SIGCONT: a hung member, whose TCP connections stay open but never answer. */
  signal(sig: NodeJS.Signals): void;
  /** Starts the member again on its data directory (after kill9), once it answers. */
  restart(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every client endpoint, comma-separated, for --etcd. */
  endpoints: string;
  /** The member that is the Raft leader now, as the running members see it (null if none answers). */
  leader(): Promise<EtcdMember | null>;
  stop(): Promise<void>;
}

interface MemberStatus {
  header?: { member_id?: string };
  leader?: string;
}

/** A member's own status through etcd's JSON gateway, with a short timeout (a stopped member never answers). */
export async function memberStatus(endpoint: string, timeoutMs = 500): Promise<MemberStatus | null> {
  try {
    const res = await fetch(`${endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(timeoutMs) });
    return res.ok ? ((await res.json()) as MemberStatus) : null;
  } catch {
    return null;
  }
}

export interface EtcdClusterOptions {
  /**
   * The user id each member runs as (by index), when not the caller's: a test that cuts a member's
   * links with iptables tells its packets apart by their owner (test/helpers/etcd-partition.ts).
   * Needs root; `dir` is opened to them (traverse only).
   */
  uidOf?: (index: number) => number | undefined;
}

/** `size` etcd members on loopback forming one new cluster; resolves once it has a leader. */
export async function startEtcdCluster(dir: string, size = 3, extraArgs: string[] = [], options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  if (options.uidOf) {
    if (process.getuid?.() !== 0) throw new Error('etcd members as users of their own (to cut their links with iptables) need root: run as root');
    chmodSync(dir, 0o711);
  }
  // The ports are picked before etcd binds them, and parallel test files pick ports too: a
  // member that lost that race exits at once. Start again on fresh ports, a few times.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdClusterOnce(dir, size, extraArgs, options);
    } catch (err) {
      if (attempt >= 3 || !/exited/.test(String(err))) throw err;
    }
  }
}

/** `command args` as `uid` (setpriv, which execs it: the pid is the command's own), or as the caller. */
function asUser(uid: number | undefined, command: string, args: string[]): [string, string[]] {
  return uid === undefined ? [command, args] : ['setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', command, ...args]];
}

async function startEtcdClusterOnce(dir: string, size: number, extraArgs: string[], options: EtcdClusterOptions): Promise<EtcdCluster> {
  const ports: { client: number; peer: number }[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const names = ports.map((_, i) => `m${i + 1}`);
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]!.peer}`).join(',');
  const token = `cfgserver-${ports[0]!.client}`;
  const members: EtcdMember[] = names.map((name, i) => {
    const url = `http://127.0.0.1:${ports[i]!.client}`;
    const peerUrl = `http://127.0.0.1:${ports[i]!.peer}`;
    const uid = options.uidOf?.(i);
    const dataDir = join(dir, `etcd-${token}-${name}`);
    const logFile = join(dir, `etcd-${token}-${name}.log`);
    if (uid !== undefined) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      closeSync(openSync(logFile, 'a'));
      for (const path of [dataDir, logFile]) chownSync(path, uid, uid);
    }
    const spawnMember = () =>
      new ManagedProcess(`etcd ${name}`, ...asUser(uid, 'etcd', [
        '--name', name,
        '--data-dir', dataDir,
        '--listen-client-urls', url,
        '--advertise-client-urls', url,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-token', token,
        '--initial-cluster-state', 'new',
        // etcd 3.5's default, not 3.4's: a member whose links come back after a partition asks
        // before it campaigns, instead of forcing an election with its higher term (docs/reliability.md).
        '--pre-vote',
        '--logger=zap',
        '--log-outputs', logFile,
        ...extraArgs,
      ]), join(dir, `etcd-${token}-${name}.out`));
    const member: EtcdMember = {
      name,
      endpoint: url,
      peerUrl,
      process: spawnMember(),
      get pid() {
        return member.process.pid;
      },
      stop: () => member.process.stop(),
      kill9: () => member.process.kill9(),
      signal: (sig) => member.process.signal(sig),
      async restart() {
        await member.process.kill9();
        // Its data directory holds its membership: the initial-cluster flags are ignored now.
        member.process = spawnMember();
        await waitFor(`etcd ${name} to answer again`, async () => {
          if (!member.process.running()) throw new Error(`etcd ${name} exited; see ${member.process.logFile}`);
          return (await memberStatus(url)) !== null;
        }, 15_000, 100);
      },
    };
    return member;
  });
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.endpoint).join(','),
    async leader() {
      const statuses = await Promise.all(members.map(async (m) => ({ m, s: m.process.running() ? await memberStatus(m.endpoint) : null })));
      const leaderId = statuses.find(({ s }) => s?.leader && s.leader !== '0')?.s?.leader;
      return statuses.find(({ s }) => leaderId && s?.header?.member_id === leaderId)?.m ?? null;
    },
    async stop() {
      for (const m of members) {
        // A stopped process ignores SIGTERM until continued.
        if (m.process.running()) m.signal('SIGCONT');
        await m.stop();
      }
    },
  };
  try {
    await waitFor('the etcd cluster to elect a leader', async () => {
      for (const m of members) if (!m.process.running()) throw new Error(`etcd ${m.name} exited; see ${m.process.logFile}`);
      return cluster.leader();
    }, 20_000, 100);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
