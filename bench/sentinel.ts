/**
 * Redis Sentinel for a bench baseline: three sentinels watching named masters, a check that they
 * agree, and the +switch-master feed that a config-rewriting agent follows.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ManagedProcess, freePort, waitFor } from '../src/playground/processes.js';

export interface Sentinels {
  addresses: string[];
  stop(): Promise<void>;
}

function connection(address: string): Redis {
  const i = address.lastIndexOf(':');
  const c = new Redis({ host: address.slice(0, i), port: Number(address.slice(i + 1)), retryStrategy: () => 20, maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  return c;
}

/** Starts `count` sentinels (quorum: a majority) watching `masters` (name -> address), each from its own file. */
export async function startSentinels(dir: string, masters: Record<string, string>, downAfterMs: number, count = 3): Promise<Sentinels> {
  const procs: ManagedProcess[] = [];
  const addresses: string[] = [];
  const stop = async () => {
    for (const p of procs) await p.stop();
  };
  try {
    for (let n = 1; n <= count; n++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${n}.conf`);
      const lines = [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`];
      for (const [name, address] of Object.entries(masters)) {
        const [host, masterPort] = address.split(':');
        lines.push(
          `sentinel monitor ${name} ${host} ${masterPort} ${Math.floor(count / 2) + 1}`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
        );
      }
      writeFileSync(conf, lines.join('\n') + '\n');
      const proc = new ManagedProcess(`sentinel ${n}`, 'redis-server', [conf, '--sentinel'], join(dir, `sentinel-${n}.log`));
      procs.push(proc);
      const address = `127.0.0.1:${port}`;
      const c = connection(address);
      try {
        await waitFor(`sentinel ${n}`, async () => {
          if (!proc.running()) throw new Error(`sentinel exited; see ${proc.logFile}`);
          return (await c.ping().catch(() => null)) === 'PONG';
        });
      } finally {
        c.disconnect();
      }
      addresses.push(address);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { addresses, stop };
}

function pairs(reply: unknown): Map<string, string> {
  const flat = reply as string[];
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, flat[i + 1]!);
  return out;
}

/**
 * Every sentinel names `master` for `name` with no failover going on, knows the other sentinels,
 * and sees `replicas` replicas of it with their links up: ready for the next kill.
 */
export async function sentinelsAgree(sentinels: Sentinels, name: string, master: string, replicas: number): Promise<boolean> {
  for (const address of sentinels.addresses) {
    const c = connection(address);
    try {
      const m = pairs(await c.call('SENTINEL', 'MASTER', name));
      if (`${m.get('ip')}:${m.get('port')}` !== master || m.get('flags') !== 'master') return false;
      if (m.get('num-other-sentinels') !== String(sentinels.addresses.length - 1)) return false;
      const known = ((await c.call('SENTINEL', 'REPLICAS', name)) as unknown[]).map(pairs).filter((r) => r.get('flags') === 'slave' && r.get('master-link-status') === 'ok');
      if (known.length < replicas) return false;
    } finally {
      c.disconnect();
    }
  }
  return true;
}

/**
 * Calls `onSwitch(name, newMaster)` on every +switch-master a sentinel announces (what an agent
 * that rewrites nutcracker.yml listens to). Returns the subscriber, to disconnect.
 */
export async function onSwitchMaster(sentinel: string, onSwitch: (name: string, master: string) => void): Promise<Redis> {
  const sub = connection(sentinel);
  sub.on('message', (_channel: string, message: string) => {
    // "<name> <old ip> <old port> <new ip> <new port>"
    const [name, , , ip, port] = message.split(' ');
    if (name && ip && port) onSwitch(name, `${ip}:${port}`);
  });
  await sub.subscribe('+switch-master');
  return sub;
}
