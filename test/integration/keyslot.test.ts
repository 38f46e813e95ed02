/**
 * keySlot against a real redis-server: with 16384 slots it must be exactly CLUSTER KEYSLOT, and
 * with fewer slots it must be CLUSTER KEYSLOT modulo the slot count.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { keySlot } from '../../src/model/slot.js';
import { useWorld } from '../helpers/servers.js';

const world = useWorld();
let client: Redis;

beforeAll(async () => {
  // CLUSTER KEYSLOT only answers on a cluster-enabled node; no slots need to be assigned for it.
  const configFile = join(world.dir, `nodes-keyslot-${randomBytes(4).toString('hex')}.conf`);
  const redis = await world.redis(['--cluster-enabled', 'yes', '--cluster-config-file', configFile]);
  client = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
});

afterAll(async () => {
  if (client) await client.quit();
});

async function realSlot(key: string | Buffer): Promise<number> {
  const reply = await client.call('CLUSTER', 'KEYSLOT', key);
  if (typeof reply !== 'number') throw new Error(`CLUSTER KEYSLOT answered ${String(reply)}`);
  return reply;
}

/** A small deterministic PRNG, so that a failure can be reproduced. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function testKeys(): (string | Buffer)[] {
  const rand = prng(20240531);
  const int = (n: number) => Math.floor(rand() * n);
  const ascii = (len: number) => Array.from({ length: len }, () => String.fromCharCode(32 + int(95))).join('');
  const keys: (string | Buffer)[] = [
    '',
    'foo',
    'bar',
    '123456789',
    '{user1000}.following',
    '{user1000}.followers',
    'foo{}{bar}',
    'foo{{bar}}zap',
    'foo{bar}{zap}',
    '{bar',
    '{}',
    '{',
    '}',
    '}{',
    '{{}}',
    'a{b',
    'a}b{c}',
    '{abc}',
    '{a}{b}',
    'x{}y',
    'x{ }y',
    'ключ{тег}1',
    '日本語{タグ}',
    'emoji😀{😀}',
    'é',
    Buffer.from([0]),
    Buffer.from([0xff, 0xfe, 0xfd]),
    Buffer.from([0xff, 0x7b, 0x00, 0x7d, 0x80]),
    Buffer.from([0x7b, 0x7d, 0x7b, 0x01, 0x7d]),
  ];
  // Random printable ASCII (which includes "{" and "}" now and then).
  for (let i = 0; i < 110; i++) keys.push(ascii(1 + int(40)));
  // Random keys with a hash tag somewhere, some with an empty tag, some with a second tag.
  for (let i = 0; i < 80; i++) {
    const tag = int(5) === 0 ? '' : ascii(1 + int(10)).replace(/[{}]/g, '');
    const extra = int(3) === 0 ? `{${ascii(3)}}` : '';
    keys.push(`${ascii(int(8))}{${tag}}${ascii(int(8))}${extra}`);
  }
  // Random binary keys.
  for (let i = 0; i < 50; i++) keys.push(Buffer.from(Array.from({ length: 1 + int(30) }, () => int(256))));
  // Random UTF-8 beyond ASCII.
  for (let i = 0; i < 40; i++) {
    const chars = Array.from({ length: 1 + int(12) }, () => {
      const pick = int(4);
      if (pick === 0) return String.fromCodePoint(0x80 + int(0x780));
      if (pick === 1) return String.fromCodePoint(0x4e00 + int(0x5000));
      if (pick === 2) return String.fromCodePoint(0x1f600 + int(0x50));
      return int(6) === 0 ? '{' : int(5) === 0 ? '}' : String.fromCharCode(97 + int(26));
    });
    keys.push(chars.join(''));
  }
  return keys;
}

describe('keySlot against CLUSTER KEYSLOT of a real redis-server', () => {
  const keys = testKeys();

  it('uses enough keys, including binary and tagged ones', () => {
    expect(keys.length).toBeGreaterThanOrEqual(300);
    expect(keys.filter((k) => Buffer.isBuffer(k)).length).toBeGreaterThanOrEqual(50);
  });

  it('the server answers CLUSTER KEYSLOT for known keys', async () => {
    expect(await realSlot('foo')).toBe(12182);
    expect(await realSlot('{user1000}.following')).toBe(await realSlot('{user1000}.followers'));
  });

  it('keySlot(key, 16384) equals CLUSTER KEYSLOT for every key', async () => {
    const mismatches: string[] = [];
    for (const key of keys) {
      const real = await realSlot(key);
      const ours = keySlot(key, 16384);
      if (ours !== real) mismatches.push(`${JSON.stringify(Buffer.from(key).toString('hex'))}: ours ${ours}, redis ${real}`);
    }
    expect(mismatches).toEqual([]);
  });

  it('keySlot(key, 1024) equals CLUSTER KEYSLOT % 1024 for every key', async () => {
    const mismatches: string[] = [];
    const distinct = new Set<number>();
    for (const key of keys) {
      const real = (await realSlot(key)) % 1024;
      const ours = keySlot(key, 1024);
      distinct.add(ours);
      if (ours !== real) mismatches.push(`${JSON.stringify(Buffer.from(key).toString('hex'))}: ours ${ours}, redis % 1024 ${real}`);
    }
    expect(mismatches).toEqual([]);
    // The keys are spread over many slots (a constant keySlot would not pass this).
    expect(distinct.size).toBeGreaterThan(150);
  });

  it('string and Buffer forms of the same key agree with the server', async () => {
    for (const key of ['ключ{тег}1', '日本語{タグ}', 'foo{{bar}}zap']) {
      const real = await realSlot(Buffer.from(key));
      expect(keySlot(Buffer.from(key), 16384)).toBe(real);
      expect(keySlot(key, 16384)).toBe(real);
    }
  });
});
