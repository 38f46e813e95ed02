import type { Argv } from 'yargs';
import { RefusedError, TaskFailedError, TimeoutError } from '../../model/errors.js';
import { isTerminal, type Task } from '../../model/schemas.js';
import type { AdminService } from '../../service/admin-service.js';
import { printJson, withAdmin, type GlobalArgs } from '../run.js';

export function failoverCommand(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command(
    'failover <name>',
    'planned switchover of a shard\'s master to a slave, losing no acknowledged write; follows the task to its end',
    (c) =>
      c
        .positional('name', { type: 'string', demandOption: true, describe: 'cluster' })
        .option('shard', { type: 'string', demandOption: true, describe: 'shard id' })
        .option('to', { type: 'string', describe: 'HOST:PORT of the slave to promote (default: the best one)' })
        .option('force', { type: 'boolean', default: false, describe: 'switch even to a lagging target' })
        .option('wait', { type: 'boolean', default: true, describe: 'follow the task until it ends (--no-wait: just ask)' })
        .option('wait-timeout', { type: 'number', default: 60, describe: 'seconds to follow the task' }),
    (argv) =>
      withAdmin(argv, async (admin) => {
        const task = await admin.requestSwitchover(argv.name, { shard: argv.shard, to: argv.to, force: argv.force, requestedBy: `cfgctl@${process.env['USER'] ?? 'unknown'}` });
        if (!argv.json) process.stdout.write(`asked for a switchover of ${task.shard} (master ${task.oldMaster}): task ${task.id}\n`);
        if (!argv.wait) {
          if (argv.json) printJson(task);
          return;
        }
        const final = await follow(admin, task, argv['wait-timeout'] * 1000, argv.json ? () => undefined : (line) => process.stdout.write(`${line}\n`));
        if (argv.json) printJson(final);
        if (!isTerminal(final)) throw new TimeoutError(`task ${final.id} still ${final.state} at step ${final.next}; follow it with: cfgctl tasks ${final.cluster}`);
        if (final.state === 'done') {
          if (!argv.json) process.stdout.write(`done: ${final.target} is master of ${final.shard} (route epoch ${final.epochAfter})\n`);
        } else {
          throw new (final.state === 'refused' ? RefusedError : TaskFailedError)(`${final.state}: ${final.error}`);
        }
      }),
  );
}

/** Polls a task, printing each step as it appears, until it ends or time runs out. */
export async function follow(admin: AdminService, task: Task, timeoutMs: number, print: (line: string) => void): Promise<Task> {
  const deadline = Date.now() + timeoutMs;
  let shown = 0;
  let current = task;
  let waitingSaid = false;
  for (;;) {
    for (const step of current.steps.slice(shown)) print(`  ${step.step.padEnd(8)} ${String(step.durationMs ?? '-').padStart(6)} ms  ${step.detail}`);
    shown = current.steps.length;
    if (isTerminal(current) || Date.now() > deadline) return current;
    if (current.state === 'pending' && !waitingSaid && Date.now() - Date.parse(current.createdAt) > 3000) {
      print('  (no leader has taken the task yet: is a controller running? see cfgctl controllers)');
      waitingSaid = true;
    }
    await new Promise((r) => setTimeout(r, 100));
    current = await admin.getTask(task.cluster, task.id);
  }
}
