/**
 * Replies leave the proxy as Redis writes them: the replies to one client read go out together
 * once that read's commands on the shared connections are all answered (one write for a pipeline
 * spread over shards, instead of one per shard), but never wait for a later read, a blocking
 * command or more than HOLD_REPLY_BYTES.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { slotOwners } from '../../src/model/route.js';
import { keySlot } from '../../src/model/slot.js';
import { waitFor } from '../../src/playground/processes.js';
import { encodeCommand, replyEnd } from '../../src/proxy/resp.js';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

/** A client socket that records every chunk the proxy wrote, with when it came. */
class ChunkRecorder {
  readonly chunks: { at: number; data: Buffer }[] = [];
  readonly started = Date.now();

  constructor(readonly socket: Socket) {
    socket.on('data', (data) => this.chunks.push({ at: Date.now() - this.started, data }));
    socket.on('error', () => undefined);
  }

  send(...commands: string[][]): void {
    this.socket.write(Buffer.concat(commands.map((c) => encodeCommand(c))));
  }

  /** Complete replies in what came so far. */
  replies(): string[] {
    const all = Buffer.concat(this.chunks.map((c) => c.data));
    const out: string[] = [];
    for (let at = 0; ; ) {
      const end = replyEnd(all, at);
      if (end === -1) return out;
      out.push(all.toString('latin1', at, end));
      at = end;
    }
  }
}

const sockets: Socket[] = [];
afterAll(() => sockets.forEach((s) => s.destroy()));

async function recorder(address: string): Promise<ChunkRecorder> {
  const i = address.lastIndexOf(':');
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect(Number(address.slice(i + 1)), address.slice(0, i), () => resolve(s));
    s.once('error', reject);
  });
  socket.setNoDelay(true);
  sockets.push(socket);
  return new ChunkRecorder(socket);
}

/** Two shards behind a proxy, and a key of each. */
async function setup(name: string) {
  const prefix = randomPrefix();
  const a = await world.redis();
  const b = await world.redis();
  const admin = world.admin(prefix);
  await admin.createCluster({ name, file: { shards: [{ master: a.address }, { master: b.address }] } });
  const route = await admin.route(name);
  const owners = slotOwners(route);
  const keyOn = (shard: number, tag: string) => {
    for (let n = 0; ; n++) if (owners[keySlot(`${tag}${n}`, route.slotCount)] === shard) return `${tag}${n}`;
  };
  const proxy = await proxies.start(world.etcd.endpoint, prefix, name);
  await redis.at(a.address).set(keyOn(0, 'ka'), 'on-a');
  await redis.at(b.address).set(keyOn(1, 'kb'), 'on-b');
  return { a, b, ka: keyOn(0, 'ka'), kb: keyOn(1, 'kb'), proxy };
}

/** Holds every command of `address` for `ms` (its clients' commands wait in Redis). */
async function pause(address: string, ms: number): Promise<void> {
  await redis.at(address).call('CLIENT', 'PAUSE', String(ms), 'ALL');
}

describe('replies to one read leave together', () => {
  it('answers a pipeline spread over two shards in one write, when the slower shard answers', async () => {
    const { b, ka, kb, proxy } = await setup('batch-one-write');
    const client = await recorder(proxy.listenAddress);
    await pause(b.address, 400);
    client.send(['GET', ka], ['GET', kb], ['GET', ka]);
    await waitFor('three replies', async () => client.replies().length === 3);
    expect(client.replies()).toEqual(['$4\r\non-a\r\n', '$4\r\non-b\r\n', '$4\r\non-a\r\n']);
    // The first reply was ready at once; it waited for the second instead of leaving alone.
    expect(client.chunks).toHaveLength(1);
    expect(client.chunks[0]!.at).toBeGreaterThanOrEqual(300);
  });

  it('does not hold a read\'s replies for a later read', async () => {
    const { a, b, ka, kb, proxy } = await setup('batch-later-read');
    const client = await recorder(proxy.listenAddress);
    await pause(a.address, 300);
    await pause(b.address, 1500);
    client.send(['GET', ka]);
    // A second read, sent while the first one's reply is still on its way (shard a is paused).
    await new Promise((r) => setTimeout(r, 50));
    client.send(['GET', kb]);
    await waitFor('the first reply', async () => client.replies().length >= 1);
    expect(client.replies()).toEqual(['$4\r\non-a\r\n']);
    expect(client.chunks[0]!.at).toBeLessThan(1200);
    await waitFor('the second reply', async () => client.replies().length === 2);
    expect(client.replies()[1]).toBe('$4\r\non-b\r\n');
  });

  it('does not hold the replies before a blocking command', async () => {
    const { ka, proxy } = await setup('batch-blocking');
    const client = await recorder(proxy.listenAddress);
    client.send(['SET', ka, 'x'], ['BLPOP', `${ka}:list`, '0']);
    await waitFor('the SET\'s reply while BLPOP waits', async () => client.replies().length === 1);
    expect(client.replies()).toEqual(['+OK\r\n']);
    const other = proxies.client(proxy);
    await other.rpush(`${ka}:list`, 'item');
    await waitFor('the BLPOP\'s reply', async () => client.replies().length === 2);
    expect(client.replies()[1]).toContain('item');
  });

  it('writes ready replies past the hold bound without waiting', async () => {
    const { a, b, ka, kb, proxy } = await setup('batch-big');
    const big = 'v'.repeat(200 * 1024);
    await redis.at(a.address).set(ka, big);
    const client = await recorder(proxy.listenAddress);
    await pause(b.address, 1500);
    client.send(['GET', ka], ['GET', kb]);
    await waitFor('the big reply', async () => client.replies().length >= 1);
    expect(client.replies()[0]).toBe(`$${big.length}\r\n${big}\r\n`);
    expect(client.replies()).toHaveLength(1);
    await waitFor('the paused shard\'s reply', async () => client.replies().length === 2);
  });
});
