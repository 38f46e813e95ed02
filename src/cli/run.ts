/**
 * What every cfgctl command shares: the etcd connection from flags, printing, and the one mapping
 * from typed errors to exit codes. A failure prints one line on stderr and changes nothing.
 */
import type { Etcd3 } from 'etcd3';
import { CfgError, errorMessage, type ErrorCode } from '../model/errors.js';
import { RedisPool } from '../redis/pool.js';
import { AdminService } from '../service/admin-service.js';
import { DEFAULT_ETCD, createEtcd } from '../store/etcd.js';
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
  timeout: { type: 'number', default: 3000, describe: 'deadline of each etcd request, in ms' },
  ...etcdSecurityOptions,
} as const;

/** Runs a command against etcd; prints the error and sets the exit code on failure. */
export async function withAdmin(args: GlobalArgs, fn: (admin: AdminService) => Promise<void>): Promise<void> {
  let etcd: Etcd3 | undefined;
  // Connects to no Redis until a command reads one (cluster show reads offsets live).
  const redis = new RedisPool({ timeoutMs: args.timeout, password: process.env['CFGSERVER_BACKEND_PASSWORD'] });
  try {
    const security = loadEtcdSecurity(etcdSecurityFromArgs(args));
    etcd = createEtcd({ endpoints: args.etcd, callTimeoutMs: args.timeout, security });
    const keys = new Keys(args.prefix);
    // With credentials, first make sure etcd takes them: a refusal is then one clear line, before
    // the command reads or writes anything. (Unreachable: the command's own call says so.)
    if (security) await checkEtcdAccess(etcd, keys);
    await fn(new AdminService(etcd, keys, redis));
  } catch (err) {
    fail(err);
  } finally {
    redis.close();
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
export function show<T>(args: GlobalArgs, fetch: (admin: AdminService) => Promise<{ value: T; problems?: string[] }>, render: (value: T) => string): Promise<void> {
  return withAdmin(args, async (admin) => {
    const { value, problems = [] } = await fetch(admin);
    warn(problems);
    if (args.json) printJson(value);
    else process.stdout.write(`${render(value)}\n`);
  });
}
