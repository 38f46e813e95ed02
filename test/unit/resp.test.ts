import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ProtocolError,
  ReplyReader,
  RequestParser,
  arrayElements,
  copyBytes,
  encodeCommand,
  encodeFor,
  isError,
  replyEnd,
  reply,
  reply3,
  type ParsedCommand,
} from '../../src/proxy/resp.js';

const MiB = 1024 * 1024;

/**
 * Feeds `pieces` the way the proxy's sockets do: each through one shared read buffer that is
 * overwritten right after the call, so that a parser keeping a view instead of a copy is caught.
 */
function feedShared(pieces: Buffer[], feed: (chunk: Buffer) => void): void {
  const shared = Buffer.alloc(Math.max(1, ...pieces.map((p) => p.length)));
  for (const p of pieces) {
    p.copy(shared);
    feed(shared.subarray(0, p.length));
    shared.fill(0x58); // 'X'
  }
}

function parseRequests(pieces: Buffer[], parser = new RequestParser()): string[][] {
  const out: string[][] = [];
  feedShared(pieces, (chunk) => parser.feed(chunk, (cmd: ParsedCommand) => out.push(cmd.argv.map((a) => a.toString('latin1')))));
  return out;
}

function readReplies(pieces: Buffer[], reader = new ReplyReader()): string[] {
  const out: Buffer[] = [];
  feedShared(pieces, (chunk) =>
    reader.feed(chunk, true, (b, start, end) => {
      out.push(b.subarray(start, end));
      return true;
    }),
  );
  // Read only after every piece went through: the replies handed out must be the receiver's own.
  return out.map((r) => r.toString('latin1'));
}

/** The stream cut at `cuts`. */
function cut(stream: Buffer, cuts: number[]): Buffer[] {
  const bounds = [0, ...cuts, stream.length];
  return bounds.slice(1).map((end, i) => stream.subarray(bounds[i]!, end));
}

/** A deterministic value of `size` bytes that contains CR, LF and every other byte. */
function value(size: number): Buffer {
  const b = Buffer.allocUnsafe(size + 3);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 7)) >>> 0, i);
  return b.subarray(0, size);
}

function chunks(stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += size) out.push(stream.subarray(i, i + size));
  return out;
}

afterEach(() => vi.restoreAllMocks());

describe('RequestParser', () => {
  const requests = Buffer.concat([
    encodeCommand(['SET', 'k', 'a\r\nb\r\n']),
    Buffer.from('PING\r\n'),
    encodeCommand(['GET', 'k']),
    Buffer.from('*0\r\n'),
    Buffer.from('GET  spaced   \r\n'),
    Buffer.from('\r\n'),
    encodeCommand(['MSET', 'a', '', 'b', 'x'.repeat(300)]),
    encodeCommand(['ECHO', Buffer.from([0, 13, 10, 255])]),
  ]);
  const expected = [
    ['SET', 'k', 'a\r\nb\r\n'],
    ['PING'],
    ['GET', 'k'],
    ['GET', 'spaced'],
    ['MSET', 'a', '', 'b', 'x'.repeat(300)],
    ['ECHO', '\0\r\n\xff'],
  ];

  it('parses requests split at every byte boundary as it parses them whole', () => {
    expect(parseRequests([requests])).toEqual(expected);
    for (let i = 1; i < requests.length; i++) expect(parseRequests(cut(requests, [i])), `cut at ${i}`).toEqual(expected);
  });

  it('parses requests split at every pair of byte boundaries, and byte by byte', () => {
    const short = requests.subarray(0, 60);
    const whole = parseRequests([short]);
    for (let i = 1; i < short.length; i++) {
      for (let j = i + 1; j < short.length; j++) expect(parseRequests(cut(short, [i, j])), `cuts at ${i}, ${j}`).toEqual(whole);
    }
    expect(parseRequests(chunks(requests, 1))).toEqual(expected);
  });

  it('holds only the incomplete request, and says how many bytes', () => {
    const parser = new RequestParser();
    const seen: string[][] = [];
    const onCommand = (cmd: ParsedCommand) => seen.push(cmd.argv.map(String));
    parser.feed(Buffer.from('*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r'), onCommand);
    expect(seen).toEqual([['PING']]);
    expect(parser.buffered).toBe(16);
    parser.feed(Buffer.from('\nk\r\n'), onCommand);
    expect(seen).toEqual([['PING'], ['GET', 'k']]);
    expect(parser.buffered).toBe(0);
  });

  it('takes a line completed by a read that brings more than 64 KiB of requests after it', () => {
    const parser = new RequestParser();
    let n = 0;
    parser.feed(Buffer.from('*2\r\n$3\r\nGET\r\n$1'), () => n++);
    const more = Buffer.concat([Buffer.from('\r\nk\r\n'), ...Array.from({ length: 5000 }, () => encodeCommand(['GET', 'k']))]);
    expect(more.length).toBeGreaterThan(64 * 1024);
    parser.feed(more, () => n++);
    expect(n).toBe(5001);
    expect(parser.buffered).toBe(0);
    // Only the bytes of the incomplete request were copied, not the requests after it.
    expect(parser.tailStats.copiedBytes).toBeLessThan(64);
  });

  it('takes a 64 MiB bulk fed in 64 KiB chunks with one buffer, each byte copied once, and no concat', () => {
    const big = value(64 * MiB);
    const stream = Buffer.concat([Buffer.from(`*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$${big.length}\r\n`), big, Buffer.from('\r\n'), encodeCommand(['PING'])]);
    const concat = vi.spyOn(Buffer, 'concat');
    const parser = new RequestParser();
    const seen: string[] = [];
    let equal = false;
    feedShared(chunks(stream, 64 * 1024), (chunk) =>
      parser.feed(chunk, (cmd) => {
        seen.push(cmd.spelledName);
        if (cmd.spelledName === 'SET') equal = cmd.argc === 3 && cmd.arg(1).toString() === 'big' && cmd.arg(2).equals(big);
      }),
    );
    expect(seen).toEqual(['SET', 'PING']);
    expect(equal).toBe(true);
    expect(concat).not.toHaveBeenCalled();
    expect(parser.tailStats.allocations).toBe(1);
    expect(parser.tailStats.copiedBytes).toBeLessThanOrEqual(big.length + 100);
    expect(parser.buffered).toBe(0);
  });

  it('stays linear for several big bulks in one request and for a request of many small arguments', () => {
    const parts = [value(8 * MiB), value(8 * MiB + 1), value(8 * MiB + 2)];
    const mset = encodeCommand(['MSET', 'a', parts[0]!, 'b', parts[1]!, 'c', parts[2]!]);
    const parser = new RequestParser();
    let ok = false;
    feedShared(chunks(mset, 64 * 1024), (chunk) => parser.feed(chunk, (cmd) => (ok = cmd.argc === 7 && cmd.arg(2).equals(parts[0]!) && cmd.arg(4).equals(parts[1]!) && cmd.arg(6).equals(parts[2]!))));
    expect(ok).toBe(true);
    // Growth at least doubles: the bytes copied stay within a small multiple of the request.
    expect(parser.tailStats.allocations).toBeLessThanOrEqual(4);
    expect(parser.tailStats.copiedBytes).toBeLessThanOrEqual(3 * mset.length);

    const many = encodeCommand(['DEL', ...Array.from({ length: 200_000 }, (_, i) => `key:${i}`)]);
    const small = new RequestParser();
    let argc = 0;
    feedShared(chunks(many, 16 * 1024), (chunk) => small.feed(chunk, (cmd) => (argc = cmd.argc)));
    expect(argc).toBe(200_001);
    expect(small.tailStats.copiedBytes).toBeLessThanOrEqual(3 * many.length);
  });

  describe('before AUTH', () => {
    const refuses = (header: string, message: RegExp) => {
      const parser = new RequestParser();
      parser.setAuthenticated(false);
      expect(() => parser.feed(Buffer.from(header), () => undefined)).toThrow(message);
      expect(parser.buffered).toBeLessThan(64);
    };

    it('refuses more than 10 arguments from the header alone', () => {
      refuses('*11\r\n', /^unauthenticated multibulk length$/);
      expect(() => parseRequests([Buffer.from('*11\r\n')])).not.toThrow();
    });

    it('refuses a bulk over 16384 bytes, and a 100 MB one, from its length line alone', () => {
      refuses('*2\r\n$3\r\nSET\r\n$16385\r\n', /^unauthenticated bulk length$/);
      refuses('*1\r\n$100000000\r\n', /^unauthenticated bulk length$/);
      // Split before the length line ends: still refused when it does, with nothing buffered.
      const parser = new RequestParser();
      parser.setAuthenticated(false);
      parser.feed(Buffer.from('*1\r\n$1000'), () => undefined);
      expect(() => parser.feed(Buffer.from('00000\r\n'), () => undefined)).toThrow(ProtocolError);
      expect(parser.buffered).toBeLessThan(64);
    });

    it('accepts requests within the limits', () => {
      const parser = new RequestParser();
      parser.setAuthenticated(false);
      const request = encodeCommand(['SET', 'k', 'x'.repeat(16384), 'a', 'b', 'c', 'd', 'e', 'f', 'g']);
      expect(parseRequests(chunks(request, 1000), parser)).toHaveLength(1);
    });

    it('takes the authenticated limits from the request after AUTH, in the same read', () => {
      const parser = new RequestParser();
      parser.setAuthenticated(false);
      const seen: number[] = [];
      const stream = Buffer.concat([encodeCommand(['AUTH', 'pw']), encodeCommand(['SET', 'k', value(100_000)])]);
      parser.feed(stream, (cmd) => {
        seen.push(cmd.argc);
        if (cmd.spelledName === 'AUTH') parser.setAuthenticated(true);
      });
      expect(seen).toEqual([2, 3]);
    });

    it('refuses an inline request, or a header line, longer than 64 KiB', () => {
      refuses('GET ' + 'x'.repeat(70_000), /too big inline request/);
      const parser = new RequestParser();
      parser.feed(Buffer.from('GET ' + 'x'.repeat(40_000)), () => undefined);
      expect(() => parser.feed(Buffer.from('x'.repeat(40_000)), () => undefined)).toThrow(/too big inline request/);
      expect(() => new RequestParser().feed(Buffer.from('*1' + '0'.repeat(70_000)), () => undefined)).toThrow(/too big mbulk count string/);
    });
  });

  it('an authenticated parser buffers a big bulk only as its bytes come', () => {
    const parser = new RequestParser();
    parser.feed(Buffer.from('*1\r\n$100000000\r\n'), () => undefined);
    expect(parser.buffered).toBe(16);
    expect(() => new RequestParser().feed(Buffer.from('*1\r\n$536870913\r\n'), () => undefined)).toThrow(/invalid bulk length/);
  });

  it('throws ProtocolError on garbage', () => {
    for (const garbage of ['*1\r\n?3\r\nfoo\r\n', '*x\r\n', '*1\n', '*1\r\n$-2\r\n', '*1\r\n$3\r\nfooXY', '*1\r\n$3\r\nfoo\r\n*2\r\n$a\r\n']) {
      expect(() => new RequestParser().feed(Buffer.from(garbage), () => undefined), JSON.stringify(garbage)).toThrow(ProtocolError);
    }
  });
});

describe('replies', () => {
  const resp3 = [
    '+OK\r\n',
    '-ERR no\r\n',
    ':42\r\n',
    '$5\r\nhe\r\nl\r\n',
    '$-1\r\n',
    '*-1\r\n',
    '*0\r\n',
    '_\r\n',
    ',3.14\r\n',
    ',inf\r\n',
    '#t\r\n',
    '(3492890328409238509324850943850943825024385\r\n',
    '!21\r\nSYNTAX invalid syntax\r\n',
    '=15\r\ntxt:Some string\r\n',
    '%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n*2\r\n:2\r\n_\r\n',
    '~3\r\n+a\r\n:1\r\n#f\r\n',
    // A map inside a push, with a set as one of its values.
    '>3\r\n$7\r\nmessage\r\n%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n,1.5\r\n',
    // An attribute annotates the reply after it: they are one reply.
    '|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n',
    // ... also inside an aggregate, and an empty attribute.
    '*3\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n$2\r\nv1\r\n|0\r\n_\r\n',
    '*2\r\n*1\r\n*0\r\n%0\r\n',
  ];

  it('delimits every RESP2 and RESP3 type, nested', () => {
    for (const r of resp3) {
      const b = Buffer.from(r);
      expect(replyEnd(b, 0), JSON.stringify(r)).toBe(b.length);
      // One byte less is incomplete, not an error.
      expect(replyEnd(b.subarray(0, b.length - 1), 0), JSON.stringify(r)).toBe(-1);
    }
  });

  it('splits a reply stream cut at every byte boundary as it splits it whole', () => {
    const stream = Buffer.from(resp3.join(''), 'latin1');
    expect(readReplies([stream])).toEqual(resp3);
    for (let i = 1; i < stream.length; i++) expect(readReplies(cut(stream, [i])), `cut at ${i}`).toEqual(resp3);
    expect(readReplies(chunks(stream, 1))).toEqual(resp3);
    expect(readReplies(chunks(stream, 7))).toEqual(resp3);
  });

  it('reads a 64 MiB reply fed in 64 KiB chunks with one buffer, each byte copied once, and no concat', () => {
    const big = value(64 * MiB);
    const stream = Buffer.concat([Buffer.from('+OK\r\n'), reply.bulk(big), Buffer.from(':1\r\n')]);
    const concat = vi.spyOn(Buffer, 'concat');
    const reader = new ReplyReader();
    const got: Buffer[] = [];
    feedShared(chunks(stream, 64 * 1024), (chunk) =>
      reader.feed(chunk, true, (b, start, end) => {
        got.push(b.subarray(start, end));
        return true;
      }),
    );
    expect(concat).not.toHaveBeenCalled();
    expect(got.map((r) => r.length)).toEqual([5, big.length + 13, 4]);
    expect(got[1]!.subarray(11, 11 + big.length).equals(big)).toBe(true);
    expect(reader.tailStats.allocations).toBe(1);
    expect(reader.tailStats.copiedBytes).toBeLessThanOrEqual(big.length + 100);
    expect(reader.buffered).toBe(0);
  });

  it('stops when the receiver says so', () => {
    const reader = new ReplyReader();
    const got: string[] = [];
    reader.feed(Buffer.from('+a\r\n+b\r\n+c\r\n'), false, (b, start, end) => got.push(b.toString('latin1', start, end)) < 2);
    expect(got).toEqual(['+a\r\n', '+b\r\n']);
  });

  it('throws ProtocolError on garbage', () => {
    for (const garbage of ['?x\r\n', '$3\r\nabcXY', '*1\r\n&\r\n', '+OK\n', '$-2\r\n', '%-1\r\n', '!-1\r\n', '*a\r\n']) {
      expect(() => replyEnd(Buffer.from(garbage), 0), JSON.stringify(garbage)).toThrow(ProtocolError);
      expect(() => new ReplyReader().feed(Buffer.from(garbage), false, () => true), JSON.stringify(garbage)).toThrow(ProtocolError);
    }
  });

  it('gives the elements of arrays, sets, pushes and maps (2n), after any attribute', () => {
    const s = (b: Buffer[]) => b.map(String);
    expect(s(arrayElements(Buffer.from('*2\r\n$1\r\na\r\n*1\r\n:1\r\n')))).toEqual(['$1\r\na\r\n', '*1\r\n:1\r\n']);
    expect(s(arrayElements(Buffer.from('~2\r\n+a\r\n_\r\n')))).toEqual(['+a\r\n', '_\r\n']);
    expect(s(arrayElements(Buffer.from('>2\r\n+a\r\n:1\r\n')))).toEqual(['+a\r\n', ':1\r\n']);
    expect(s(arrayElements(Buffer.from('%2\r\n+a\r\n:1\r\n+b\r\n%0\r\n')))).toEqual(['+a\r\n', ':1\r\n', '+b\r\n', '%0\r\n']);
    expect(s(arrayElements(Buffer.from('|1\r\n+a\r\n:1\r\n*1\r\n#t\r\n')))).toEqual(['#t\r\n']);
    expect(arrayElements(Buffer.from('*-1\r\n'))).toEqual([]);
    expect(() => arrayElements(Buffer.from('+OK\r\n'))).toThrow(ProtocolError);
  });

  it('counts simple and blob errors as errors', () => {
    expect(isError(Buffer.from('-ERR x\r\n'))).toBe(true);
    expect(isError(Buffer.from('!3\r\nERR\r\n'))).toBe(true);
    expect(isError(Buffer.from('+OK\r\n'))).toBe(false);
    expect(isError(Buffer.from('$3\r\nERR\r\n'))).toBe(false);
  });
});

describe('protocol-dependent replies', () => {
  const entries: [Buffer, Buffer][] = [
    [reply.bulk('a'), reply.integer(1)],
    [reply.bulk('b'), reply3.null],
  ];

  it('encodes RESP3 types', () => {
    expect(reply3.null.toString()).toBe('_\r\n');
    expect(reply3.map(entries).toString()).toBe('%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n');
    expect(reply3.set([reply.integer(1)]).toString()).toBe('~1\r\n:1\r\n');
    expect(reply3.push([reply.bulk('m')]).toString()).toBe('>1\r\n$1\r\nm\r\n');
    expect(reply3.boolean(true).toString()).toBe('#t\r\n');
    expect(reply3.double(-Infinity).toString()).toBe(',-inf\r\n');
    expect(reply3.verbatim('hi').toString()).toBe('=6\r\ntxt:hi\r\n');
    for (const r of [reply3.map(entries), reply3.set([]), reply3.verbatim('x\r\ny'), reply3.double(0.5)]) expect(replyEnd(r, 0)).toBe(r.length);
  });

  it('falls back to RESP2 for a RESP2 client', () => {
    const two = encodeFor(2);
    expect(two.null.toString()).toBe('$-1\r\n');
    expect(two.nullArray.toString()).toBe('*-1\r\n');
    expect(two.map([[reply.bulk('a'), reply.integer(1)]]).toString()).toBe('*2\r\n$1\r\na\r\n:1\r\n');
    expect(two.set([reply.integer(1)]).toString()).toBe('*1\r\n:1\r\n');
    expect(two.boolean(false).toString()).toBe(':0\r\n');
    expect(two.double(1.5).toString()).toBe('$3\r\n1.5\r\n');
    expect(two.verbatim('hi').toString()).toBe('$2\r\nhi\r\n');
    const three = encodeFor(3);
    expect(three.null).toBe(reply3.null);
    expect(three.map(entries).equals(reply3.map(entries))).toBe(true);
  });
});

describe('copyBytes', () => {
  it('copies exactly the range, by the byte loop and by Buffer#copy alike (lengths around the switch)', () => {
    const src = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 7 + 3) & 0xff));
    for (const n of [0, 1, 5, 31, 32, 33, 45, 64, 65, 150]) {
      const dst = Buffer.alloc(n + 20, 0xee);
      const end = copyBytes(src, 10, 10 + n, dst, 7);
      expect(end).toBe(7 + n);
      expect(dst.subarray(7, 7 + n).equals(src.subarray(10, 10 + n))).toBe(true);
      // Nothing outside the destination range is touched.
      expect(dst.subarray(0, 7).every((b) => b === 0xee)).toBe(true);
      expect(dst.subarray(7 + n).every((b) => b === 0xee)).toBe(true);
    }
  });
});
