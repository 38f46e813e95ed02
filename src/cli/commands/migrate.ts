/**
 * Slot migration from the command line: `migrate`, `rebalance`, `shard drain` ask for one (the
 * leader carries it out); `migrations` lists them and, with --watch, follows the one under way —
 * with a progress bar on a terminal (cli-progress), one plain line per change otherwise.
 */
import { SingleBar } from 'cli-progress';
import type { Argv } from 'yargs';
import { TaskFailedError } from '../../model/errors.js';
import { migrationFinished, movesText, parseMigrationRate, type MigrationRecord } from '../../model/migration.js';
import type { AdminService } from '../../service/admin-service.js';
import type { MigrationView } from '../../service/migration-service.js';
import { numberIn, printJson, show, withAdmin, type GlobalArgs } from '../run.js';
import { migrationsTable } from '../tables.js';

/** --rate: keys per second for the leader's mover. */
const RATE_OPTION = {
  type: 'number',
  describe: "keys/s at most for the leader's mover (0: no limit); change it later with migrate throttle",
  // Checked as it is read, with the service's own words for a bad rate.
  coerce: (v: unknown) => (parseMigrationRate(v), v as number),
} as const;

const by = () => `cfgctl@${process.env['USER'] ?? 'unknown'}`;

/** What was asked, or what would be with --dry-run. */
function asked(a: GlobalArgs & { 'dry-run'?: boolean }, m: MigrationRecord): void {
  if (a.json) return printJson(m);
  const what = `${movesText(m.moves)}${m.rate === null ? '' : `, at most ${m.rate} keys/s`}`;
  process.stdout.write(a['dry-run'] ? `would move: ${what}\n(dry run: nothing was written)\n` : `migration ${m.id} asked: ${what}\nfollow it: cfgctl migrations ${m.cluster} --watch\n`);
}

/** What `pause`, `resume` and `cancel` act on: the migrations or the splits of the admin service. */
type Controlled = (admin: AdminService) => Record<'pause' | 'resume' | 'cancel', (name: string, by: string, id?: string) => Promise<{ id: string; next: string; state: string }>>;

/** `<verb> NAME [ID]` for each control of a record the leader runs (a migration, a split). */
export function controlCommands(y: Argv<GlobalArgs>, noun: string, of: Controlled, describe: Record<'pause' | 'resume' | 'cancel', string>): Argv<GlobalArgs> {
  for (const verb of ['pause', 'resume', 'cancel'] as const) {
    y.command(
      `${verb} <name> [id]`,
      describe[verb],
      (c) => c.positional('name', { type: 'string', demandOption: true, describe: 'cluster' }).positional('id', { type: 'string', describe: `${noun} id (default: the one under way)` }),
      (a) =>
        withAdmin(a, async (admin) => {
          const r = await of(admin)[verb](a.name, by(), a.id);
          if (a.json) printJson(r);
          else process.stdout.write(`${noun} ${r.id}: ${verb} asked at step ${r.next}${r.state === 'cancelled' ? ' (cancelled)' : ''}\n`);
        }),
    );
  }
  return y;
}

export function migrateCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  controlCommands(y, 'migration', (admin) => admin.migrations, {
    pause: 'stop moving keys (proxies still move the keys clients touch) until resume',
    resume: 'go on moving keys after a pause',
    cancel: 'move the keys that moved back and leave the route as it was (before the commit step)',
  });
  y.command(
    'throttle <name> [id]',
    "change how fast the leader's mover may go, from its next batch on (proxies still move the keys clients touch)",
    (c) =>
      c
        .positional('name', { type: 'string', demandOption: true, describe: 'cluster' })
        .positional('id', { type: 'string', describe: 'migration id (default: the one under way)' })
        .option('rate', { ...RATE_OPTION, demandOption: true }),
    (a) =>
      withAdmin(a, async (admin) => {
        const m = await admin.migrations.throttle(a.name, by(), a.rate, a.id);
        if (a.json) printJson(m);
        else process.stdout.write(`migration ${m.id}: ${m.rate === null ? 'no limit' : `at most ${m.rate} keys/s`} from the mover's next batch\n`);
      }),
  );
  return y.command(
    '$0 <name>',
    'move slots to a shard, keys and all, while clients keep working',
    (c) =>
      c
        .positional('name', { type: 'string', demandOption: true, describe: 'cluster' })
        .option('slots', { type: 'string', demandOption: true, describe: 'slots to move: A-B[,C-D...] (single slots too)' })
        .option('to', { type: 'string', demandOption: true, describe: 'the shard that gets them' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'show the moves, write nothing' })
        .option('rate', RATE_OPTION),
    (a) => withAdmin(a, async (admin) => asked(a, await admin.migrations.migrate(a.name, { slots: a.slots, to: a.to, requestedBy: by(), dryRun: a['dry-run'], rate: a.rate }))),
  );
}

export const rebalanceCommand = {
  command: 'rebalance <name>',
  describe: 'even the slots out over the shards: shows the moves, then asks for them (--dry-run: only shows)',
  builder: (c: Argv<GlobalArgs>) =>
    c.positional('name', { type: 'string', demandOption: true }).option('dry-run', { type: 'boolean', default: false, describe: 'show the moves, write nothing' }).option('rate', RATE_OPTION),
  handler: (a: GlobalArgs & { name: string; 'dry-run': boolean; rate?: number }) =>
    withAdmin(a, async (admin) => asked(a, await admin.migrations.rebalance(a.name, { requestedBy: by(), dryRun: a['dry-run'], rate: a.rate }))),
};

export function drainCommand(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command(
    'drain <name> <shard>',
    'move every slot of a shard to the others (then shard remove succeeds)',
    (c) =>
      c
        .positional('name', { type: 'string', demandOption: true, describe: 'cluster' })
        .positional('shard', { type: 'string', demandOption: true })
        .option('dry-run', { type: 'boolean', default: false, describe: 'show the moves, write nothing' })
        .option('rate', RATE_OPTION),
    (a) => withAdmin(a, async (admin) => asked(a, await admin.migrations.drain(a.name, { shard: a.shard, requestedBy: by(), dryRun: a['dry-run'], rate: a.rate }))),
  );
}

export const migrationsCommand = {
  command: 'migrations <name>',
  describe: 'slot migrations of a cluster with keys moved, keys/s and time left (--watch: follow the one under way)',
  builder: (c: Argv<GlobalArgs>) =>
    c
      .positional('name', { type: 'string', demandOption: true })
      .option('watch', { type: 'boolean', default: false, describe: 'follow the migration under way until it ends' })
      .option('interval', { type: 'number', default: 1, describe: 'seconds between looks, with --watch (0.2..3600)', coerce: (v: unknown) => numberIn('interval', v, 0.2, 3600) }),
  handler: (a: GlobalArgs & { name: string; watch: boolean; interval: number }) => {
    if (!a.watch) return show(a, async (admin) => {
      const { migrations, problems } = await admin.migrations.list(a.name);
      return { value: migrations, problems };
    }, migrationsTable);
    return withAdmin(a, (admin) => watch(admin, a.name, a.interval * 1000, a.json));
  },
};

/** Follows the newest migration until it ends: a bar on a terminal, a line per change otherwise. */
async function watch(admin: AdminService, cluster: string, everyMs: number, json: boolean): Promise<void> {
  const bar = process.stdout.isTTY && !json ? new SingleBar({ format: '{step} [{bar}] {value}/{total} keys | {rate} keys/s | {left} left' }) : null;
  let last = '';
  for (;;) {
    const { migrations } = await admin.migrations.list(cluster);
    const m: MigrationView | undefined = migrations[migrations.length - 1];
    if (!m) {
      process.stdout.write(`no migration in ${cluster}\n`);
      return;
    }
    const total = Math.max(m.keysSeen + (m.passes === 0 ? 0 : m.keysMoved), m.keysMoved, 1);
    const fields = { step: `${m.state} ${m.next}`, rate: m.keysPerSecond ?? '-', left: m.secondsLeft === null ? '-' : `${m.secondsLeft}s` };
    if (bar) {
      if (!bar.isActive) bar.start(total, m.keysMoved, fields);
      bar.setTotal(total);
      bar.update(m.keysMoved, fields);
    } else {
      const line = json ? JSON.stringify(m) : `${m.id} ${fields.step}: ${m.keysMoved} keys moved, ${fields.rate} keys/s, ${fields.left} left${m.error ? `, ${m.error}` : ''}`;
      if (line !== last) process.stdout.write(`${line}\n`);
      last = line;
    }
    if (migrationFinished(m)) {
      bar?.stop();
      if (!json) process.stdout.write(`migration ${m.id}: ${m.state}${m.error ? ` (${m.error})` : ''}\n`);
      if (m.state === 'failed') throw new TaskFailedError(`migration ${m.id} failed: ${m.error ?? 'see cfgctl history'}`);
      return;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
