import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeReply, parseCommandReply } from '../../src/proxy/command-parse.js';
import { tableProblem } from '../../src/proxy/command-source.js';
import { COMMAND_TABLE } from '../../src/proxy/command-table.js';
import { commandInfo, commandTable, keyIndexes, useCommandTable } from '../../src/proxy/commands.js';

/** `COMMAND INFO get set mget ...` as redis-server 7.0.15 answered it (RESP2), trimmed to 14 commands. */
const recorded = readFileSync(new URL('../fixtures/command-info-7.0.15.resp', import.meta.url));
const argv = (...args: string[]) => args.map((a) => Buffer.from(a));

describe('COMMAND parsing', () => {
  afterEach(() => useCommandTable(COMMAND_TABLE));

  it('reads a recorded COMMAND reply into the same specs as the generated table', () => {
    const table = parseCommandReply(decodeReply(recorded));
    expect(Object.keys(table).sort()).toEqual(['BLMPOP', 'CONFIG', 'EVAL', 'GEORADIUS', 'GET', 'LCS', 'MGET', 'MIGRATE', 'MSET', 'OBJECT', 'SET', 'SUBSCRIBE', 'XREAD', 'ZUNIONSTORE']);
    for (const [name, spec] of Object.entries(table)) expect(spec, name).toEqual(COMMAND_TABLE[name]);
    expect(table['GET']).toEqual({ arity: 2, flags: ['readonly', 'fast'], acl: [], keys: [{ begin: { index: 1 }, find: { lastkey: 0, step: 1, limit: 0 } }] });
    expect(table['GEORADIUS']!.keys[1]).toEqual({ begin: { keyword: 'STORE', startfrom: 6 }, find: { lastkey: 0, step: 1, limit: 0 } });
    expect(table['EVAL']!.keys[0]).toEqual({ begin: { index: 2 }, find: { keynumidx: 0, firstkey: 1, step: 1 } });
    expect(table['OBJECT']!.container).toBe(true);
    expect(table['OBJECT']!.subcommands!['ENCODING']!.keys[0]!.begin).toEqual({ index: 2 });
    expect(table['SUBSCRIBE']!.flags).toContain('pubsub');
  });

  it('finds key positions with the parsed table in use', () => {
    const recordedTable = parseCommandReply(decodeReply(recorded));
    useCommandTable(recordedTable);
    expect(commandTable()).toBe(recordedTable);
    expect(keyIndexes('GET', argv('GET', 'k'))).toEqual([1]);
    expect(keyIndexes('MSET', argv('MSET', 'a', '1', 'b', '2'))).toEqual([1, 3]);
    expect(keyIndexes('MGET', argv('MGET', 'a', 'b', 'c'))).toEqual([1, 2, 3]);
    expect(keyIndexes('EVAL', argv('EVAL', 'return 1', '2', 'x', 'y', 'arg'))).toEqual([3, 4]);
    expect(keyIndexes('GEORADIUS', argv('GEORADIUS', 'src', '0', '0', '1', 'km', 'STORE', 'dst'))).toEqual([1, 7]);
    expect(keyIndexes('MIGRATE', argv('MIGRATE', 'h', '1', '', '0', '5', 'KEYS', 'a', 'b'))).toEqual([3, 7, 8]); // the empty key argument counts, as in Redis
    expect(keyIndexes('XREAD', argv('XREAD', 'COUNT', '2', 'STREAMS', 's1', 's2', '0', '0'))).toEqual([4, 5]);
    expect(keyIndexes('ZUNIONSTORE', argv('ZUNIONSTORE', 'd', '2', 'a', 'b'))).toEqual([1, 3, 4]);
    expect(keyIndexes('BLMPOP', argv('BLMPOP', '0', '2', 'l1', 'l2', 'LEFT'))).toEqual([3, 4]);
    expect(keyIndexes('LCS', argv('LCS', 'a', 'b'))).toEqual([1, 2]);
    expect(keyIndexes('OBJECT', argv('OBJECT', 'ENCODING', 'k'))).toEqual([2]);
    expect(keyIndexes('OBJECT', argv('OBJECT', 'HELP'))).toEqual([]);
    // The per-name cache follows the table: a command the recorded table does not know is unknown now.
    expect(commandInfo('get').singleFirstKey).toBe(true);
    expect(commandInfo('hset').handling).toEqual({ kind: 'refused', reason: "unknown command 'HSET'" });
    useCommandTable(COMMAND_TABLE);
    expect(commandInfo('hset').handling).toEqual({ kind: 'keyed' });
  });

  it('refuses what is not a Redis 7 command table', () => {
    expect(() => parseCommandReply(decodeReply(Buffer.from('-ERR unknown command\r\n')))).toThrow(/not answer a list/);
    expect(() => parseCommandReply([['get', 2, ['readonly'], 1, 1, 1]])).toThrow(/expected 10/);
    expect(tableProblem(parseCommandReply(decodeReply(recorded)))).toMatch(/only 14 commands/);
    expect(tableProblem(COMMAND_TABLE)).toBeNull();
    const wrong = { ...COMMAND_TABLE, GET: { ...COMMAND_TABLE['GET']!, keys: [] } };
    expect(tableProblem(wrong)).toMatch(/GET/);
  });
});
