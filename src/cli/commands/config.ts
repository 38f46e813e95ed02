/**
 * The desired Redis configuration of a cluster from the command line: `config set|get|unset|diff`,
 * and the recommended-settings check, `config check`.
 * The leader applies it to every instance within a few seconds (docs/config.md).
 */
import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { parse as parseYaml } from 'yaml';
import { ValidationError, errorMessage } from '../../model/errors.js';
import type { ConfigRole, ConfigScope } from '../../model/redis-config.js';
import { printJson, show, withAdmin, type GlobalArgs } from '../run.js';
import { configCheckText, configDiffTable, configText } from '../tables.js';

/** `config check` found something to warn about (the command itself worked). */
export const CHECK_WARNINGS_EXIT = 12;

const by = () => `cfgctl@${process.env['USER'] ?? 'unknown'}`;

interface ScopeArgs {
  role?: string;
  shard?: string;
}

const scopeOptions = {
  role: { choices: ['master', 'slave'], describe: 'only for instances of this role' },
  shard: { type: 'string', describe: 'only for the instances of this shard' },
} as const;

function scopeOf(a: ScopeArgs): ConfigScope {
  return { ...(a.role ? { role: a.role as ConfigRole } : {}), ...(a.shard ? { shard: a.shard } : {}) };
}

/** KEY VALUE [KEY VALUE ...] as pairs. */
function pairsOf(words: string[]): Record<string, string> {
  if (words.length === 0 || words.length % 2 !== 0) throw new ValidationError('say KEY VALUE [KEY VALUE ...] (an even number of words)');
  const pairs: Record<string, string> = {};
  for (let i = 0; i < words.length; i += 2) pairs[words[i]!] = words[i + 1]!;
  return pairs;
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationError(`cannot read ${file}: ${errorMessage(err)}`);
  }
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    throw new ValidationError(`${file} is not valid YAML: ${errorMessage(err)}`);
  }
}

export function configCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y
    .command(
      'set <name> [pairs..]',
      'set Redis parameters for every instance (or --role, --shard); -f FILE replaces the whole desired config',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .positional('pairs', { type: 'string', array: true, default: [] as string[], describe: 'KEY VALUE [KEY VALUE ...]' })
          .options(scopeOptions)
          .option('file', { alias: 'f', type: 'string', describe: 'YAML: global: {...}, roles: {master: {...}, slave: {...}}, shards: {ID: {...}}' }),
      (a) =>
        withAdmin(a, async (admin) => {
          if (a.file && (a.pairs.length || a.role || a.shard)) throw new ValidationError('-f replaces the whole config: give no KEY VALUE, --role or --shard with it');
          const stored = a.file ? await admin.config.replace(a.name, readYaml(a.file), by()) : await admin.config.set(a.name, pairsOf(a.pairs.map(String)), scopeOf(a), by());
          if (a.json) printJson(stored);
          else process.stdout.write(`desired config of ${a.name} written; the leader applies it within a few seconds (cfgctl config diff ${a.name})\n`);
        }),
    )
    .command(
      'get <name> [pattern]',
      'the desired config (keys matching PATTERN, e.g. maxmemory*)',
      (c) => c.positional('name', { type: 'string', demandOption: true }).positional('pattern', { type: 'string' }),
      (a) => show(a, async (admin) => ({ value: (await admin.config.get(a.name, a.pattern)).config }), configText),
    )
    .command(
      'unset <name> <keys..>',
      'stop managing parameters (Redis keeps the value it has)',
      (c) => c.positional('name', { type: 'string', demandOption: true }).positional('keys', { type: 'string', array: true, demandOption: true }).options(scopeOptions),
      (a) =>
        withAdmin(a, async (admin) => {
          const stored = await admin.config.unset(a.name, a.keys.map(String), scopeOf(a), by());
          if (a.json) printJson(stored);
          else process.stdout.write(`unset ${a.keys.join(' ')} in the desired config of ${a.name}\n`);
        }),
    )
    .command(
      'diff <name>',
      'desired config against what every instance reports now (CONFIG GET)',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      (a) => show(a, async (admin) => ({ value: await admin.config.diff(a.name) }), configDiffTable),
    )
    .command(
      'check <name>',
      `recommended-settings warnings with their reasons (persistence, maxmemory, backlog for the write rate); exit ${CHECK_WARNINGS_EXIT} when there is any`,
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .option('sample-ms', { type: 'number', default: 1000, describe: 'how long to measure each master\'s write rate (100..60000)' })
          .option('min-backlog-seconds', { type: 'number', default: 60, describe: 'the disconnection a repl-backlog-size must cover at that rate' }),
      (a) =>
        withAdmin(a, async (admin) => {
          const report = await admin.config.check(a.name, { sampleMs: a['sample-ms'], minBacklogSeconds: a['min-backlog-seconds'] });
          if (a.json) printJson(report);
          else process.stdout.write(`${configCheckText(report)}\n`);
          // Warnings are findings, not a failure of the command: a distinct code, for scripts and cron.
          if (report.warnings.length > 0) process.exitCode = CHECK_WARNINGS_EXIT;
        }),
    )
    .demandCommand(1, 'config set|get|unset|diff|check');
}
