import { describe, it, expect } from 'vitest';
import { address, clusterFileSchema, clusterName, failoverPolicy, instanceHealthSchema, parseInput, routeSchema } from '../../src/model/schemas.js';
import { ValidationError } from '../../src/model/errors.js';

function validRoute(): Record<string, unknown> & { shards: Record<string, unknown>[] } {
  return {
    format: 1,
    cluster: 'main',
    epoch: 3,
    slotCount: 1024,
    hash: 'crc16',
    shards: [
      { id: 's0', master: '10.0.0.1:6379', slaves: ['10.0.0.2:6379'], slots: [[0, 511]] },
      { id: 's1', master: '10.0.0.3:6379', slaves: [], slots: [[512, 1000], [1001, 1023]] },
    ],
    migrating: [],
    updatedAt: '2024-01-01T00:00:00.000Z',
  };
}

function routeErrors(value: unknown): string {
  const r = routeSchema.safeParse(value);
  expect(r.success).toBe(false);
  return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
}

describe('clusterName', () => {
  it.each(['main', 'a', 'prod-eu-1', '0cache', 'a'.repeat(63)])('accepts %j', (name) => {
    expect(clusterName.safeParse(name).success).toBe(true);
  });

  it.each(['', '-main', 'Main', 'main_1', 'main.1', 'with space', 'a'.repeat(64), 'é'])('rejects %j', (name) => {
    expect(clusterName.safeParse(name).success).toBe(false);
  });

  it('rejects non-strings', () => {
    expect(clusterName.safeParse(42).success).toBe(false);
    expect(clusterName.safeParse(null).success).toBe(false);
  });
});

describe('address', () => {
  it.each([
    ['127.0.0.1:6379', '127.0.0.1:6379'],
    ['redis-1.example.com:7000', 'redis-1.example.com:7000'],
    ['localhost:1', 'localhost:1'],
    ['host:65535', 'host:65535'],
  ])('accepts %j', (input, output) => {
    expect(address.parse(input)).toBe(output);
  });

  it('lower-cases the host', () => {
    expect(address.parse('Redis-A.Example.COM:6379')).toBe('redis-a.example.com:6379');
    expect(address.parse('LOCALHOST:6379')).toBe('localhost:6379');
  });

  it('trims surrounding whitespace', () => {
    expect(address.parse('  host:6379\n')).toBe('host:6379');
  });

  it('never yields a port spelled differently from the one INFO reports (no leading zeros)', () => {
    // parseReplicationInfo builds master addresses as `${host}:${Number(port)}`, and decide.ts
    // compares them with route addresses as strings: "host:06379" would never match "host:6379".
    const r = address.safeParse('host:06379');
    expect(!r.success || r.data === 'host:6379').toBe(true);
  });

  it.each([
    ['host:06379', 'host:6379'],
    ['10.0.0.1:0080', '10.0.0.1:80'],
    ['localhost:01', 'localhost:1'],
    ['h:065535', 'h:65535'],
    ['Redis-A.Example.COM:007000', 'redis-a.example.com:7000'],
    ['  host:06379\n', 'host:6379'],
  ])('normalises the port of %j to %j', (input, output) => {
    expect(address.parse(input)).toBe(output);
  });

  it.each([
    ['port 0 with leading zeros', 'localhost:0000'],
    ['port 65536 with a leading zero', 'localhost:065536'],
  ])('still rejects %s (%j)', (_, input) => {
    expect(address.safeParse(input).success).toBe(false);
  });

  it.each([
    ['missing port', 'localhost'],
    ['empty port', 'localhost:'],
    ['missing host', ':6379'],
    ['port 0', 'localhost:0'],
    ['port 70000', 'localhost:70000'],
    ['port 65536', 'localhost:65536'],
    ['negative port', 'localhost:-1'],
    ['non-numeric port', 'localhost:http'],
    ['fractional port', 'localhost:6379.5'],
    ['space in host', 'my host:6379'],
    ['space in port', 'localhost:63 79'],
    ['space before port', 'localhost: 6379'],
    ['underscore in host', 'my_host:6379'],
    ['scheme', 'redis://localhost:6379'],
    ['host ending in "-"', 'host-:6379'],
    ['empty label', 'a..b:6379'],
    ['empty', ''],
  ])('rejects %s (%j)', (_, input) => {
    expect(address.safeParse(input).success).toBe(false);
  });

  it('rejects non-strings', () => {
    expect(address.safeParse(6379).success).toBe(false);
  });
});

describe('routeSchema', () => {
  it('accepts a valid route and lower-cases its addresses', () => {
    const input = validRoute();
    input.shards[0]!.master = '10.0.0.1:6379';
    input.shards[1]!.master = 'Redis-B:6379';
    const route = routeSchema.parse(input);
    expect(route.shards[1]!.master).toBe('redis-b:6379');
    expect(route.shards[0]!.slots).toEqual([[0, 511]]);
    expect(route.epoch).toBe(3);
  });

  it('defaults slaves, slots and migrating', () => {
    const input = validRoute();
    delete input.migrating;
    input.shards = [{ id: 's0', master: 'a:1' }];
    const route = routeSchema.parse(input);
    expect(route.migrating).toEqual([]);
    expect(route.shards[0]).toEqual({ id: 's0', master: 'a:1', slaves: [], slots: [] });
  });

  it('accepts a route with unowned slots (that is not a structural error)', () => {
    const input = validRoute();
    input.shards[1]!.slots = [[600, 700]];
    expect(routeSchema.safeParse(input).success).toBe(true);
  });

  it('rejects overlapping slots between shards', () => {
    const input = validRoute();
    input.shards[1]!.slots = [[500, 1023]];
    expect(routeErrors(input)).toMatch(/slot 500 is owned by both s0 and s1/);
  });

  it('rejects overlapping ranges within one shard', () => {
    const input = validRoute();
    input.shards[0]!.slots = [[0, 300], [200, 511]];
    expect(routeErrors(input)).toMatch(/slot 200 is owned by both s0 and s0/);
  });

  it('rejects a slot beyond slotCount', () => {
    const input = validRoute();
    input.shards[1]!.slots = [[512, 1024]];
    expect(routeErrors(input)).toMatch(/outside 0\.\.1023/);
  });

  it('rejects a slot range with first > last, and negative slots', () => {
    const a = validRoute();
    a.shards[0]!.slots = [[10, 5]];
    expect(routeSchema.safeParse(a).success).toBe(false);
    const b = validRoute();
    b.shards[0]!.slots = [[-1, 5]];
    expect(routeSchema.safeParse(b).success).toBe(false);
  });

  it('rejects a duplicate shard id', () => {
    const input = validRoute();
    input.shards[1]!.id = 's0';
    expect(routeErrors(input)).toMatch(/shard id s0 appears twice/);
  });

  it('rejects an instance in two shards, even spelled in another case', () => {
    const input = validRoute();
    input.shards[1]!.slaves = ['10.0.0.2:6379'];
    expect(routeErrors(input)).toMatch(/instance 10\.0\.0\.2:6379 is in shard s0 and in shard s1/);
    const cased = validRoute();
    cased.shards[0]!.master = 'redis-a:6379';
    cased.shards[1]!.master = 'REDIS-A:6379';
    expect(routeErrors(cased)).toMatch(/instance redis-a:6379 is in shard s0 and in shard s1/);
  });

  it('normalises ports in a route, and sees one instance spelled with and without leading zeros', () => {
    const input = validRoute();
    input.shards[0]!.master = '10.0.0.1:06379';
    input.shards[0]!.slaves = ['10.0.0.2:0006379'];
    const route = routeSchema.parse(input);
    expect(route.shards[0]!.master).toBe('10.0.0.1:6379');
    expect(route.shards[0]!.slaves).toEqual(['10.0.0.2:6379']);
    const twice = validRoute();
    twice.shards[1]!.slaves = ['10.0.0.2:06379'];
    expect(routeErrors(twice)).toMatch(/instance 10\.0\.0\.2:6379 is in shard s0 and in shard s1/);
  });

  it('rejects an instance that is both master and slave of its shard', () => {
    const input = validRoute();
    input.shards[0]!.slaves = ['10.0.0.1:6379'];
    expect(routeSchema.safeParse(input).success).toBe(false);
  });

  it('rejects an unknown field, at the top and in a shard', () => {
    expect(routeErrors({ ...validRoute(), owner: 'me' })).toMatch(/owner/);
    const input = validRoute();
    input.shards[0]!.weight = 2;
    expect(routeErrors(input)).toMatch(/weight/);
  });

  it('rejects epoch 0 (and non-integer epochs)', () => {
    expect(routeErrors({ ...validRoute(), epoch: 0 })).toMatch(/^epoch:/m);
    expect(routeSchema.safeParse({ ...validRoute(), epoch: 1.5 }).success).toBe(false);
    expect(routeSchema.safeParse({ ...validRoute(), epoch: 1 }).success).toBe(true);
  });

  it('rejects a wrong format, hash or slot count', () => {
    expect(routeSchema.safeParse({ ...validRoute(), format: 2 }).success).toBe(false);
    expect(routeSchema.safeParse({ ...validRoute(), hash: 'md5' }).success).toBe(false);
    expect(routeSchema.safeParse({ ...validRoute(), slotCount: 0 }).success).toBe(false);
    expect(routeSchema.safeParse({ ...validRoute(), slotCount: 16385 }).success).toBe(false);
  });

  it('rejects an invalid instance address in a shard', () => {
    const input = validRoute();
    input.shards[0]!.master = '10.0.0.1';
    expect(routeErrors(input)).toMatch(/^shards\.0\.master:/m);
  });
});

describe('clusterFileSchema', () => {
  it('accepts a minimal and a full file', () => {
    expect(clusterFileSchema.parse({})).toEqual({ shards: [] });
    const file = clusterFileSchema.parse({
      name: 'main',
      slots: 1024,
      probe: { intervalMs: 500 },
      shards: [{ master: 'A:1', slaves: ['b:2'] }, { id: 'x', master: 'c:3' }],
    });
    expect(file.shards).toEqual([
      { master: 'a:1', slaves: ['b:2'] },
      { id: 'x', master: 'c:3', slaves: [] },
    ]);
    expect(file.probe?.intervalMs).toBe(500);
  });

  it('rejects an unknown key, at the top, in probe, and in a shard', () => {
    expect(clusterFileSchema.safeParse({ name: 'main', replicas: 2 }).success).toBe(false);
    expect(clusterFileSchema.safeParse({ probe: { every: 5 } }).success).toBe(false);
    expect(clusterFileSchema.safeParse({ shards: [{ master: 'a:1', slots: [[0, 1]] }] }).success).toBe(false);
  });

  it('rejects out-of-range values', () => {
    expect(clusterFileSchema.safeParse({ slots: 16385 }).success).toBe(false);
    expect(clusterFileSchema.safeParse({ probe: { intervalMs: 10 } }).success).toBe(false);
    expect(clusterFileSchema.safeParse({ name: 'Bad Name' }).success).toBe(false);
  });
});

describe('failoverPolicy write fence', () => {
  it('is on by default, with a 2 s lag bound', () => {
    expect(failoverPolicy.parse({})).toMatchObject({ writeFence: true, writeFenceLagSeconds: 2 });
    expect(failoverPolicy.parse({ writeFence: false, writeFenceLagSeconds: 5 })).toMatchObject({ writeFence: false, writeFenceLagSeconds: 5 });
  });

  it.each([
    [0, /writeFenceLagSeconds: .*>=1/],
    [61, /writeFenceLagSeconds: .*<=60/],
    [1.5, /writeFenceLagSeconds: the write fence lag is whole seconds/],
    ['2', /writeFenceLagSeconds: .*expected number/],
  ])('refuses a lag bound of %j with a ValidationError', (lag, message) => {
    expect(() => parseInput(clusterFileSchema, { failover: { writeFenceLagSeconds: lag } }, 'cluster file')).toThrow(ValidationError);
    expect(() => parseInput(clusterFileSchema, { failover: { writeFenceLagSeconds: lag } }, 'cluster file')).toThrow(message);
  });

  it('refuses a writeFence that is not a boolean', () => {
    expect(() => parseInput(clusterFileSchema, { failover: { writeFence: 'yes' } }, 'cluster file')).toThrow(/failover\.writeFence: .*expected boolean/);
  });
});

describe('instanceHealthSchema', () => {
  const view = {
    address: '10.0.0.1:06379',
    reachable: false,
    role: 'unknown',
    masterAddress: null,
    linkUp: null,
    linkDownSinceSec: null,
    offset: null,
    connectedSlaves: null,
    error: 'timeout',
    lastOkAt: null,
    since: '2024-01-01T00:00:00.000Z',
    observedAt: '2024-01-01T00:00:00.000Z',
    controller: 'ctl-1',
  };

  it('reads a view written before down, priority and replId existed, with their defaults', () => {
    const h = instanceHealthSchema.parse(view);
    expect(h).toMatchObject({ down: false, priority: null, replId: null });
    expect(h.address).toBe('10.0.0.1:6379');
  });

  it('keeps down, priority and replId when present', () => {
    expect(instanceHealthSchema.parse({ ...view, down: true, priority: 0, replId: 'abc' })).toMatchObject({ down: true, priority: 0, replId: 'abc' });
  });

  it('rejects a non-boolean down and an unknown field', () => {
    expect(instanceHealthSchema.safeParse({ ...view, down: 'yes' }).success).toBe(false);
    expect(instanceHealthSchema.safeParse({ ...view, weight: 1 }).success).toBe(false);
  });
});

describe('parseInput', () => {
  it('returns the parsed value on success', () => {
    expect(parseInput(address, 'HOST:1', 'address')).toBe('host:1');
    expect(parseInput(address, 'HOST:0001', 'address')).toBe('host:1');
  });

  it('throws a ValidationError naming what and the field', () => {
    let caught: unknown;
    try {
      parseInput(clusterFileSchema, { name: 'main', shards: [{ master: 'a:1' }, { master: 'nope' }] }, 'cluster file');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const err = caught as ValidationError;
    expect(err.code).toBe('VALIDATION');
    expect(err.name).toBe('ValidationError');
    expect(err.message).toMatch(/^invalid cluster file: /);
    expect(err.message).toContain('shards.1.master');
    expect(err.message).toContain('HOST:PORT');
  });

  it('names an unknown key', () => {
    expect(() => parseInput(clusterFileSchema, { replicas: 2 }, 'cluster file')).toThrow(/replicas/);
  });

  it('reports every problem of a route, joined', () => {
    const input = validRoute();
    input.shards[1]!.id = 's0';
    input.shards[1]!.slots = [[500, 1023]];
    let message = '';
    try {
      parseInput(routeSchema, input, 'route');
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/^invalid route: /);
    expect(message).toContain('shard id s0 appears twice');
    expect(message).toContain('slot 500 is owned by both s0 and s0');
    expect(message).toContain('; ');
  });
});
