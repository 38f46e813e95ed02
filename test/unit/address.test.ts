import { describe, expect, it } from 'vitest';
import { parseHostPort, splitAddress } from '../../src/model/address.js';
import { ValidationError } from '../../src/model/errors.js';
import { address } from '../../src/model/schemas.js';

describe('the host:port parser', () => {
  it('splits at the last colon, so that an IPv6 host keeps its own', () => {
    expect(parseHostPort('127.0.0.1:6379')).toEqual({ host: '127.0.0.1', port: 6379 });
    expect(parseHostPort('redis-a.local:0')).toEqual({ host: 'redis-a.local', port: 0 });
    expect(parseHostPort('::1:7000')).toEqual({ host: '::1', port: 7000 });
  });

  it('finds nothing without a host, a colon or a numeric port', () => {
    for (const bad of ['', 'localhost', ':6379', 'h:', 'h:63x9', 'h:-1', 'h: 1']) expect(parseHostPort(bad), bad).toBeNull();
  });

  it('makes a malformed address a ValidationError that names it', () => {
    expect(splitAddress('h:06379')).toEqual({ host: 'h', port: 6379 });
    expect(() => splitAddress('localhost')).toThrow(ValidationError);
    expect(() => splitAddress('localhost')).toThrow('localhost is not HOST:PORT');
  });

  it('is what the instance address schema validates and spells with', () => {
    expect(address.parse(' Redis-A:06379 ')).toBe('redis-a:6379');
    for (const bad of ['redis-a', 'redis-a:0', 'redis-a:65536', 'redis_a:1', ':1']) expect(address.safeParse(bad).success, bad).toBe(false);
  });
});
