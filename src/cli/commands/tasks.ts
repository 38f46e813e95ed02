import type { Argv } from 'yargs';
import { TaskFailedError, TimeoutError } from '../../model/errors.js';
import { isTerminal } from '../../model/schemas.js';
import { printJson, show, watchOptions, wholeNumber, withAdmin, type GlobalArgs } from '../run.js';
import { taskText, tasksTable } from '../tables.js';
import { follow } from './failover.js';

/** `cfgctl tasks <name>` lists a cluster's tasks; `cfgctl tasks cancel <name> <id>` ends one. */
export function tasksCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y
    .command(
      'show <name> <id>',
      'one task whole: every step with when it ended, how long it took and its detail',
      (c) => c.positional('name', { type: 'string', demandOption: true, describe: 'cluster' }).positional('id', { type: 'string', demandOption: true, describe: 'task id (see cfgctl tasks NAME)' }),
      (a) => show(a, async (admin) => ({ value: await admin.getTask(a.name, a.id) }), taskText),
    )
    .command(
      'cancel <name> <id>',
      'end a failover or switchover before its point of no return, undoing what it did; follows it to its end',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true, describe: 'cluster' })
          .positional('id', { type: 'string', demandOption: true, describe: 'task id (see cfgctl tasks NAME)' })
          .option('wait', { type: 'boolean', default: true, describe: 'follow the task until it ends (--no-wait: just ask)' })
          .option('wait-timeout', { type: 'number', default: 30, describe: 'seconds to follow the task (1..86400)', coerce: (v: unknown) => wholeNumber('wait-timeout', v, 1, 86_400) }),
      (a) =>
        withAdmin(a, async (admin) => {
          const asked = await admin.cancelTask(a.name, a.id, `cfgctl@${process.env['USER'] ?? 'unknown'}`);
          const print = a.json ? () => undefined : (line: string) => process.stdout.write(`${line}\n`);
          if (isTerminal(asked) || !a.wait) {
            if (a.json) printJson(asked);
            else print(isTerminal(asked) ? `task ${asked.id}: ${asked.state} (${asked.error})` : `task ${asked.id}: cancel asked; the leader undoes it before its next step`);
            return;
          }
          print(`task ${asked.id}: cancel asked at step ${asked.next}; following it:`);
          const final = await follow(admin, asked, a['wait-timeout'] * 1000, print);
          if (a.json) printJson(final);
          if (!isTerminal(final)) throw new TimeoutError(`task ${final.id} still ${final.state} at step ${final.next}: is a leader running? (cfgctl controllers)`);
          // It may have passed its point of no return before the leader saw the cancel.
          if (final.state !== 'cancelled') throw new TaskFailedError(`task ${final.id} ended ${final.state} before the cancel took effect${final.error ? `: ${final.error}` : ''}`);
          print(`cancelled: ${final.error}`);
        }),
    )
    .command(
      '$0 <name>',
      'failover and switchover tasks of a cluster, with their steps',
      (c) => c.positional('name', { type: 'string', demandOption: true }).options(watchOptions),
      (a) =>
        show(a, async (admin) => {
          const { tasks, problems } = await admin.listTasks(a.name);
          return { value: tasks, problems };
        }, tasksTable),
    );
}
