/**
 * Fault injection for a controller process under test, loaded with `node --import` by the test
 * harness (never by the product): the product has no test switch of its own.
 *
 * - FAULT_UNREACHABLE=host:port,...: connections from this process to those addresses fail at
 *   once with ECONNREFUSED, as if a network cut separated this replica from them alone.
 * - FAULT_PAUSE_AFTER=<step>:<ms>: the leader sleeps that long after recording that task step, so
 *   that a test can kill or stop it between two steps.
 * - FAULT_SPLIT_PAUSE_AFTER=<step>:<ms>: the same after a step of a shard split.
 */
import net from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const unreachable = new Set((process.env.FAULT_UNREACHABLE ?? '').split(',').filter(Boolean));
if (unreachable.size > 0) {
  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (...args) {
    // net.connect() passes its normalized arguments as one array: [options, callback].
    const first = Array.isArray(args[0]) ? args[0][0] : args[0];
    const options = typeof first === 'object' && first !== null ? first : { port: first, host: typeof args[1] === 'string' ? args[1] : 'localhost' };
    const host = options.host === 'localhost' || options.host === undefined ? '127.0.0.1' : options.host;
    if (unreachable.has(`${host}:${Number(options.port)}`)) {
      const error = Object.assign(new Error(`connect ECONNREFUSED ${host}:${options.port} (cut off by the test)`), { code: 'ECONNREFUSED' });
      process.nextTick(() => this.destroy(error));
      return this;
    }
    return connect.apply(this, args);
  };
}

const pause = /^([a-z-]+):(\d+)$/.exec(process.env.FAULT_PAUSE_AFTER ?? '');
if (pause) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const { TaskProgress } = await import(pathToFileURL(join(root, 'dist', 'controller', 'tasks', 'progress.js')).href);
  const advance = TaskProgress.prototype.advance;
  TaskProgress.prototype.advance = async function (step, ...rest) {
    await advance.call(this, step, ...rest);
    if (step === pause[1]) await new Promise((r) => setTimeout(r, Number(pause[2])));
  };
}

const splitPause = /^([a-z-]+):(\d+)$/.exec(process.env.FAULT_SPLIT_PAUSE_AFTER ?? '');
if (splitPause) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const { SplitRun } = await import(pathToFileURL(join(root, 'dist', 'controller', 'splits', 'split-run.js')).href);
  const persist = SplitRun.prototype.persist;
  SplitRun.prototype.persist = async function (step, ...rest) {
    await persist.call(this, step, ...rest);
    if (step === splitPause[1]) await new Promise((r) => setTimeout(r, Number(splitPause[2])));
  };
}
