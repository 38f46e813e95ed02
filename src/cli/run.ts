/**
 * What every cfgctl command shares: the etcd connection from flags, printing, and the one mapping
 * from typed errors to exit codes. A failure prints one line on stderr and changes nothing.
 */
import type { Etcd3 } from 'etcd3';
import { CfgError, EtcdUnavailableError, ValidationError, errorMessage, type ErrorCode } from '../model/errors.js';
import { RedisPool } from '../redis/pool.js';
import { CredentialBook } from '../redis/credentials.js';
import { AdminService } from '../service/admin-service.js';
import { loadCredentials } from '../service/auth-service.js';
import { AuthStore } from '../store/auth-store.js';
import { ClusterStore } from '../store/cluster-store.js';
import { DEFAULT_ETCD, createEtcd, plainEtcdReason } from '../store/etcd.js';
import { checkEtcdAccess } from '../store/etcd-access.js';
import { loadEtcdSecurity } from '../store/etcd-security.js';
import { DEFAULT_PREFIX, Keys } from '../store/keys.js';
import { etcdSecurityFromArgs, etcdSecurityOptions, type EtcdSecurityArgs } from './security-options.js';

export interface GlobalArgs extends EtcdSecurityArgs {
  etcd: string;
  prefix: string;
  json: boolean;
  timeout: number;
}

export const EXIT_CODES: Record<ErrorCode, number> = {
  VALIDATION: 2,
  NOT_FOUND: 3,
  ALREADY_EXISTS: 4,
  CONFLICT: 4,
  REFUSED: 5,
  ETCD_UNAVAILABLE: 6,
  NOT_LEADER: 6,
  MALFORMED_VALUE: 7,
  REDIS: 8,
  TASK_FAILED: 9,
  TIMEOUT: 10,
  ETCD_ACCESS: 11,
  UNAUTHORIZED: 11,
  FORBIDDEN: 11,
};

export const globalOptions = {
  etcd: {
    type: 'string',
    default: process.env['CFGSERVER_ETCD'] ?? DEFAULT_ETCD,
    defaultDescription: '$CFGSERVER_ETCD or http://127.0.0.1:2379',
    describe: 'etcd endpoints, comma-separated',
  },
  prefix: { type: 'string', default: process.env['CFGSERVER_PREFIX'] ?? DEFAULT_PREFIX, describe: 'key prefix of cfgserver in etcd' },
  json: { type: 'boolean', default: false, describe: 'print JSON instead of tables' },
  timeout: { type: 'number', default: 3000, describe: 'deadline of each etcd request, in ms', coerce: (v: unknown) => wholeNumber('timeout', v, 1, 600_000) },
  ...etcdSecurityOptions,
} as const;

/**
 * A numeric option checked as yargs reads it: `--limit abc` or `--limit -3` is an error naming the
 * option and its range, never silently NaN or ignored.
 */
export function wholeNumber(name: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new ValidationError(`--${name} must be a whole number from ${min} to ${max}, not ${shown(value)}`);
  return n;
}

/** The same for a number that may have a fraction (seconds between looks, say). */
export function numberIn(name: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new ValidationError(`--${name} must be a number from ${min} to ${max}, not ${shown(value)}`);
  return n;
}

/** A rejected option value as the user typed it (yargs has already turned "abc" into NaN). */
function shown(value: unknown): string {
  if (typeof value === 'number' && Number.isNaN(value)) return 'a number';
  return Array.isArray(value) ? value.join(' ') : String(value);
}

/**
 * Every numeric option yargs left as NaN (`--shards x`): one error naming it. Options with a
 * range check themselves (`wholeNumber`); this catches the rest.
 */
export function refuseNaN(argv: Record<string, unknown>): true {
  for (const [key, value] of Object.entries(argv)) {
    // yargs gives each option twice (max-clients and maxClients): name the spelling users type.
    if (typeof value === 'number' && Number.isNaN(value) && !/[A-Z]/.test(key)) {
      throw new ValidationError(`--${key} must be a number`);
    }
  }
  return true;
}

/** Runs a command against etcd; prints the error and sets the exit code on failure. */
export async function withAdmin(args: GlobalArgs, fn: (admin: AdminService) => Promise<void>): Promise<void> {
  let etcd: Etcd3 | undefined;
  let redis: RedisPool | undefined;
  try {
    const security = loadEtcdSecurity(etcdSecurityFromArgs(args));
    const client = (etcd = createEtcd({ endpoints: args.etcd, callTimeoutMs: args.timeout, security }));
    const keys = new Keys(args.prefix);
    // With credentials, first make sure etcd takes them: a refusal is then one clear line, before
    // the command reads or writes anything. (Unreachable: the command's own call says so.)
    if (security) await checkEtcdAccess(client, keys);
    // Connects to no Redis until a command reads one (cluster show reads offsets live), and reads
    // the clusters' credentials only then.
    const book = new CredentialBook();
    redis = new RedisPool({ timeoutMs: args.timeout, credentials: book.forAddress, prepare: () => loadCredentials(book, new ClusterStore(client, keys), new AuthStore(client, keys)) });
    await fn(new AdminService(client, keys, redis));
  } catch (err) {
    // One plain sentence that names the endpoints, not gRPC's internals.
    if (err instanceof EtcdUnavailableError && err.cause) fail(new EtcdUnavailableError(`cannot reach etcd at ${args.etcd}: ${plainEtcdReason(err.cause)} (--etcd or $CFGSERVER_ETCD say where it is)`));
    else fail(err);
  } finally {
    redis?.close();
    etcd?.close();
  }
}

export function fail(err: unknown): void {
  process.stderr.write(`cfgctl: ${errorMessage(err).split('\n')[0]}\n`);
  process.exitCode = err instanceof CfgError ? EXIT_CODES[err.code] : 1;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function warn(problems: string[]): void {
  for (const p of problems) process.stderr.write(`warning: ${p}\n`);
}

/**
 * A read-only command: fetch something, warn about what could not be read, print it as JSON or
 * as text. Every listing of cfgctl goes through here.
 */
export function show<T>(args: GlobalArgs & Partial<WatchArgs>, fetch: (admin: AdminService) => Promise<{ value: T; problems?: string[] }>, render: (value: T) => string): Promise<void> {
  return withAdmin(args, async (admin) => {
    const once = async () => {
      const { value, problems = [] } = await fetch(admin);
      return { text: args.json ? JSON.stringify(value, null, 2) : render(value), problems };
    };
    if (!args.watch) {
      const { text, problems } = await once();
      warn(problems);
      process.stdout.write(`${text}\n`);
      return;
    }
    await watchLoop(once, (args.interval ?? 2) * 1000);
  });
}

/** `--watch [--interval S]` on the listings an operator follows (cluster show, tasks, history, proxies). */
export interface WatchArgs {
  watch: boolean;
  interval: number;
}

export const watchOptions = {
  watch: { type: 'boolean', default: false, describe: 'show it again every --interval seconds until Ctrl-C' },
  interval: { type: 'number', default: 2, describe: 'seconds between looks with --watch (0.2..3600)', coerce: (v: unknown) => numberIn('interval', v, 0.2, 3600) },
} as const;

/**
 * Shows `look()` again and again: on a terminal the screen is redrawn (like `watch`), otherwise a
 * block is printed only when it changed, under the time it was seen. A failed look (etcd away for
 * a moment) is said and the watch goes on; it ends on Ctrl-C.
 */
async function watchLoop(look: () => Promise<{ text: string; problems: string[] }>, everyMs: number): Promise<never> {
  const tty = process.stdout.isTTY === true;
  let last = '';
  for (;;) {
    let text: string;
    try {
      const seen = await look();
      text = [...seen.problems.map((p) => `warning: ${p}`), seen.text].join('\n');
    } catch (err) {
      text = `cannot look now: ${errorMessage(err).split('\n')[0]}`;
    }
    const at = new Date().toISOString();
    if (tty) process.stdout.write(`\x1b[2J\x1b[H${at}  (every ${everyMs / 1000} s; Ctrl-C to stop)\n\n${text}\n`);
    else if (text !== last) process.stdout.write(`--- ${at}\n${text}\n`);
    last = text;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
