#!/usr/bin/env node
/**
 * cfgserver: the server processes — a controller replica, and the local playground.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadControllerConfig } from '../controller/config.js';
import { runController } from '../controller/run-controller.js';
import { CfgError, ValidationError, errorMessage } from '../model/errors.js';
import { runPlayground } from '../playground/playground.js';

function die(err: unknown): never {
  process.stderr.write(`cfgserver: ${errorMessage(err)}\n`);
  process.exit(err instanceof CfgError && err.code === 'VALIDATION' ? 2 : 1);
}

await yargs(hideBin(process.argv))
  .scriptName('cfgserver')
  .command(
    'controller',
    'run a controller replica: probes Redis, competes for the leader lock; the leader reconciles',
    (y) =>
      y
        .option('etcd', { type: 'string', describe: 'etcd endpoints, comma-separated (default $CFGSERVER_ETCD or http://127.0.0.1:2379)' })
        .option('prefix', { type: 'string', describe: 'key prefix in etcd (default /cfgserver)' })
        .option('listen', { type: 'string', describe: 'HOST:PORT of the HTTP API (/healthz, /v1/..., /metrics)' })
        .option('config', { type: 'string', describe: 'YAML file of controller settings; flags override it' })
        .option('id', { type: 'string', describe: 'replica id (default hostname-pid)' })
        .option('lease-ttl', { type: 'number', describe: 'lease TTL in seconds (default 3)' })
        .option('log-level', { type: 'string', choices: ['error', 'warn', 'info', 'debug'] }),
    async (argv) => {
      try {
        const config = loadControllerConfig(argv.config, {
          id: argv.id,
          etcd: argv.etcd ?? process.env['CFGSERVER_ETCD'],
          prefix: argv.prefix,
          listen: argv.listen,
          leaseTtlSeconds: argv['lease-ttl'],
          logLevel: argv['log-level'],
        });
        await runController(config);
      } catch (err) {
        die(err);
      }
    },
  )
  .command(
    'playground',
    'start etcd, a cluster "demo" of 3 shards x (master + slave) and 2 controllers on loopback; Ctrl-C stops all',
    (y) =>
      y
        .option('dir', { type: 'string', describe: 'data folder (default: a new temporary folder)' })
        .option('keep', { type: 'boolean', default: false, describe: 'keep the data folder on exit' })
        .option('shards', { type: 'number', default: 3, describe: 'number of shards' }),
    async (argv) => {
      await runPlayground({ dir: argv.dir, keep: argv.keep, shards: argv.shards }).catch(die);
    },
  )
  .demandCommand(1, 'say which process to run: controller or playground')
  .strict()
  .help()
  .alias('help', 'h')
  .fail((message, err) => die(err ?? new ValidationError(message)))
  .parseAsync();
