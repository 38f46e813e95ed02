import { describe, expect, it } from 'vitest';
import { commandInfo, commandInfoAt } from '../../src/proxy/commands.js';

describe('command lookup by the bytes of its name', () => {
  it('gives the same answer as the lookup by string, for every spelling and length', () => {
    const names = ['GET', 'get', 'Set', 'SET', 'HSET', 'hget', 'LPUSH', 'RPUSH', 'ZADD', 'PING', 'DEL', 'EVALSHA', 'BZPOPMIN', 'XREADGROUP', 'NOSUCH', 'A', 'gets', 'geT\u00ff'];
    for (const name of names) {
      const bytes = Buffer.from(`xx${name}yy`, 'latin1');
      const viaBytes = commandInfoAt(bytes, 2, 2 + Buffer.byteLength(name, 'latin1'));
      expect(viaBytes, name).toEqual(commandInfo(name));
    }
  });

  it('never mixes up names of one length, nor a name with its prefix', () => {
    const seen = new Map<string, string>();
    for (const name of ['GET', 'SET', 'DEL', 'TTL', 'GE', 'G', 'GETS', 'GETSET', 'INCR', 'DECR']) {
      const info = commandInfoAt(Buffer.from(name), 0, name.length);
      seen.set(name, info.name);
    }
    expect([...seen]).toEqual([...seen.keys()].map((n) => [n, n]));
  });
});
