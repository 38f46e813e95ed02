import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { parseFullSyncProgress, parseInfoFields, parseReplicationInfo } from '../../src/redis/info.js';
import { RedisError } from '../../src/model/errors.js';

/** Redis sends INFO with CRLF line ends. */
const crlf = (lines: string[]): string => lines.join('\r\n') + '\r\n';

// Captured from redis-server 7.0.15.
const MASTER = crlf([
  '# Replication',
  'role:master',
  'connected_slaves:2',
  'slave0:ip=127.0.0.1,port=16502,state=online,offset=50,lag=0',
  'slave1:ip=127.0.0.1,port=16503,state=wait_bgsave,offset=0,lag=0',
  'master_failover_state:no-failover',
  'master_replid:b8975a66e1df29ec04eafb398584c6d790688381',
  'master_replid2:0000000000000000000000000000000000000000',
  'master_repl_offset:50',
  'second_repl_offset:-1',
  'repl_backlog_active:1',
  'repl_backlog_size:1048576',
  'repl_backlog_first_byte_offset:1',
  'repl_backlog_histlen:50',
]);

const SLAVE_UP = crlf([
  '# Replication',
  'role:slave',
  'master_host:127.0.0.1',
  'master_port:16501',
  'master_link_status:up',
  'master_last_io_seconds_ago:0',
  'master_sync_in_progress:0',
  'slave_read_repl_offset:50',
  'slave_repl_offset:48',
  'slave_priority:100',
  'slave_read_only:1',
  'replica_announced:1',
  'connected_slaves:0',
  'master_failover_state:no-failover',
  'master_replid:b8975a66e1df29ec04eafb398584c6d790688381',
  'master_replid2:0000000000000000000000000000000000000000',
  'master_repl_offset:50',
  'second_repl_offset:-1',
  'repl_backlog_active:1',
  'repl_backlog_size:1048576',
  'repl_backlog_first_byte_offset:1',
  'repl_backlog_histlen:50',
]);

const SLAVE_DOWN = crlf([
  '# Replication',
  'role:slave',
  'master_host:Redis-A.example.com',
  'master_port:16501',
  'master_link_status:down',
  'master_last_io_seconds_ago:-1',
  'master_sync_in_progress:0',
  'slave_read_repl_offset:87',
  'slave_repl_offset:87',
  'master_link_down_since_seconds:2',
  'slave_priority:100',
  'slave_read_only:1',
  'replica_announced:1',
  'connected_slaves:1',
  'slave0:ip=127.0.0.1,port=16504,state=online,offset=87,lag=1',
  'master_failover_state:no-failover',
  'master_replid:c328afc7c90be68ee26106ca910c28025f520f3a',
  'master_replid2:0000000000000000000000000000000000000000',
  'master_repl_offset:87',
  'second_repl_offset:-1',
  'repl_backlog_active:1',
  'repl_backlog_size:1048576',
  'repl_backlog_first_byte_offset:1',
  'repl_backlog_histlen:87',
]);

/** A slave that never reached its master. */
const SLAVE_NEVER_UP = crlf([
  '# Replication',
  'role:slave',
  'master_host:127.0.0.1',
  'master_port:16599',
  'master_link_status:down',
  'master_last_io_seconds_ago:-1',
  'master_sync_in_progress:0',
  'slave_read_repl_offset:1',
  'slave_repl_offset:1',
  'master_link_down_since_seconds:-1',
  'slave_priority:100',
  'slave_read_only:1',
  'replica_announced:1',
  'connected_slaves:0',
  'master_failover_state:no-failover',
  'master_replid:46f40e62b83d98a6e4249f8d3bc1304b07193a90',
  'master_replid2:0000000000000000000000000000000000000000',
  'master_repl_offset:0',
  'second_repl_offset:-1',
]);

// Captured from redis-server 7.0.15 with INFO replication keyspace: a slave just promoted
// (REPLICAOF NO ONE) at offset 50, then its old master after one more write.
const PROMOTED = crlf([
  '# Replication',
  'role:master',
  'connected_slaves:0',
  'master_failover_state:no-failover',
  'master_replid:8294a81b5683cf970e0a31198dc06ec93a27872d',
  'master_replid2:e058e2f9b133640e932c70a92fc5e8509b220069',
  'master_repl_offset:50',
  'second_repl_offset:51',
  'repl_backlog_active:1',
  'repl_backlog_size:1048576',
  'repl_backlog_first_byte_offset:1',
  'repl_backlog_histlen:50',
  '',
  '# Keyspace',
  'db0:keys=1,expires=0,avg_ttl=0',
]);

const OLD_MASTER_AFTER_WRITE = crlf([
  '# Replication',
  'role:master',
  'connected_slaves:0',
  'master_failover_state:no-failover',
  'master_replid:e058e2f9b133640e932c70a92fc5e8509b220069',
  'master_replid2:0000000000000000000000000000000000000000',
  'master_repl_offset:78',
  'second_repl_offset:-1',
  'repl_backlog_active:1',
  'repl_backlog_size:1048576',
  'repl_backlog_first_byte_offset:1',
  'repl_backlog_histlen:78',
]);

function expectRedisError(input: unknown, message: RegExp): void {
  let caught: unknown;
  try {
    parseReplicationInfo(input);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(RedisError);
  expect((caught as RedisError).code).toBe('REDIS');
  expect((caught as Error).message).toMatch(message);
}

describe('parseInfoFields', () => {
  it('splits on the first colon and skips comments and blank lines', () => {
    const fields = parseInfoFields('# Replication\r\nrole:master\r\n\r\nslave0:ip=1.2.3.4,port=6379\r\nweird\r\n');
    expect(fields.get('role')).toBe('master');
    expect(fields.get('slave0')).toBe('ip=1.2.3.4,port=6379');
    expect(fields.has('# Replication')).toBe(false);
    expect(fields.has('weird')).toBe(false);
    expect(fields.size).toBe(2);
  });

  it('accepts LF line ends too', () => {
    expect(parseInfoFields('role:slave\nmaster_port:1\n').get('master_port')).toBe('1');
  });
});

describe('parseReplicationInfo', () => {
  it('parses a master with connected slaves', () => {
    expect(parseReplicationInfo(MASTER)).toEqual({
      role: 'master',
      masterAddress: null,
      linkUp: null,
      linkDownSinceSec: null,
      offset: 50,
      connectedSlaves: 2,
      replId: 'b8975a66e1df29ec04eafb398584c6d790688381',
      replId2: null,
      secondReplOffset: null,
      masterReplOffset: 50,
      keys: null,
      priority: null,
      onlineSlaveLagsSec: [0],
    });
  });

  it("lists the lags of a master's online slaves, leaving out those still syncing", () => {
    expect(parseReplicationInfo(MASTER).onlineSlaveLagsSec).toEqual([0]);
    expect(parseReplicationInfo(MASTER.replace('state=wait_bgsave,offset=0,lag=0', 'state=online,offset=50,lag=3')).onlineSlaveLagsSec).toEqual([0, 3]);
    // Without a readable lag it is not counted, and the reply is still good.
    expect(parseReplicationInfo(MASTER.replace('offset=50,lag=0', 'offset=50')).onlineSlaveLagsSec).toEqual([]);
  });

  it('reads min_slaves_good_slaves as the write fence being on, and its absence as off', () => {
    expect(parseReplicationInfo(MASTER).goodSlaves).toBeUndefined();
    const fenced = MASTER.replace(/(connected_slaves:\d+\r\n)/, '$1min_slaves_good_slaves:1\r\n');
    expect(fenced).not.toBe(MASTER);
    expect(parseReplicationInfo(fenced).goodSlaves).toBe(1);
    expect(parseReplicationInfo(fenced.replace('min_slaves_good_slaves:1', 'min_slaves_good_slaves:0')).goodSlaves).toBe(0);
    expectRedisError(fenced.replace('min_slaves_good_slaves:1', 'min_slaves_good_slaves:many'), /min_slaves_good_slaves is not an integer/);
  });

  it('parses a promoted slave: the history it left and where it branched, and its key count', () => {
    expect(parseReplicationInfo(PROMOTED)).toMatchObject({
      role: 'master',
      offset: 50,
      replId: '8294a81b5683cf970e0a31198dc06ec93a27872d',
      replId2: 'e058e2f9b133640e932c70a92fc5e8509b220069',
      secondReplOffset: 51,
      masterReplOffset: 50,
      keys: 1,
    });
  });

  it('parses an old master that took a write after its slave was promoted', () => {
    expect(parseReplicationInfo(OLD_MASTER_AFTER_WRITE)).toMatchObject({
      replId: 'e058e2f9b133640e932c70a92fc5e8509b220069',
      replId2: null,
      secondReplOffset: null,
      offset: 78,
      keys: null,
    });
  });

  it('counts keys over all databases; an empty keyspace section is 0 keys', () => {
    const two = PROMOTED.replace('db0:keys=1,expires=0,avg_ttl=0', 'db0:keys=4,expires=1,avg_ttl=9\r\ndb3:keys=6,expires=0,avg_ttl=0');
    expect(parseReplicationInfo(two).keys).toBe(10);
    expect(parseReplicationInfo(PROMOTED.replace('db0:keys=1,expires=0,avg_ttl=0\r\n', '')).keys).toBe(0);
    expectRedisError(PROMOTED.replace('keys=1', 'keys=x'), /db0 has no key count/);
  });

  it("takes a slave's master_repl_offset apart from its processed offset", () => {
    const info = parseReplicationInfo(SLAVE_UP);
    expect(info).toMatchObject({ offset: 48, masterReplOffset: 50, replId2: null, secondReplOffset: null });
  });

  it('parses a slave whose link is up, taking the processed offset', () => {
    expect(parseReplicationInfo(SLAVE_UP)).toEqual({
      role: 'slave',
      masterAddress: '127.0.0.1:16501',
      linkUp: true,
      linkDownSinceSec: null,
      offset: 48,
      connectedSlaves: 0,
      replId: 'b8975a66e1df29ec04eafb398584c6d790688381',
      replId2: null,
      secondReplOffset: null,
      masterReplOffset: 50,
      keys: null,
      priority: 100,
    });
  });

  it('parses a slave whose link is down, lower-casing the master host', () => {
    expect(parseReplicationInfo(SLAVE_DOWN)).toEqual({
      role: 'slave',
      masterAddress: 'redis-a.example.com:16501',
      linkUp: false,
      linkDownSinceSec: 2,
      offset: 87,
      connectedSlaves: 1,
      replId: 'c328afc7c90be68ee26106ca910c28025f520f3a',
      replId2: null,
      secondReplOffset: null,
      masterReplOffset: 87,
      keys: null,
      priority: 100,
    });
  });

  it('reports -1 seconds for a slave whose link was never up', () => {
    const info = parseReplicationInfo(SLAVE_NEVER_UP);
    expect(info.linkUp).toBe(false);
    expect(info.linkDownSinceSec).toBe(-1);
    expect(info.masterAddress).toBe('127.0.0.1:16599');
    expect(info.offset).toBe(1);
    expect(info.priority).toBe(100);
  });

  it("parses a slave's replica-priority 0 (never to be promoted) as 0, not null", () => {
    const info = parseReplicationInfo(SLAVE_UP.replace('slave_priority:100', 'slave_priority:0'));
    expect(info.role).toBe('slave');
    expect(info.priority).toBe(0);
    expect(parseReplicationInfo(SLAVE_DOWN.replace('slave_priority:100', 'slave_priority:25')).priority).toBe(25);
  });

  it('gives a master no priority, even if its INFO had a slave_priority line', () => {
    expect(parseReplicationInfo(MASTER.replace('role:master', 'role:master\r\nslave_priority:0')).priority).toBeNull();
  });

  it('falls back to master_repl_offset and 0 connected slaves for an older slave', () => {
    const text = crlf(['role:slave', 'master_host:h', 'master_port:1', 'master_link_status:up', 'master_repl_offset:77']);
    const info = parseReplicationInfo(text);
    expect(info.offset).toBe(77);
    expect(info.connectedSlaves).toBe(0);
    expect(info.replId).toBeNull();
    expect(info.priority).toBeNull();
  });

  it.each([
    ['a number', 42, /expected text, got number/],
    ['null', null, /expected text, got object/],
    ['a Buffer', Buffer.from('role:master'), /expected text/],
    ['empty text', '', /unknown role \(missing\)/],
    ['text without a role', crlf(['# Replication', 'connected_slaves:0', 'master_repl_offset:0']), /unknown role \(missing\)/],
    ['an unknown role', crlf(['role:sentinel', 'master_repl_offset:0']), /unknown role sentinel/],
    ['a "replica" role (INFO says "slave")', crlf(['role:replica']), /unknown role replica/],
    ['an error reply as text', '-ERR unknown command', /unknown role/],
  ])('rejects %s', (_, input, message) => {
    expectRedisError(input, message);
  });

  it('rejects a master with a non-integer or missing offset', () => {
    expectRedisError(MASTER.replace('master_repl_offset:50', 'master_repl_offset:5x0'), /master_repl_offset is not an integer \(5x0\)/);
    expectRedisError(MASTER.replace('master_repl_offset:50', 'master_repl_offset:1.5'), /master_repl_offset is not an integer/);
    expectRedisError(MASTER.replace('master_repl_offset:50\r\n', ''), /master_repl_offset is missing/);
    expectRedisError(MASTER.replace('connected_slaves:2', 'connected_slaves:two'), /connected_slaves/);
  });

  it('rejects a slave with a non-integer offset or port', () => {
    expectRedisError(SLAVE_UP.replace('slave_repl_offset:48', 'slave_repl_offset:abc'), /slave_repl_offset is not an integer/);
    expectRedisError(SLAVE_UP.replace('master_port:16501', 'master_port:'), /master_port/);
    expectRedisError(SLAVE_UP.replace('master_port:16501\r\n', ''), /master_port is missing/);
  });

  it('rejects a slave with a non-integer priority', () => {
    expectRedisError(SLAVE_UP.replace('slave_priority:100', 'slave_priority:high'), /slave_priority is not an integer \(high\)/);
    expectRedisError(SLAVE_UP.replace('slave_priority:100', 'slave_priority:'), /slave_priority is not an integer/);
  });

  it('rejects a slave without master_host or with an unknown link status', () => {
    expectRedisError(SLAVE_UP.replace('master_host:127.0.0.1\r\n', ''), /without master_host/);
    expectRedisError(SLAVE_UP.replace('master_link_status:up', 'master_link_status:sync'), /master_link_status is sync/);
    expectRedisError(SLAVE_UP.replace('master_link_status:up\r\n', ''), /master_link_status is missing/);
  });

  it('rejects a down link without master_link_down_since_seconds', () => {
    expectRedisError(SLAVE_DOWN.replace('master_link_down_since_seconds:2\r\n', ''), /master_link_down_since_seconds is missing/);
  });
});

/** `INFO replication` then `INFO persistence` of a replica, captured from redis-server 7.0.15 (docs/split.md). */
const captured = (name: string): string => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');

describe('parseFullSyncProgress', () => {
  it('reads the bytes loaded from the socket in a diskless load, with no total (the master_sync_* bytes stay 0 then)', () => {
    const text = captured('info-full-sync-diskless-load-7.0.15.txt');
    expect(text).toMatch(/master_sync_read_bytes:0\r\n/);
    expect(parseFullSyncProgress(text)).toEqual({ phase: 'load', bytes: 32765, totalBytes: null });
  });
  it('reads the bytes received while the RDB goes to disk first', () => {
    expect(parseFullSyncProgress(captured('info-full-sync-disk-transfer-7.0.15.txt'))).toEqual({ phase: 'transfer', bytes: 16346, totalBytes: null });
  });
  it('takes a known total: the size of a file being loaded, or of an RDB a disk-based master sends', () => {
    expect(parseFullSyncProgress('loading:1\r\nasync_loading:0\r\nloading_total_bytes:900\r\nloading_loaded_bytes:300\r\n')).toEqual({ phase: 'load', bytes: 300, totalBytes: 900 });
    expect(parseFullSyncProgress('master_sync_in_progress:1\r\nmaster_sync_total_bytes:800\r\nmaster_sync_read_bytes:200\r\nloading:0\r\n')).toEqual({ phase: 'transfer', bytes: 200, totalBytes: 800 });
    expect(parseFullSyncProgress('master_sync_in_progress:1\r\nmaster_sync_total_bytes:-1\r\nmaster_sync_read_bytes:200\r\nloading:0\r\n')?.totalBytes).toBeNull();
  });
  it('is null once the sync is over', () => {
    expect(parseFullSyncProgress(captured('info-after-full-sync-7.0.15.txt'))).toBeNull();
  });
  it('rejects a sync in progress without its byte count', () => {
    expect(() => parseFullSyncProgress('master_sync_in_progress:1\r\nmaster_sync_total_bytes:0\r\n')).toThrow(RedisError);
    expect(() => parseFullSyncProgress(42)).toThrow(RedisError);
  });
});
