/**
 * RESP2 on the proxy's hot path: requests are split into arguments by position and replies are
 * delimited by position — values are never decoded, bytes are forwarded as they came.
 */

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const CR = 13;
const LF = 10;
const STAR = 42; // *
const DOLLAR = 36; // $
const MAX_ARGS = 1024 * 1024;
const MAX_BULK = 512 * 1024 * 1024;

/** Reads the decimal integer at buf[start, end) (the bytes before a CRLF). */
function readInt(buf: Buffer, start: number, end: number): number {
  let i = start;
  let negative = false;
  if (buf[i] === 45) {
    negative = true;
    i++;
  }
  if (i >= end) throw new ProtocolError('expected a number');
  let n = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) throw new ProtocolError('expected a number');
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

/** Index of the CR of the next CRLF at or after `from`, or -1 when not yet received. */
function lineEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf(LF, from);
  if (i === -1) return -1;
  if (i === from || buf[i - 1] !== CR) throw new ProtocolError('expected CRLF');
  return i - 1;
}

/**
 * One request as received: the byte ranges of its arguments in the received buffer. Arguments are
 * materialised as Buffers only when asked for — the hot path (one key, forwarded as is) needs
 * none. The parser reuses one ParsedCommand for every request: it is valid only during the
 * onCommand call, and whoever keeps anything copies it.
 */
export class ParsedCommand {
  private argvCache: Buffer[] | null = null;
  buf: Buffer = Buffer.alloc(0);
  start = 0;
  end = 0;
  argc = 0;
  /** [start0, end0, start1, end1, ...] of the arguments in `buf` (only the first 2 × argc count). */
  readonly offsets: number[] = [];

  /** Makes this the request at buf[start, end) whose arguments were just written to `offsets`. */
  reset(buf: Buffer, start: number, end: number, argc: number): this {
    this.buf = buf;
    this.start = start;
    this.end = end;
    this.argc = argc;
    this.argvCache = null;
    return this;
  }

  arg(i: number): Buffer {
    return this.buf.subarray(this.offsets[2 * i]!, this.offsets[2 * i + 1]!);
  }

  get argv(): Buffer[] {
    if (!this.argvCache) this.argvCache = Array.from({ length: this.argc }, (_, i) => this.arg(i));
    return this.argvCache;
  }

  /** The command name as the client spelled it. */
  get spelledName(): string {
    return this.buf.latin1Slice(this.offsets[0]!, this.offsets[1]!);
  }

  /** The whole command as received, ready to forward (multibulk form). */
  get raw(): Buffer {
    return this.buf.subarray(this.start, this.end);
  }
}

declare module 'node:buffer' {
  interface Buffer {
    latin1Slice(start: number, end: number): string;
  }
}

/**
 * Incremental parser of client requests: multibulk (`*N\r\n$len\r\n...`) as every client library
 * sends, and inline commands (`PING\r\n`) as telnet users type.
 */
export class RequestParser {
  private rest: Buffer | null = null;
  private readonly cmd = new ParsedCommand();

  /** Parses every complete command in `chunk` (after what was left over); keeps the incomplete tail. */
  feed(chunk: Buffer, onCommand: (cmd: ParsedCommand) => void): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = null;
    let pos = 0;
    while (pos < buf.length) {
      const end = buf[pos] === STAR ? this.multibulk(buf, pos, onCommand) : this.inline(buf, pos, onCommand);
      if (end === -1) {
        this.rest = Buffer.from(buf.subarray(pos)); // `chunk` may be reused by the caller
        return;
      }
      pos = end;
    }
  }

  private multibulk(buf: Buffer, start: number, onCommand: (cmd: ParsedCommand) => void): number {
    const headerEnd = lineEnd(buf, start);
    if (headerEnd === -1) return -1;
    const count = readInt(buf, start + 1, headerEnd);
    if (count > MAX_ARGS) throw new ProtocolError('invalid multibulk length');
    let pos = headerEnd + 2;
    if (count <= 0) return pos; // an empty request: Redis ignores it too
    const offsets = this.cmd.offsets;
    for (let i = 0; i < count; i++) {
      if (pos >= buf.length) return -1;
      if (buf[pos] !== DOLLAR) throw new ProtocolError(`expected '$', got '${String.fromCharCode(buf[pos]!)}'`);
      const lenEnd = lineEnd(buf, pos);
      if (lenEnd === -1) return -1;
      const len = readInt(buf, pos + 1, lenEnd);
      if (len < 0 || len > MAX_BULK) throw new ProtocolError('invalid bulk length');
      const dataStart = lenEnd + 2;
      const dataEnd = dataStart + len;
      if (dataEnd + 2 > buf.length) return -1;
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) throw new ProtocolError('expected CRLF after bulk data');
      offsets[2 * i] = dataStart;
      offsets[2 * i + 1] = dataEnd;
      pos = dataEnd + 2;
    }
    onCommand(this.cmd.reset(buf, start, pos, count));
    return pos;
  }

  private inline(buf: Buffer, start: number, onCommand: (cmd: ParsedCommand) => void): number {
    const nl = buf.indexOf(LF, start);
    if (nl === -1) {
      if (buf.length - start > 64 * 1024) throw new ProtocolError('too big inline request');
      return -1;
    }
    const line = buf.subarray(start, nl > start && buf[nl - 1] === CR ? nl - 1 : nl).toString('latin1').trim();
    if (line.length > 0) {
      // Inline commands are rare (telnet): re-encode as multibulk and parse that.
      const encoded = encodeCommand(line.split(/\s+/).map((a) => Buffer.from(a, 'latin1')));
      this.multibulk(encoded, 0, onCommand);
    }
    return nl + 1;
  }
}

/**
 * End offset of the one complete reply that starts at `pos`, or -1 if it has not fully arrived.
 * Nested arrays are walked without recursion.
 */
export function replyEnd(buf: Buffer, pos: number): number {
  let pending = 1;
  while (pending > 0) {
    if (pos >= buf.length) return -1;
    const type = buf[pos]!;
    const end = lineEnd(buf, pos);
    if (end === -1) return -1;
    pending--;
    if (type === DOLLAR || type === 33 || type === 61) {
      const len = readInt(buf, pos + 1, end);
      pos = end + 2;
      if (len >= 0) {
        pos += len + 2;
        if (pos > buf.length) return -1;
      }
    } else if (type === STAR || type === 126 || type === 62) {
      const n = readInt(buf, pos + 1, end);
      pos = end + 2;
      if (n > 0) pending += n;
    } else if (type === 37 || type === 124) {
      // a map, or an attribute (whose annotated reply follows it)
      const n = readInt(buf, pos + 1, end);
      pos = end + 2;
      pending += 2 * n + (type === 124 ? 1 : 0);
    } else if (type === 43 || type === 45 || type === 58 || type === 95 || type === 44 || type === 35 || type === 40) {
      pos = end + 2; // + - :
    } else {
      throw new ProtocolError(`unexpected reply type '${String.fromCharCode(type)}'`);
    }
  }
  return pos;
}

/** The element replies of an array reply (for merging MGET answers). */
export function arrayElements(reply: Buffer): Buffer[] {
  if (reply[0] !== STAR && reply[0] !== 126 && reply[0] !== 62) throw new ProtocolError('expected an array reply');
  const end = lineEnd(reply, 0);
  const n = readInt(reply, 1, end);
  const out: Buffer[] = [];
  let pos = end + 2;
  for (let i = 0; i < n; i++) {
    const next = replyEnd(reply, pos);
    if (next === -1) throw new ProtocolError('truncated array reply');
    out.push(reply.subarray(pos, next));
    pos = next;
  }
  return out;
}

/** The value of an integer reply, or null for any other reply. */
export function integerReply(reply: Buffer): number | null {
  if (reply[0] !== 58) return null;
  return readInt(reply, 1, lineEnd(reply, 0));
}

export function isError(reply: Buffer): boolean {
  return reply[0] === 45;
}

export function encodeCommand(argv: (Buffer | string)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${argv.length}\r\n`)];
  for (const a of argv) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}

const CRLF = Buffer.from('\r\n');

export const reply = {
  ok: Buffer.from('+OK\r\n'),
  pong: Buffer.from('+PONG\r\n'),
  queued: Buffer.from('+QUEUED\r\n'),
  simple: (s: string) => Buffer.from(`+${s}\r\n`),
  error: (message: string) => Buffer.from(`-${message.replace(/[\r\n]+/g, ' ')}\r\n`),
  integer: (n: number | bigint) => Buffer.from(`:${n}\r\n`),
  bulk: (b: Buffer | string | null) => {
    if (b === null) return Buffer.from('$-1\r\n');
    const data = typeof b === 'string' ? Buffer.from(b) : b;
    return Buffer.concat([Buffer.from(`$${data.length}\r\n`), data, CRLF]);
  },
  array: (items: Buffer[]) => Buffer.concat([Buffer.from(`*${items.length}\r\n`), ...items]),
};

/** The bytes of a bulk string reply; null for a null reply (`$-1` or RESP3 `_`). Throws for others. */
export function bulkValue(r: Buffer): Buffer | null {
  if (r[0] === 95) return null;
  if (r[0] !== DOLLAR) throw new ProtocolError('expected a bulk reply');
  const crlf = r.indexOf(CR);
  const len = readInt(r, 1, crlf);
  return len < 0 ? null : r.subarray(crlf + 2, crlf + 2 + len);
}
