/**
 * `cfgctl shard split` and `cfgctl splits` (docs/split.md): the request is checked by the split
 * service before anything is written; the leader carries the split out.
 */
import type { Argv } from 'yargs';
import { printJson, show, watchOptions, wholeNumber, withAdmin, type GlobalArgs, type WatchArgs } from '../run.js';
import { splitsTable } from '../tables.js';
import { splitText } from '../../model/split.js';
import { controlCommands } from './migrate.js';

/** Adds `split <name> <shard>` to the `shard` commands. */
export function splitCommand(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command(
    'split <name> <shard>',
    'split a shard in two by replication: a new shard (its master a replica of the shard\'s until a short cut-over) takes some of its slots (docs/split.md)',
    (c) =>
      c
        .positional('name', { type: 'string', demandOption: true, describe: 'cluster' })
        .positional('shard', { type: 'string', demandOption: true, describe: 'the shard to split' })
        .option('new-shard', { type: 'string', demandOption: true, describe: 'id of the new shard' })
        .option('master', { type: 'string', demandOption: true, describe: 'HOST:PORT of the new master (empty, unless --force)' })
        .option('slave', { type: 'string', array: true, default: [] as string[], describe: 'HOST:PORT of a slave of the new master (repeatable)' })
        .option('slots', { type: 'string', describe: 'A-B[,C-D...]: the slots the new shard takes (default: the upper half of the shard\'s)' })
        .option('trim-rate', { type: 'number', describe: 'keys/s each side may unlink at most after the cut-over (0: no limit)', coerce: (v: unknown) => wholeNumber('trim-rate', v, 0, 10_000_000) })
        .option('force', { type: 'boolean', default: false, describe: 'split onto instances that hold keys (the full sync wipes them)' }),
    (argv) =>
      withAdmin(argv, async (admin) => {
        const split = await admin.splits.split(argv.name, {
          shard: argv.shard,
          newShard: argv['new-shard'],
          master: argv.master,
          slaves: argv.slave.map(String),
          slots: argv.slots,
          trimRate: argv['trim-rate'],
          force: argv.force,
          requestedBy: 'cfgctl',
        });
        if (argv.json) printJson(split);
        else process.stdout.write(`split ${split.id} asked: ${splitText(split)}; follow it with cfgctl splits ${argv.name}\n`);
      }),
  );
}

export const splitsCommand = {
  command: 'splits <name>',
  describe: 'shard splits of a cluster: state, next step, sync progress, the cut-over hold, the trim (--watch follows them)',
  builder: (c: Argv<GlobalArgs>) => c.positional('name', { type: 'string', demandOption: true }).options(watchOptions),
  handler: (a: GlobalArgs & WatchArgs & { name: string }) =>
    show(a, async (admin) => {
      const { splits, problems } = await admin.splits.list(a.name);
      return { value: splits, problems };
    }, splitsTable),
};

/** `split pause|resume|cancel NAME [ID]` (docs/split.md). */
export function splitControlCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return controlCommands(y, 'split', (admin) => admin.splits, {
    pause: 'stop the split at its next step boundary (a sync keeps replicating but does not cut over; the trim stops unlinking) until resume',
    resume: 'go on with a paused split',
    cancel: 'before its commit: leave the cluster as it was (the new instances detached, the new shard out of the route); refused after it',
  }).demandCommand(1);
}
