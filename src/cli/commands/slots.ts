import type { Argv } from 'yargs';
import { ValidationError } from '../../model/errors.js';
import { printJson, withAdmin, type GlobalArgs } from '../run.js';
import { routeTable } from '../tables.js';

export function slotsCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y
    .command(
      'assign <name>',
      'give slots that have no owner to shards',
      (c) => c.positional('name', { type: 'string', demandOption: true, describe: 'cluster' }).option('even', { type: 'boolean', default: false, describe: 'spread them evenly over the shards' }),
      (argv) =>
        withAdmin(argv, async (admin) => {
          if (!argv.even) throw new ValidationError('say how to assign: --even');
          const { assigned, route } = await admin.assignSlotsEvenly(argv.name);
          if (argv.json) printJson({ assigned, route });
          else process.stdout.write(`${assigned ? `assigned ${assigned} slots` : 'every slot already has an owner; nothing changed'}\n${routeTable(route)}\n`);
        }),
    )
    .demandCommand(1, 'say which slots command: assign');
}
