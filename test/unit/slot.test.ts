import { describe, it, expect } from 'vitest';
import { crc16, hashedRange, keySlot } from '../../src/model/slot.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Bit-by-bit CRC16-XMODEM, independent of the table-driven implementation under test. */
function referenceCrc16(buf: Uint8Array): number {
  let crc = 0;
  for (const b of buf) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

describe('crc16', () => {
  it('matches the CRC16-XMODEM check value for "123456789"', () => {
    expect(crc16(bytes('123456789'))).toBe(0x31c3);
  });

  it('is 0 for empty input', () => {
    expect(crc16(new Uint8Array(0))).toBe(0);
  });

  it('matches known single-byte values', () => {
    expect(crc16(bytes('A'))).toBe(0x58e5);
    expect(crc16(Uint8Array.of(0xff))).toBe(0x1ef0);
    expect(crc16(Uint8Array.of(0x00))).toBe(0x0000);
  });

  it('hashes only [start, end) of the buffer', () => {
    const buf = bytes('xx123456789yy');
    expect(crc16(buf, 2, 11)).toBe(0x31c3);
    expect(crc16(buf, 2, 2)).toBe(0);
    expect(crc16(buf)).not.toBe(0x31c3);
  });

  it('agrees with a bitwise reference implementation on every byte value and on random buffers', () => {
    for (let b = 0; b < 256; b++) expect(crc16(Uint8Array.of(b, 255 - b, b ^ 0x5a))).toBe(referenceCrc16(Uint8Array.of(b, 255 - b, b ^ 0x5a)));
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let n = 0; n < 50; n++) {
      const buf = Uint8Array.from({ length: 1 + n * 7 }, rand);
      expect(crc16(buf)).toBe(referenceCrc16(buf));
    }
  });

  it('always returns a 16-bit value', () => {
    const buf = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) & 0xff);
    const c = crc16(buf);
    expect(Number.isInteger(c)).toBe(true);
    expect(c).toBeGreaterThanOrEqual(0);
    expect(c).toBeLessThan(0x10000);
  });
});

describe('keySlot with 16384 slots (Redis Cluster values)', () => {
  // Values from CLUSTER KEYSLOT of redis-server 7.0.
  const known: [string, number][] = [
    ['foo', 12182],
    ['bar', 5061],
    ['hello', 866],
    ['somekey', 11058],
    ['123456789', 12739],
    ['user1000', 3443],
    ['{}', 15257],
    ['a{b', 13340],
    ['{bar', 4015],
  ];
  for (const [key, slot] of known) {
    it(`keySlot(${JSON.stringify(key)}) = ${slot}`, () => {
      expect(keySlot(key, 16384)).toBe(slot);
    });
  }

  it('the empty key is slot 0', () => {
    expect(keySlot('', 16384)).toBe(0);
    expect(keySlot(new Uint8Array(0), 1024)).toBe(0);
  });
});

describe('hash tags', () => {
  it('keys with the same tag map to the same slot, that of the tag itself', () => {
    const a = keySlot('{user1000}.following', 16384);
    const b = keySlot('{user1000}.followers', 16384);
    expect(a).toBe(b);
    expect(a).toBe(keySlot('user1000', 16384));
    expect(a).toBe(3443);
    // Without the braces the two keys differ.
    expect(keySlot('user1000.following', 16384)).not.toBe(keySlot('user1000.followers', 16384));
  });

  it('foo{}{bar}: an empty first tag means the whole key is hashed', () => {
    const key = bytes('foo{}{bar}');
    expect(hashedRange(key)).toEqual([0, key.length]);
    expect(keySlot('foo{}{bar}', 16384)).toBe(crc16(key) % 16384);
    expect(keySlot('foo{}{bar}', 16384)).toBe(8363);
    expect(keySlot('foo{}{bar}', 16384)).not.toBe(keySlot('bar', 16384));
  });

  it('foo{{bar}}zap hashes "{bar"', () => {
    const key = bytes('foo{{bar}}zap');
    const [from, to] = hashedRange(key);
    expect(key.subarray(from, to).toString()).toBe('{bar');
    expect(keySlot('foo{{bar}}zap', 16384)).toBe(keySlot('{bar', 16384));
    expect(keySlot('foo{{bar}}zap', 16384)).toBe(4015);
  });

  it('foo{bar}{zap} hashes "bar" (only the first tag counts)', () => {
    const key = bytes('foo{bar}{zap}');
    const [from, to] = hashedRange(key);
    expect(key.subarray(from, to).toString()).toBe('bar');
    expect(keySlot('foo{bar}{zap}', 16384)).toBe(keySlot('bar', 16384));
    expect(keySlot('foo{bar}{zap}', 16384)).not.toBe(keySlot('zap', 16384));
  });

  it('an unclosed "{" means the whole key is hashed', () => {
    expect(hashedRange(bytes('a{b'))).toEqual([0, 3]);
    expect(hashedRange(bytes('abc{'))).toEqual([0, 4]);
    expect(keySlot('a{b', 16384)).toBe(crc16(bytes('a{b')) % 16384);
  });

  it('a "}" before the first "{" is ignored', () => {
    const key = bytes('}x{tag}y');
    const [from, to] = hashedRange(key);
    expect(key.subarray(from, to).toString()).toBe('tag');
  });

  it('a key without braces is hashed whole', () => {
    expect(hashedRange(bytes('plain-key'))).toEqual([0, 9]);
    expect(hashedRange(new Uint8Array(0))).toEqual([0, 0]);
  });

  it('a tag that is exactly the whole key still hashes only its inside', () => {
    expect(keySlot('{abc}', 16384)).toBe(keySlot('abc', 16384));
  });

  it('respects start and end bounds', () => {
    const key = bytes('{x}foo{bar}');
    // Inside [3, 11): "foo{bar}" → tag "bar".
    expect(hashedRange(key, 3, 11)).toEqual([7, 10]);
    // Inside [3, 9): "foo{ba" → no closing brace → the whole range.
    expect(hashedRange(key, 3, 9)).toEqual([3, 9]);
  });

  it('multi-byte UTF-8 tags hash their bytes', () => {
    expect(keySlot('{é}1', 16384)).toBe(keySlot('{é}2', 16384));
    expect(keySlot('{é}1', 16384)).toBe(crc16(bytes('é')) % 16384);
  });
});

describe('slot count', () => {
  it('takes the CRC modulo the slot count', () => {
    for (const key of ['foo', 'bar', 'hello', '{user1000}.x', 'somekey', '123456789']) {
      const full = keySlot(key, 16384);
      expect(keySlot(key, 1024)).toBe(full % 1024);
      expect(keySlot(key, 1000)).toBe(crc16(bytes(key.startsWith('{user1000}') ? 'user1000' : key)) % 1000);
      expect(keySlot(key, 1)).toBe(0);
    }
    expect(keySlot('foo', 1024)).toBe(12182 % 1024);
    expect(keySlot('123456789', 7)).toBe(0x31c3 % 7);
  });

  it('always returns a slot in [0, slotCount)', () => {
    for (const n of [1, 2, 3, 1024, 4096, 16384]) {
      for (let i = 0; i < 200; i++) {
        const s = keySlot(`key:${i}`, n);
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThan(n);
      }
    }
  });
});

describe('Buffer and string keys', () => {
  it('give the same slot for the same bytes', () => {
    for (const key of ['foo', '{user1000}.following', 'foo{{bar}}zap', 'ключ', '日本語{タグ}', 'emoji😀', '']) {
      expect(keySlot(Buffer.from(key), 16384)).toBe(keySlot(key, 16384));
      expect(keySlot(new Uint8Array(Buffer.from(key)), 1024)).toBe(keySlot(key, 1024));
    }
  });

  it('hash strings as UTF-8', () => {
    expect(keySlot('é', 16384)).toBe(crc16(Uint8Array.of(0xc3, 0xa9)) % 16384);
    expect(keySlot('é', 16384)).not.toBe(crc16(Uint8Array.of(0xe9)) % 16384);
  });

  it('handle binary keys with bytes that are not valid UTF-8', () => {
    const key = Uint8Array.of(0xff, 0x7b, 0x00, 0x7d, 0x80);
    expect(hashedRange(key)).toEqual([2, 3]);
    expect(keySlot(key, 16384)).toBe(crc16(Uint8Array.of(0x00)) % 16384);
  });
});
