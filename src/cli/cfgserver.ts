#!/usr/bin/env node
/**
 * cfgserver: the server processes — a controller replica, a proxy, a twemproxy agent, and the local playground.
 */
import { readSecretFile } from './secret.js';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadControllerConfig } from '../controller/config.js';
import { runController } from './run-controller.js';
import { CfgError, ValidationError, errorMessage } from '../model/errors.js';
import { runPlayground } from '../playground/playground.js';
import { LIMIT_DEFAULTS } from '../proxy/proxy.js';
import { parseWorkers, runProxyCommand } from '../proxy/run-proxy.js';
import { runTwemproxyAgent } from '../twemproxy/run-agent.js';
import { createLogger } from '../log.js';
import { clusterName, parseInput } from '../model/schemas.js';
import { DEFAULT_ETCD } from '../store/etcd.js';
import { refuseNaN } from './run.js';
import { VERSION } from '../version.js';
import { loadEtcdSecurity } from '../store/etcd-security.js';
import { loadApiToken } from '../api/api-security.js';
import { readCertificate } from '../util/setting-file.js';
import { etcdSecurityFromArgs, etcdSecurityOptions } from './security-options.js';
import { EXIT_CODES } from './run.js';

function die(err: unknown): never {
  process.stderr.write(`cfgserver: ${errorMessage(err)}\n`);
  process.exit(err instanceof CfgError && (err.code === 'VALIDATION' || err.code === 'ETCD_ACCESS') ? EXIT_CODES[err.code] : 1);
}

/** Options every server process takes. */
const serverOptions = {
  etcd: { type: 'string', describe: 'etcd endpoints, comma-separated (default $CFGSERVER_ETCD or http://127.0.0.1:2379)' },
  prefix: { type: 'string', describe: 'key prefix in etcd (default /cfgserver)' },
  id: { type: 'string', describe: 'id of this process (default hostname-pid)' },
  'log-level': { type: 'string', choices: ['error', 'warn', 'info', 'debug'] },
  ...etcdSecurityOptions,
} as const;

await yargs(hideBin(process.argv))
  .scriptName('cfgserver')
  .command(
    'controller',
    'run a controller replica: probes Redis, competes for the leader lock; the leader reconciles',
    (y) =>
      y
        .options(serverOptions)
        .option('listen', { type: 'string', describe: 'HOST:PORT of the HTTP API (/healthz, /v1/..., /metrics)' })
        .option('config', { type: 'string', describe: 'YAML file of controller settings; flags override it' })
        .option('lease-ttl', { type: 'number', describe: 'lease TTL in seconds (default 3)' })
        .option('api-token-file', { type: 'string', describe: 'file holding the HTTP API\'s bearer token, needed by every change (or $CFGSERVER_API_TOKEN)' })
        .option('api-auth-reads', { type: 'boolean', describe: 'reads need the token too (all but /healthz)' })
        .option('api-read-token-file', { type: 'string', describe: 'file holding a read-only token that reads accept and changes refuse, with --api-auth-reads (or $CFGSERVER_API_READ_TOKEN)' })
        .option('api-tls-cert', { type: 'string', describe: 'PEM certificate: the HTTP API speaks https (with --api-tls-key)' })
        .option('api-tls-key', { type: 'string', describe: 'PEM key of --api-tls-cert' }),
    async (argv) => {
      try {
        const etcdSecurity = etcdSecurityFromArgs(argv);
        const config = loadControllerConfig(argv.config, {
          etcdCa: etcdSecurity.ca,
          etcdCert: etcdSecurity.cert,
          etcdKey: etcdSecurity.key,
          etcdUser: etcdSecurity.user,
          etcdPasswordFile: etcdSecurity.passwordFile,
          apiTokenFile: argv['api-token-file'],
          apiAuthReads: argv['api-auth-reads'],
          apiReadTokenFile: argv['api-read-token-file'],
          apiTlsCert: argv['api-tls-cert'],
          apiTlsKey: argv['api-tls-key'],
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
    'proxy',
    'run a proxy: RESP for clients, routed by slot to the shards\' masters, following the route in etcd',
    (y) =>
      y
        .option('cluster', { type: 'string', demandOption: true, describe: 'the cluster to serve' })
        .options(serverOptions)
        .option('listen', { type: 'string', default: '127.0.0.1:6380', describe: 'HOST:PORT for clients' })
        .option('metrics', { type: 'string', describe: 'HOST:PORT for /metrics and /healthz (with --workers: the supervisor\'s, every worker aggregated)' })
        .option('workers', { type: 'string', default: '1', describe: 'processes sharing the client port, each a whole proxy (0 or auto: one per core)' })
        .option('password', { type: 'string', describe: 'clients must AUTH with it (better: --password-file or $CFGSERVER_PROXY_PASSWORD, not visible in ps)' })
        .option('password-file', { type: 'string', describe: 'clients must AUTH with the first line of this file' })
        .option('user', { type: 'string', default: 'default', describe: 'the user clients AUTH as (AUTH user pass); a bare AUTH pass is accepted too' })
        .option('backend-password', { type: 'string', describe: 'password for Redis instances of a cluster without stored credentials (cfgctl auth set; else $CFGSERVER_BACKEND_PASSWORD)' })
        .option('pool-size', { type: 'number', default: 1, describe: 'pipelined connections per Redis instance (more isolates slow commands, fewer batch better)' })
        .option('max-in-flight', { type: 'number', default: 1000, describe: 'commands per client awaiting replies before reading from it pauses' })
        .option('max-in-flight-bytes', { type: 'number', default: LIMIT_DEFAULTS.maxInFlightBytes, describe: 'request bytes per client awaiting replies before reading from it pauses (0: no bound)' })
        .option('max-clients', { type: 'number', default: LIMIT_DEFAULTS.maxClients, describe: 'clients connected at once; the next gets -ERR max number of clients reached (Redis: maxclients)' })
        .option('idle-timeout', { type: 'number', default: LIMIT_DEFAULTS.idleTimeoutSeconds, describe: 'seconds without a request before a client is closed, 0: never; not subscribed or blocked clients (Redis: timeout)' })
        .option('tcp-keepalive', { type: 'number', default: LIMIT_DEFAULTS.tcpKeepAliveSeconds, describe: 'seconds of silence before TCP keep-alive probes on client sockets, 0: off (Redis: tcp-keepalive)' })
        .option('client-output-limit', { type: 'number', default: LIMIT_DEFAULTS.clientOutputLimitBytes, describe: 'bytes of replies held for a client before it is closed, 0: no bound' })
        .option('pubsub-output-limit', { type: 'number', default: LIMIT_DEFAULTS.pubsubOutputLimitBytes, describe: 'the same for a subscribed client (Redis: client-output-buffer-limit pubsub)' })
        .option('max-multi-commands', { type: 'number', default: LIMIT_DEFAULTS.maxMultiCommands, describe: 'commands one MULTI may queue (the proxy holds them until EXEC), 0: no bound' })
        .option('backend-timeout', { type: 'number', default: 10_000, describe: 'ms without a reply before a backend connection is dropped' })
        .option('allow-flush', { type: 'boolean', default: false, describe: 'let clients run FLUSHALL, FLUSHDB, SCRIPT FLUSH, FUNCTION FLUSH (on every master)' })
        .option('api-token-file', { type: 'string', describe: 'file holding a token of the controllers\' API (the read-only one will do), for reading the route when cut off from etcd (or $CFGSERVER_API_TOKEN)' })
        .option('api-ca', { type: 'string', describe: 'PEM file of the CA that signed the controllers\' https certificates (default: the system\'s roots)' }),
    async (argv) => {
      try {
        await runProxyCommand({
          etcdSecurity: loadEtcdSecurity(etcdSecurityFromArgs(argv)),
          controllerApi: { token: loadApiToken(argv['api-token-file']), ca: argv['api-ca'] !== undefined ? readCertificate('--api-ca', argv['api-ca']) : undefined },
          cluster: parseInput(clusterName, argv.cluster, 'cluster name'),
          listen: argv.listen,
          etcd: argv.etcd ?? process.env['CFGSERVER_ETCD'] ?? DEFAULT_ETCD,
          prefix: argv.prefix,
          id: argv.id,
          metricsListen: argv.metrics,
          password: argv['password-file'] !== undefined ? readSecretFile(argv['password-file']) : (argv.password ?? process.env['CFGSERVER_PROXY_PASSWORD'] ?? null),
          user: argv.user,
          backendPassword: argv['backend-password'] ?? process.env['CFGSERVER_BACKEND_PASSWORD'],
          poolSize: argv['pool-size'],
          maxInFlight: argv['max-in-flight'],
          maxInFlightBytes: argv['max-in-flight-bytes'],
          maxClients: argv['max-clients'],
          idleTimeoutSeconds: argv['idle-timeout'],
          tcpKeepAliveSeconds: argv['tcp-keepalive'],
          clientOutputLimitBytes: argv['client-output-limit'],
          pubsubOutputLimitBytes: argv['pubsub-output-limit'],
          maxMultiCommands: argv['max-multi-commands'],
          backendTimeoutMs: argv['backend-timeout'],
          allowFlush: argv['allow-flush'],
          leaseTtlSeconds: 3,
          log: createLogger(argv['log-level'] ?? 'info'),
        }, parseWorkers(argv.workers));
      } catch (err) {
        die(err);
      }
    },
  )
  .command(
    'twemproxy-agent',
    'keep a nutcracker (twemproxy) serving a cluster\'s masters: render its pool from the route, restart it on every master change, register its epoch',
    (y) =>
      y
        .option('cluster', { type: 'string', demandOption: true, describe: 'the cluster (its proxy kind must be twemproxy)' })
        .options(serverOptions)
        .option('nutcracker-config', { type: 'string', demandOption: true, describe: 'the file nutcracker reads; the agent rewrites it (atomically); its content at start is the template unless --template' })
        .option('template', { type: 'string', describe: 'a nutcracker file whose pool settings to keep (default: --nutcracker-config as found at start)' })
        .option('pool', { type: 'string', describe: 'the pool that serves the cluster (default: the template\'s only pool, or one named after the cluster)' })
        .option('listen', { type: 'string', describe: 'HOST:PORT of the pool for clients (default: the template\'s listen)' })
        .option('nutcracker-cmd', { type: 'string', describe: 'run nutcracker as the agent\'s child with this command line (the agent adds -c FILE); default "nutcracker -a 127.0.0.1"' })
        .option('nutcracker-pid-file', { type: 'string', describe: 'instead, nutcracker is run by a service manager that restarts it, with -p FILE: the agent stops it and waits for the new one' })
        .option('nutcracker-bin', { type: 'string', default: 'nutcracker', describe: 'with --nutcracker-pid-file: the binary that checks the first file (-t)' })
        .conflicts('nutcracker-cmd', 'nutcracker-pid-file'),
    async (argv) => {
      try {
        const pidFile = argv['nutcracker-pid-file'];
        await runTwemproxyAgent({
          cluster: parseInput(clusterName, argv.cluster, 'cluster name'),
          etcd: argv.etcd ?? process.env['CFGSERVER_ETCD'] ?? DEFAULT_ETCD,
          prefix: argv.prefix,
          id: argv.id,
          configFile: argv['nutcracker-config'],
          templateFile: argv.template,
          pool: argv.pool ?? null,
          listen: argv.listen ?? null,
          nutcracker: pidFile !== undefined ? { kind: 'pid-file', pidFile, binary: argv['nutcracker-bin'] } : { kind: 'child', command: argv['nutcracker-cmd'] ?? 'nutcracker -a 127.0.0.1' },
          leaseTtlSeconds: 3,
          log: createLogger(argv['log-level'] ?? 'info'),
        });
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
  .check((argv) => refuseNaN(argv), true)
  .demandCommand(1, 'say which process to run: controller, proxy, twemproxy-agent or playground')
  .strict()
  .help()
  .alias('help', 'h')
  .version(VERSION)
  .fail((message, err) => die(err instanceof CfgError ? err : new ValidationError(err?.message ?? message)))
  .parseAsync();
