/**
 * A stand-in for many Redis instances in one process, for the scale bench: it answers on each of
 * its ports what cfgserver's controllers ask of an instance (PING, INFO replication, CONFIG
 * GET/SET/REWRITE, REPLICAOF, CLIENT ...), with a replication state per port that REPLICAOF
 * changes. 1,000 real redis-servers would take the two cores this bench measures.
 * Not a Redis: nothing is stored; offsets stand still; every other command answers +OK.
 */
import { createServer, type Server, type Socket } from 'node:net';

interface Instance {
  port: number;
  role: 'master' | 'slave';
  /** The master's port, for a slave. */
  master: number | null;
  config: Map<string, string>;
  server: Server;
  sockets: Set<Socket>;
  alive: boolean;
  diedAt: number | null;
}

const REPLID = 'a'.repeat(40);

export class Responder {
  private readonly instances = new Map<number, Instance>();

  /** Listens on `port` as a master, or as a slave of `master`. */
  async add(port: number, master: number | null): Promise<void> {
    const instance: Instance = { port, role: master === null ? 'master' : 'slave', master, config: new Map([['min-replicas-to-write', '0'], ['min-replicas-max-lag', '10']]), server: createServer(), sockets: new Set(), alive: true, diedAt: null };
    instance.server.on('connection', (socket) => this.serve(instance, socket));
    await new Promise<void>((resolve, reject) => {
      instance.server.once('error', reject);
      instance.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.instances.set(port, instance);
  }

  /** As kill -9: the port stops answering, its connections drop. */
  kill(port: number): void {
    const i = this.instances.get(port)!;
    i.alive = false;
    i.diedAt = Date.now();
    i.server.close();
    for (const s of i.sockets) s.destroy();
  }

  roleOf(port: number): string {
    const i = this.instances.get(port)!;
    return i.role === 'master' ? 'master' : `slave of ${i.master}`;
  }

  async close(): Promise<void> {
    for (const i of this.instances.values()) {
      for (const s of i.sockets) s.destroy();
      if (i.alive) await new Promise((r) => i.server.close(() => r(undefined)));
    }
  }

  private serve(instance: Instance, socket: Socket): void {
    instance.sockets.add(socket);
    socket.on('close', () => instance.sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer: Buffer = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      buffer = buffer.length ? Buffer.concat([buffer, data]) : data;
      for (;;) {
        const parsed = parseCommand(buffer);
        if (!parsed) break;
        buffer = buffer.subarray(parsed.used);
        socket.write(this.answer(instance, parsed.args));
      }
    });
  }

  private answer(i: Instance, args: string[]): string {
    const name = (args[0] ?? '').toUpperCase();
    if (name === 'PING') return '+PONG\r\n';
    if (name === 'INFO') return bulk(this.info(i));
    if (name === 'REPLICAOF' || name === 'SLAVEOF') {
      if ((args[1] ?? '').toUpperCase() === 'NO') {
        i.role = 'master';
        i.master = null;
      } else {
        i.role = 'slave';
        i.master = Number(args[2]);
      }
      return '+OK\r\n';
    }
    if (name === 'CONFIG' && (args[1] ?? '').toUpperCase() === 'GET') {
      const pattern = args[2] ?? '';
      const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
      const pairs = [...i.config].filter(([k]) => re.test(k)).flat();
      return `*${pairs.length}\r\n${pairs.map(bulk).join('')}`;
    }
    if (name === 'CONFIG' && (args[1] ?? '').toUpperCase() === 'SET') {
      for (let k = 2; k + 1 < args.length; k += 2) i.config.set(args[k]!, args[k + 1]!);
      return '+OK\r\n';
    }
    return '+OK\r\n';
  }

  private info(i: Instance): string {
    const lines = ['# Server', 'redis_version:7.0.15', 'loading:0', '# Replication', `role:${i.role}`];
    if (i.role === 'master') {
      const slaves = [...this.instances.values()].filter((s) => s.alive && s.role === 'slave' && s.master === i.port);
      lines.push(`connected_slaves:${slaves.length}`);
      slaves.forEach((s, n) => lines.push(`slave${n}:ip=127.0.0.1,port=${s.port},state=online,offset=1000,lag=0`));
      lines.push(`min_slaves_good_slaves:${slaves.length}`);
    } else {
      const master = this.instances.get(i.master!);
      const up = master?.alive === true;
      lines.push('master_host:127.0.0.1', `master_port:${i.master}`, `master_link_status:${up ? 'up' : 'down'}`, 'master_last_io_seconds_ago:0', 'master_sync_in_progress:0', 'slave_repl_offset:1000', 'slave_priority:100', 'slave_read_only:1', 'connected_slaves:0');
      if (!up) lines.push(`master_link_down_since_seconds:${Math.round((Date.now() - (master?.diedAt ?? Date.now())) / 1000)}`);
    }
    lines.push(`master_replid:${REPLID}`, 'master_replid2:0000000000000000000000000000000000000000', 'master_repl_offset:1000', 'second_repl_offset:-1', '# Keyspace', '');
    return lines.join('\r\n');
  }
}

function bulk(text: string): string {
  return `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
}

/** One RESP array of bulk strings (or an inline command) from the front of `b`, or null when incomplete. */
function parseCommand(b: Buffer): { args: string[]; used: number } | null {
  if (b.length === 0) return null;
  if (b[0] !== 42) {
    const end = b.indexOf('\r\n');
    if (end < 0) return null;
    return { args: b.toString('latin1', 0, end).split(' ').filter(Boolean), used: end + 2 };
  }
  let pos = b.indexOf('\r\n');
  if (pos < 0) return null;
  const count = Number(b.toString('latin1', 1, pos));
  pos += 2;
  const args: string[] = [];
  for (let n = 0; n < count; n++) {
    const end = b.indexOf('\r\n', pos);
    if (end < 0) return null;
    const len = Number(b.toString('latin1', pos + 1, end));
    if (end + 2 + len + 2 > b.length) return null;
    args.push(b.toString('latin1', end + 2, end + 2 + len));
    pos = end + 2 + len + 2;
  }
  return { args, used: pos };
}
