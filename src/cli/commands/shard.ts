import type { Argv } from 'yargs';
import { printJson, warn, withAdmin, type GlobalArgs } from '../run.js';
import { drainCommand } from './migrate.js';
import { splitCommand } from './split.js';

export function shardCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  // drainCommand adds `drain <name> <shard>` itself (as a `.command('drain', ...)` around it, it
  // was `shard drain drain NAME SHARD`).
  return splitCommand(drainCommand(y))
    .command(
      'add <name>',
      'add a shard (it owns no slot until slots are assigned or migrated to it)',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true, describe: 'cluster' })
          .option('master', { type: 'string', demandOption: true, describe: 'HOST:PORT of the master' })
          .option('slave', { type: 'string', array: true, default: [] as string[], describe: 'HOST:PORT of a slave (repeatable)' })
          .option('id', { type: 'string', describe: 'shard id (default: the next free sN)' })
          .option('force', { type: 'boolean', default: false, describe: 'add instances that do not answer anyway (each one is a warning)' }),
      (argv) =>
        withAdmin(argv, async (admin) => {
          const shard = await admin.addShard(argv.name, { id: argv.id, master: argv.master, slaves: argv.slave.map(String), force: argv.force, warn: (w) => warn([w]) });
          if (argv.json) printJson(shard);
          else process.stdout.write(`added shard ${shard.id} to ${argv.name}: master ${shard.master}, slaves ${shard.slaves.join(',') || '-'}\n`);
        }),
    )
    .command(
      'remove <name> <shard>',
      'remove a shard that owns no slot',
      (c) => c.positional('name', { type: 'string', demandOption: true, describe: 'cluster' }).positional('shard', { type: 'string', demandOption: true }),
      (argv) =>
        withAdmin(argv, async (admin) => {
          await admin.removeShard(argv.name, argv.shard);
          if (argv.json) printJson({ removed: argv.shard });
          else process.stdout.write(`removed shard ${argv.shard} from ${argv.name}\n`);
        }),
    )
    .demandCommand(1, 'say which shard command: add, remove, drain or split');
}
