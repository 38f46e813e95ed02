/**
 * Redis credentials of a cluster from the command line: `auth set`, `auth show`, `auth rotate`
 * (docs/redis-auth.md). Passwords come from a file or stdin, never from a flag, and are never printed.
 */
import type { Argv } from 'yargs';
import { describeAuth } from '../../model/auth.js';
import { readSecret } from '../secret.js';
import { printJson, show, warn, withAdmin, type GlobalArgs } from '../run.js';

const secretOptions = {
  'password-file': { type: 'string', describe: 'read the password from the first line of this file' },
  'password-stdin': { type: 'boolean', default: false, describe: 'read the password from stdin' },
} as const;

interface SecretFlags {
  'password-file'?: string;
  'password-stdin'?: boolean;
}

const secretOf = (a: SecretFlags) => readSecret({ file: a['password-file'], stdin: a['password-stdin'] });

export function authCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y
    .command(
      'set <name>',
      'store the Redis credentials of a cluster (checked on every reachable instance first)',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .option('user', { type: 'string', describe: 'the ACL user (default: the default user, i.e. requirepass)' })
          .options(secretOptions),
      (a) =>
        withAdmin(a, async (admin) => {
          const { summary, unchecked } = await admin.auth.set(a.name, { user: a.user ?? null, password: await secretOf(a) });
          if (unchecked.length) warn([`not checked on ${unchecked.join(', ')} (unreachable)`]);
          if (a.json) printJson(summary);
          else process.stdout.write(`credentials of ${a.name}: ${describeAuth(summary)}\n`);
        }),
    )
    .command(
      'show <name>',
      'whether a cluster has stored credentials, for which user, how many passwords (never a password)',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      (a) => show(a, async (admin) => ({ value: await admin.auth.show(a.name) }), (s) => `credentials of ${a.name}: ${describeAuth(s)}`),
    )
    .command(
      'rotate <name>',
      'replace the password without downtime: add it everywhere, switch every controller and proxy, remove the old',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .options(secretOptions)
          .option('adopt-timeout', { type: 'number', default: 30_000, describe: 'ms to wait for every controller and proxy to use the new password' }),
      (a) =>
        withAdmin(a, async (admin) => {
          const summary = await admin.auth.rotate(a.name, await secretOf(a), {
            adoptTimeoutMs: a['adopt-timeout'],
            onStep: (step, detail) => {
              if (!a.json) process.stdout.write(`${step}: ${detail}\n`);
            },
          });
          if (a.json) printJson(summary);
          else process.stdout.write(`credentials of ${a.name}: ${describeAuth(summary)}\n`);
        }),
    )
    .demandCommand(1, 'say set, show or rotate');
}
