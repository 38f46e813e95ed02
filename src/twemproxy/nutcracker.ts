/**
 * Making nutcracker use a new configuration file. nutcracker 0.5 cannot reload one (no signal
 * does it) and binds its port without SO_REUSEPORT, so a second one cannot listen beside the
 * first: the fastest way is to stop the old process and start the new one at once, which the
 * agent does when it runs nutcracker as its own child (`ChildNutcracker`). When a service manager
 * runs nutcracker (`PidFileNutcracker`), the agent stops it and waits for the manager to start it
 * again: the outage is then the manager's restart delay too (docs/twemproxy.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Logger } from 'winston';
import { splitAddress } from '../model/address.js';
import { RefusedError, TimeoutError, ValidationError, errorMessage } from '../model/errors.js';

export interface NutcrackerControl {
  /** Makes sure a nutcracker serves the current file (starts one if none runs). */
  ensureRunning(): Promise<void>;
  /** Makes nutcracker use the file as it is now; resolves once clients can connect again. */
  restart(): Promise<void>;
  /** The pid serving now, or null. */
  pid(): number | null;
  /** Stops what this control started (a child); leaves a managed nutcracker alone. */
  stop(): Promise<void>;
}

/** How long nutcracker may take to listen again after a start, before it is an error. */
const LISTEN_TIMEOUT_MS = 10_000;

/** Resolves once `address` accepts a TCP connection (polled every 2 ms: each one is outage). */
export async function waitListening(address: string, timeoutMs = LISTEN_TIMEOUT_MS, alive: () => boolean = () => true): Promise<void> {
  const { host, port } = splitAddress(address);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new RefusedError(`nutcracker exited before it listened on ${address} (see its log)`);
    if (performance.now() > deadline) throw new TimeoutError(`nutcracker did not listen on ${address} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * `nutcracker -t -c FILE`: whether nutcracker itself accepts the file, before it replaces the one
 * in use. Resolves with nothing, or rejects with nutcracker's own words.
 */
export function checkConfig(binary: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['-t', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (err) => reject(new ValidationError(`cannot run ${binary} to check ${file}: ${errorMessage(err)}`)));
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else reject(new ValidationError(`nutcracker refuses ${file}: ${output.trim().split('\n').slice(-3).join(' / ')}`));
    });
  });
}

/**
 * Splits `--nutcracker-cmd` into argv and adds `-c FILE`. The agent writes the child's pid to
 * `FILE.pid` itself (nutcracker 0.5 writes its `-p` file only when it daemonizes): an agent that was
 * killed (kill -9 leaves its child running, holding the port) finds and stops that orphan when it
 * starts again.
 */
export function nutcrackerArgv(command: string, configFile: string): { argv: string[]; pidFile: string } {
  const argv = command.trim().split(/\s+/).filter(Boolean);
  if (argv.length === 0) throw new ValidationError('--nutcracker-cmd is empty');
  const owned: [string, string][] = [['-c', '--conf-file'], ['-p', '--pid-file'], ['-d', '--daemonize']];
  for (const [short, long] of owned) {
    if (argv.some((a) => a === short || a.startsWith(long))) throw new ValidationError(`--nutcracker-cmd must not give ${short}: the agent sets the config and pid files and supervises nutcracker in the foreground`);
  }
  const pidFile = `${configFile}.pid`;
  return { argv: [...argv, '-c', configFile], pidFile };
}

/**
 * nutcracker as the agent's child: started on the first route, restarted on every change, and
 * started again (after a pause that grows to 5 s) if it dies on its own.
 */
export class ChildNutcracker implements NutcrackerControl {
  private child: ChildProcess | null = null;
  private stopping = false;
  private crashPauseMs = 100;
  private respawnTimer: NodeJS.Timeout | null = null;

  private orphanChecked = false;

  constructor(
    private readonly argv: string[],
    private readonly pidFile: string,
    private readonly listen: string,
    private readonly log: Logger,
  ) {}

  pid(): number | null {
    return this.child?.pid ?? null;
  }

  async ensureRunning(): Promise<void> {
    if (this.child) return;
    if (!this.orphanChecked) await this.stopOrphan();
    await this.spawn();
  }

  /** A nutcracker left by an earlier agent of this file (its pid file names a live nutcracker): stopped. */
  private async stopOrphan(): Promise<void> {
    this.orphanChecked = true;
    const pid = await readPid(this.pidFile);
    if (pid === null || !alive(pid)) return;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes('nutcracker')) return; // the pid was reused by something else
    this.log.warn('stopping the nutcracker an earlier agent left running', { pid, pidFile: this.pidFile });
    process.kill(pid, 'SIGKILL');
    const deadline = performance.now() + 5000;
    while (alive(pid) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.spawn();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    await this.kill();
    await unlink(this.pidFile).catch(() => undefined);
  }

  private async spawn(): Promise<void> {
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    this.respawnTimer = null;
    const child = spawn(this.argv[0]!, this.argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
    this.child = child;
    if (child.pid !== undefined) await writeFile(this.pidFile, `${child.pid}\n`).catch((err) => this.log.warn('could not write the nutcracker pid file', { pidFile: this.pidFile, error: errorMessage(err) }));
    let exited = false;
    child.once('error', (err) => this.log.error('could not start nutcracker', { command: this.argv.join(' '), error: errorMessage(err) }));
    child.once('exit', (code, signal) => {
      exited = true;
      if (this.child !== child) return; // stopped on purpose (restart or stop)
      this.child = null;
      if (this.stopping) return;
      this.log.error('nutcracker exited on its own; starting it again', { pid: child.pid, code, signal, inMs: this.crashPauseMs });
      this.respawnTimer = setTimeout(() => void this.spawn().catch((err) => this.log.error('nutcracker did not come back', { error: errorMessage(err) })), this.crashPauseMs);
      this.respawnTimer.unref();
      this.crashPauseMs = Math.min(5000, this.crashPauseMs * 2);
    });
    await waitListening(this.listen, LISTEN_TIMEOUT_MS, () => !exited);
    this.crashPauseMs = 100;
  }

  /** SIGTERM (nutcracker exits at once, it keeps nothing), SIGKILL if it lingers; resolves once the port is free. */
  private async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 1000);
    await gone;
    clearTimeout(timer);
  }
}

/**
 * nutcracker run by a service manager that starts it again when it exits and keeps its pid in a
 * file (systemd `Type=forking`, `PIDFile=F`, `Restart=always` with `nutcracker -d -p F`: nutcracker
 * 0.5 writes `-p` only when it daemonizes): a restart is SIGTERM to the pid in the file, then
 * waiting for a new live pid there and the port to accept connections.
 */
export class PidFileNutcracker implements NutcrackerControl {
  private current: number | null = null;

  constructor(
    private readonly pidFile: string,
    private readonly listen: string,
    private readonly restartTimeoutMs = 30_000,
  ) {}

  pid(): number | null {
    return this.current;
  }

  async ensureRunning(): Promise<void> {
    this.current = await this.waitForPid(null);
    await waitListening(this.listen, this.restartTimeoutMs);
  }

  async restart(): Promise<void> {
    const old = await this.readPid();
    if (old !== null) {
      try {
        process.kill(old, 'SIGTERM');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
    this.current = await this.waitForPid(old);
    await waitListening(this.listen, this.restartTimeoutMs);
  }

  async stop(): Promise<void> {
    // The service manager's process: not ours to stop.
  }

  private readPid(): Promise<number | null> {
    return readPid(this.pidFile);
  }

  /** A live pid in the file other than `old`. */
  private async waitForPid(old: number | null): Promise<number> {
    const deadline = performance.now() + this.restartTimeoutMs;
    for (;;) {
      const pid = await this.readPid();
      if (pid !== null && pid !== old && alive(pid)) return pid;
      if (performance.now() > deadline) throw new TimeoutError(`no new nutcracker pid in ${this.pidFile} within ${this.restartTimeoutMs} ms: is its service manager restarting it?`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

async function readPid(file: string): Promise<number | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  const pid = text === null ? NaN : Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** Whether `pid` runs: it exists and is not a zombie (an exited orphan that nobody reaped yet). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * What an ioredis 6 client needs to talk to nutcracker, which closes the connection on a command
 * it does not know: no HELLO (RESP2), no INFO ready check, no CLIENT SETINFO (docs/twemproxy.md).
 */
export const NUTCRACKER_IOREDIS_OPTIONS = { protocol: 2, enableReadyCheck: false, disableClientInfo: true } as const;
