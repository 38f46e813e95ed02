import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { parse as parseYaml } from 'yaml';
import { ValidationError, errorMessage } from '../../model/errors.js';
import { printJson, show, warn, watchOptions, withAdmin, type GlobalArgs } from '../run.js';
import { clusterStatusText, clustersTable, routeTable } from '../tables.js';

/** Why a new cluster's first epoch is not 1 (docs/route-format.md, "Epochs"). */
const EPOCH_NOTE = 'the etcd revision + 1: a cluster deleted and created again never goes back in epoch, so a proxy never takes its new route for an old one';

function readClusterFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError(`cannot read ${path}: ${errorMessage(err)}`);
  }
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    throw new ValidationError(`${path} is not valid YAML: ${errorMessage(err).split('\n')[0]}`);
  }
}

function setPaused(args: GlobalArgs, name: string, paused: boolean): Promise<void> {
  return withAdmin(args, async (admin) => {
    const changed = await admin.setPaused(name, paused);
    const word = paused ? 'paused' : 'resumed';
    if (args.json) printJson({ cluster: name, paused, changed });
    else process.stdout.write(changed ? `${word} cluster ${name}\n` : `cluster ${name} was already ${paused ? 'paused' : 'running'}\n`);
  });
}

export function clusterCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y
    .command(
      'create <name>',
      'create a cluster; with -f, its shards (slots are then spread evenly over them)',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .option('slots', { type: 'number', describe: 'slot count, 1..16384 (default 1024)' })
          .option('file', { alias: 'f', type: 'string', describe: 'cluster YAML: slots, proxy kind, probe settings, shards with master and slaves' })
          .option('force', { type: 'boolean', default: false, describe: 'add instances that do not answer anyway (each one is a warning)' }),
      (argv) =>
        withAdmin(argv, async (admin) => {
          const file = argv.file === undefined ? undefined : readClusterFile(argv.file);
          const route = await admin.createCluster({ name: argv.name, slots: argv.slots, file, force: argv.force, warn: (w) => warn([w]) });
          if (argv.json) printJson(route);
          else process.stdout.write(`created cluster ${route.cluster} at epoch ${route.epoch} (${EPOCH_NOTE})\n${routeTable(route)}\n`);
        }),
    )
    .command(
      'list',
      'list clusters',
      (c) => c,
      (argv) =>
        show(argv, async (admin) => {
          const { clusters, problems } = await admin.listClusters();
          return { value: clusters, problems };
        }, clustersTable),
    )
    .command(
      'show <name>',
      'shards and instances with their role, link and health as the controllers saw them, and offsets read from Redis now',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .option('live', { type: 'boolean', default: true, describe: 'read offsets from Redis now (--no-live: only what the controllers saw, with its age)' })
          .options(watchOptions),
      (argv) =>
        show(argv, async (admin) => {
          const status = await admin.describeCluster(argv.name, { live: argv.live });
          return { value: status, problems: status.problems };
        }, clusterStatusText),
    )
    .command(
      'delete <name>',
      'delete a cluster and everything cfgserver keeps about it (not the Redis data)',
      (c) => c.positional('name', { type: 'string', demandOption: true }).option('yes', { type: 'boolean', default: false, describe: 'confirm' }),
      (argv) =>
        withAdmin(argv, async (admin) => {
          if (!argv.yes) throw new ValidationError(`deleting cluster ${argv.name} needs --yes`);
          await admin.deleteCluster(argv.name);
          if (argv.json) printJson({ deleted: argv.name });
          else process.stdout.write(`deleted cluster ${argv.name}\n`);
        }),
    )
    .command(
      'set <name>',
      'change probe and failover settings of a cluster, and what its clients go through',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .option('probe-interval-ms', { type: 'number', describe: 'how often every replica probes every instance' })
          .option('probe-timeout-ms', { type: 'number', describe: 'probe timeout' })
          .option('down-after-ms', { type: 'number', describe: 'no good probe for this long: down' })
          .option('auto-failover', { type: 'boolean', describe: 'fail over dead masters automatically (--no-auto-failover: report only)' })
          .option('max-failovers', { type: 'number', describe: 'automatic failovers allowed per window' })
          .option('failover-window-ms', { type: 'number', describe: 'the window of --max-failovers' })
          .option('max-link-down-ms', { type: 'number', describe: 'staleness bound of a slave to promote' })
          .option('switchover-timeout-ms', { type: 'number', describe: 'longest write pause of a switchover' })
          .option('write-fence', { type: 'boolean', describe: 'keep min-replicas-to-write on masters with a live slave (--no-write-fence: off)' })
          .option('write-fence-lag-seconds', { type: 'number', describe: 'min-replicas-max-lag of the write fence, whole seconds' })
          .option('proxy', { type: 'string', describe: 'what clients go through: cfgserver (its own proxies) or twemproxy (nutcracker with cfgserver twemproxy-agent; no slot migration, docs/twemproxy.md)' }),
      (argv) =>
        withAdmin(argv, async (admin) => {
          const spec = await admin.updateSettings(argv.name, {
            proxy: argv.proxy,
            probe: { intervalMs: argv['probe-interval-ms'], timeoutMs: argv['probe-timeout-ms'], downAfterMs: argv['down-after-ms'] },
            failover: {
              auto: argv['auto-failover'],
              maxPerWindow: argv['max-failovers'],
              windowMs: argv['failover-window-ms'],
              maxLinkDownMs: argv['max-link-down-ms'],
              switchoverTimeoutMs: argv['switchover-timeout-ms'],
              writeFence: argv['write-fence'],
              writeFenceLagSeconds: argv['write-fence-lag-seconds'],
            },
          });
          if (argv.json) printJson(spec);
          else process.stdout.write(`cluster ${spec.name}: proxy ${spec.proxy}, probe ${JSON.stringify(spec.probe)}, failover ${JSON.stringify(spec.failover)}\n`);
        }),
    )
    .command(
      'pause <name>',
      'stop automatic actions (failover, repairs) on a cluster; probing and status go on',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      (argv) => setPaused(argv, argv.name, true),
    )
    .command(
      'resume <name>',
      'let the controller act on a paused cluster again',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      (argv) => setPaused(argv, argv.name, false),
    )
    .demandCommand(1, 'say which cluster command: create, list, show, set, delete, pause or resume');
}
