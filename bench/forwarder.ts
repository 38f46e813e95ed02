/**
 * bench/forwarder — the platform line of bench/proxy-workers: the least a Node.js TCP forwarder
 * can do (no cfgserver code, no RESP parsing): every client connection gets its own connection to
 * one Redis and bytes are piped both ways. Run as 1 process or as N node:cluster workers
 * (SCHED_NONE, as `cfgserver proxy --workers`), so that whatever limits scaling in Node or the
 * kernel on this host shows here too.
 *
 *   node --import tsx bench/forwarder.ts --listen PORT --backend HOST:PORT [--workers N]
 */
import cluster from 'node:cluster';
import { connect, createServer } from 'node:net';

const arg = (name: string, fallback?: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
};
const port = Number(arg('listen'));
const [host, backendPort] = arg('backend').split(':') as [string, string];
const workers = Number(arg('workers', '1'));

if (cluster.isPrimary && workers > 1) {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  createServer((client) => {
    client.setNoDelay(true);
    const backend = connect({ host, port: Number(backendPort), noDelay: true });
    client.pipe(backend).pipe(client);
    const close = () => {
      client.destroy();
      backend.destroy();
    };
    client.on('error', close).on('close', close);
    backend.on('error', close).on('close', close);
  }).listen(port, '127.0.0.1');
}
