#!/usr/bin/env node
/**
 * cfgctl: the admin CLI. It talks to etcd directly; the controller carries changes out.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ValidationError } from '../model/errors.js';
import { clusterCommands } from './commands/cluster.js';
import { shardCommands } from './commands/shard.js';
import { slotsCommands } from './commands/slots.js';
import { fail, globalOptions, printJson, warn, withAdmin, type GlobalArgs } from './run.js';
import { controllersTable, historyTable, proxiesTable, routeTable, tasksTable } from './tables.js';
import { failoverCommand } from './commands/failover.js';

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
      (a) =>
        withAdmin(a, async (admin) => {
          const route = await admin.route(a.name);
          process.stdout.write(a.json ? `${JSON.stringify(route, null, 2)}\n` : `${routeTable(route)}\n`);
        }),
    )
    .command(
      'tasks <name>',
      'failover and switchover tasks of a cluster, with their steps',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      (a) =>
        withAdmin(a, async (admin) => {
          const { tasks, problems } = await admin.listTasks(a.name);
          warn(problems);
          if (a.json) printJson(tasks);
          else process.stdout.write(`${tasksTable(tasks)}\n`);
        }),
    )
    .command(
      'proxies <name>',
      'live proxies of a cluster and the route epoch each has applied',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      (a) =>
        withAdmin(a, async (admin) => {
          const [{ proxies, problems }, route] = await Promise.all([admin.listProxies(a.name), admin.route(a.name)]);
          warn(problems);
          if (a.json) printJson(proxies);
          else process.stdout.write(`route epoch ${route.epoch}\n${proxiesTable(proxies, route.epoch)}\n`);
        }),
    )
    .command(
      'controllers',
      'live controller replicas and which one leads',
      (c) => c,
      (a) =>
        withAdmin(a, async (admin) => {
          const { controllers, problems } = await admin.listControllers();
          warn(problems);
          if (a.json) printJson(controllers);
          else process.stdout.write(`${controllersTable(controllers)}\n`);
        }),
    )
    .command(
      'history <name>',
      'what the controller decided and did for a cluster, and why',
      (c) => c.positional('name', { type: 'string', demandOption: true }).option('limit', { type: 'number', default: 50, describe: 'newest entries to show' }),
      (a) =>
        withAdmin(a, async (admin) => {
          const { entries, problems } = await admin.listHistory(a.name, a.limit);
          warn(problems);
          if (a.json) printJson(entries);
          else process.stdout.write(`${historyTable(entries)}\n`);
        }),
    )
    .demandCommand(1, 'say what to do; see --help')
    .strict()
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .fail((message, err) => {
      // Throwing stops yargs from running the command after a parse error.
      throw err ?? new ValidationError(message);
    });
}

try {
  await buildCli(hideBin(process.argv)).parseAsync();
} catch (err) {
  fail(err);
}
