#!/usr/bin/env node
/**
 * cfgctl: the admin CLI. It talks to etcd directly; the controller carries changes out.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { CfgError, ValidationError } from '../model/errors.js';
import { clusterCommands } from './commands/cluster.js';
import { shardCommands } from './commands/shard.js';
import { slotsCommands } from './commands/slots.js';
import { fail, globalOptions, printJson, refuseNaN, show, watchOptions, wholeNumber, withAdmin, type GlobalArgs } from './run.js';
import { VERSION } from '../version.js';
import { closest } from '../util/suggest.js';
import { controllersTable, historyTable, keyPlaceText, proxiesTable, replicaStatusText, routeTable } from './tables.js';
import { keyPlace } from '../model/route.js';
import { tasksCommands } from './commands/tasks.js';
import { failoverCommand } from './commands/failover.js';
import { migrateCommands, migrationsCommand, rebalanceCommand } from './commands/migrate.js';
import { splitControlCommands, splitsCommand } from './commands/split.js';
import { configCommands } from './commands/config.js';
import { authCommands } from './commands/auth.js';

/**
 * yargs checks required options before unknown ones, so a typo of a required option (--slot for
 * --slots) reads "Missing required argument: slots". Name the typo instead, when a --flag typed is
 * close to a missing one.
 */
function typoOfRequired(message: string, argv: string[]): string | null {
  const missing = /^Missing required arguments?: (.+)$/.exec(message)?.[1]?.split(', ') ?? [];
  for (const arg of argv) {
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (!name || missing.includes(name)) continue;
    const near = closest(name, missing);
    if (near.length > 0) return `unknown option --${name} (did you mean --${near.join(' or --')}?)`;
  }
  return null;
}

export function buildCli(argv: string[]): Argv<GlobalArgs> {
  const base = yargs(argv).scriptName('cfgctl').options(globalOptions) as unknown as Argv<GlobalArgs>;
  return failoverCommand(base)
    .command('cluster', 'create, list, show and delete clusters', (y) => clusterCommands(y))
    .command('shard', 'add and remove shards', (y) => shardCommands(y))
    .command('slots', 'assign slots to shards', (y) => slotsCommands(y))
    .command(
      'route <name>',
      'the route of a cluster, as proxies see it',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      (a) => show(a, async (admin) => ({ value: await admin.route(a.name) }), routeTable),
    )
    .command('migrate', 'move slots between shards: migrate NAME --slots A-B --to SHARD; migrate pause|resume|cancel NAME', (y) => migrateCommands(y))
    .command(rebalanceCommand)
    .command(migrationsCommand)
    .command(splitsCommand)
    .command('split', 'pause, resume or cancel a shard split: split pause|resume|cancel NAME [ID]', (y) => splitControlCommands(y))
    .command('config', 'desired Redis configuration of a cluster: set, get, unset, diff', (y) => configCommands(y))
    .command('auth', 'Redis credentials of a cluster: set, show, rotate (no password is ever printed)', (y) => authCommands(y))
    .command('tasks', 'failover and switchover tasks: list them (tasks NAME), cancel one (tasks cancel NAME ID)', (y) => tasksCommands(y))
    .command(
      'proxies <name>',
      'live proxies of a cluster and the route epoch each has applied',
      (c) => c.positional('name', { type: 'string', demandOption: true }).options(watchOptions),
      (a) => {
        let epoch = 0;
        return show(
          a,
          async (admin) => {
            const [{ proxies, problems }, route] = await Promise.all([admin.listProxies(a.name), admin.route(a.name)]);
            epoch = route.epoch;
            return { value: proxies, problems };
          },
          (proxies) => `route epoch ${epoch}\n${proxiesTable(proxies, epoch)}`,
        );
      },
    )
    .command(
      'slot <name> <key>',
      'where a key lives: its slot, the shard that owns it and that shard\'s master (and the migration moving it, if any)',
      (c) => c.positional('name', { type: 'string', demandOption: true }).positional('key', { type: 'string', demandOption: true }),
      (a) => show(a, async (admin) => ({ value: keyPlace(await admin.route(a.name), a.key) }), keyPlaceText),
    )
    .command(
      'controllers',
      'live controller replicas and which one leads',
      (c) => c,
      (a) => show(a, async (admin) => {
        const { controllers, problems } = await admin.listControllers();
        return { value: controllers, problems };
      }, controllersTable),
    )
    .command(
      'replicas [action] [count]',
      'how many controller replicas the deployment runs: a failover needs votes from a majority of them',
      (c) =>
        c
          .positional('action', { choices: ['show', 'set', 'unset'] as const, default: 'show' as const, describe: 'show the count and quorum; set COUNT; unset (back to the default)' })
          .positional('count', { type: 'string', describe: 'with set: the number of replicas, 1..99' }),
      (a) => {
        if (a.action === 'show') {
          return show(a, async (admin) => {
            const { status, problems } = await admin.replicaStatus();
            return { value: status, problems };
          }, replicaStatusText);
        }
        return withAdmin(a, async (admin) => {
          if (a.action === 'set' && a.count === undefined) throw new ValidationError('say how many: cfgctl replicas set COUNT');
          if (a.action === 'unset' && a.count !== undefined) throw new ValidationError('unset takes no count');
          const status = await admin.setReplicas(a.action === 'set' ? Number(a.count) : null);
          if (a.json) printJson(status);
          else process.stdout.write(`${replicaStatusText(status)}\n`);
        });
      },
    )
    .command(
      'history <name>',
      'what the controller decided and did for a cluster, and why',
      (c) => c.positional('name', { type: 'string', demandOption: true }).option('limit', { type: 'number', default: 50, describe: 'newest entries to show (1..1000)', coerce: (v: unknown) => wholeNumber('limit', v, 1, 1000) }).options(watchOptions),
      (a) => show(a, async (admin) => {
        const { entries, problems } = await admin.listHistory(a.name, a.limit);
        return { value: entries, problems };
      }, historyTable),
    )
    .check((argv) => refuseNaN(argv), true)
    .demandCommand(1, 'say what to do; see --help')
    .strict()
    .help()
    .alias('help', 'h')
    .version(VERSION)
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .fail((message, err) => {
      // Throwing stops yargs from running the command after a parse error. yargs wraps what an
      // option's coerce or a check threw; its message is ours.
      if (err instanceof CfgError) throw err;
      throw new ValidationError((message && typoOfRequired(message, argv)) ?? err?.message ?? message);
    });
}

try {
  await buildCli(hideBin(process.argv)).parseAsync();
} catch (err) {
  fail(err);
}
