import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useProxies } from '../helpers/proxy.js';
import { useRedisClients } from '../helpers/redis.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
const redis = useRedisClients();
const proxies = useProxies();

const MiB = 1024 * 1024;

async function setup(name: string) {
  const prefix = randomPrefix();
  const master = await world.redis();
  await world.admin(prefix).createCluster({ name, file: { shards: [{ master: master.address }] } });
  const proxy = await proxies.start(world.etcd.endpoint, prefix, name);
  return { master, proxy };
}

function rawClient(address: string): Promise<Socket> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) }, () => resolve(s));
    s.once('error', reject);
  });
}

function write(s: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => s.write(data, (err) => (err ? reject(err) : resolve())));
}

describe('big values through the proxy', () => {
  it('round-trips a 64 MiB value byte-exact (SET then GET)', async () => {
    const { master, proxy } = await setup('big');
    const client = proxies.client(proxy);
    const big = randomBytes(64 * MiB);
    expect(await client.set('big', big)).toBe('OK');
    expect((await redis.at(master.address).strlen('big'))).toBe(big.length);
    const back = await client.getBuffer('big');
    expect(back?.length).toBe(big.length);
    expect(back!.equals(big)).toBe(true);
    // And the connection goes on with small commands.
    expect(await client.ping()).toBe('PONG');
  });

  it("answers another client's PING while a 16 MiB SET is half received, then finishes the SET", async () => {
    const { proxy } = await setup('half');
    const value = randomBytes(16 * MiB);
    const request = Buffer.concat([Buffer.from(`*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$${value.length}\r\n`), value, Buffer.from('\r\n')]);
    const a = await rawClient(proxy.listenAddress);
    let answer = '';
    a.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    await write(a, request.subarray(0, request.length >> 1));

    const b = proxies.client(proxy);
    const started = Date.now();
    expect(await b.ping()).toBe('PONG');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(answer).toBe(''); // A's SET is not complete: nothing for it yet

    await write(a, request.subarray(request.length >> 1));
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`no +OK for the SET; got ${JSON.stringify(answer)}`)), 20_000);
      const check = () => {
        if (answer.length >= 5) {
          clearTimeout(deadline);
          resolve();
        } else setTimeout(check, 10);
      };
      check();
    });
    expect(answer).toBe('+OK\r\n');
    a.destroy();
    const back = await b.getBuffer('half');
    expect(back!.equals(value)).toBe(true);
  });
});
