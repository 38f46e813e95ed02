/**
 * RESP on the proxy's hot path: requests are split into arguments by position and replies
 * (RESP2 or RESP3) are delimited by position — values are never decoded, bytes are forwarded as
 * they came.
 */

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const CR = 13;
const LF = 10;
const STAR = 42; // *
const DOLLAR = 36; // $
const PLUS = 43; // +
const MINUS = 45; // -
const COLON = 58; // :
// RESP3
const NULL = 95; // _
const DOUBLE = 44; // ,
const BOOLEAN = 35; // #
const BIG_NUMBER = 40; // (
const BLOB_ERROR = 33; // !
const VERBATIM = 61; // =
const MAP = 37; // %
const SET = 126; // ~
const PUSH = 62; // >
const ATTRIBUTE = 124; // |

// Redis's limits: proto-max-bulk-len (512 MB) and 1M arguments; before AUTH, 10 arguments of
// 16 KiB; a line (inline request, or a header not ended yet) of 64 KiB.
const MAX_ARGS = 1024 * 1024;
const MAX_BULK = 512 * 1024 * 1024;
const UNAUTH_MAX_ARGS = 10;
const UNAUTH_MAX_BULK = 16 * 1024;
const MAX_LINE = 64 * 1024;
/**
 * Finishing an incomplete request or reply, the first lines of a read are added one at a time, so
 * that a small one costs a small copy; after that many, the rest of the read at once, so that one
 * made of many small parts is scanned in bulk.
 */
const LINE_STEPS = 8;
/** A request parser keeps its tail buffer for the next tail up to this size. */
const TAIL_REUSE_MAX = 64 * 1024;

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

/** Digits a length line may have for the quick read below: more go the general way. */
const QUICK_DIGITS = 15;

/**
 * The common length line, read in one pass: decimal digits from `at`, then CRLF, all received.
 * Returns where the line ends (past its LF) with the number in `quick.value`, or -1 for anything
 * else — incomplete, signed, malformed, long — which the general way (lineEnd + readInt) then reads
 * or refuses exactly as before. Saves the native indexOf call per header of a small request.
 */
const quick = { value: 0 };
function quickLength(buf: Buffer, at: number): number {
  const limit = Math.min(buf.length, at + QUICK_DIGITS);
  let n = 0;
  let i = at;
  for (; i < limit; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) break;
    n = n * 10 + d;
  }
  if (i === at || i + 1 >= buf.length || buf[i] !== CR || buf[i + 1] !== LF) return -1;
  quick.value = n;
  return i + 2;
}

/** Bytes a one-line reply may have for the quick scan below: longer ones go the general way. */
const QUICK_LINE = 64;

/**
 * The CR of a short line's CRLF (`+OK`, `:1`), scanned in place from `from`; -1 for anything else
 * (not yet received, long, a bare CR or LF), which lineEnd then reads or refuses as before.
 */
function shortLineEnd(buf: Buffer, from: number): number {
  const limit = Math.min(buf.length - 1, from + QUICK_LINE);
  for (let i = from; i < limit; i++) {
    const b = buf[i]!;
    if (b === CR) return buf[i + 1] === LF ? i : -1;
    if (b === LF) return -1;
  }
  return -1;
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

  /**
   * The bytes are in a buffer the parser will never reuse (a big request assembled over several
   * reads): whoever forwards them may keep them instead of copying.
   */
  owned = false;

  /** Makes this the request at buf[start, end) whose arguments were just written to `offsets`. */
  reset(buf: Buffer, start: number, end: number, argc: number, owned = false): this {
    this.owned = owned;
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

/** Copies made for requests or replies split across reads: what the tests count. */
export interface TailStats {
  /** Buffers allocated (or grown) to hold an incomplete request or reply. */
  allocations: number;
  /** Bytes copied into them, growth included. */
  copiedBytes: number;
}

const EMPTY = Buffer.alloc(0);

/**
 * The owned copy of an incomplete request or reply left at the end of a read. It is sized for
 * what is known to be coming (a bulk's announced length), so a big value is copied once, as it
 * arrives, instead of once per read; without a known size it at least doubles, which keeps growth
 * by small steps linear too.
 */
class Tail {
  buf: Buffer = EMPTY;
  len = 0;
  readonly stats: TailStats = { allocations: 0, copiedBytes: 0 };

  /** Appends src[from, to), with room for at least `reserve` bytes in all. */
  append(src: Buffer, from: number, to: number, reserve: number): void {
    const want = Math.max(this.len + (to - from), reserve);
    if (want > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(want, 2 * this.buf.length));
      if (this.len > 0) this.buf.copy(grown, 0, 0, this.len);
      this.stats.allocations++;
      this.stats.copiedBytes += this.len;
      this.buf = grown;
    }
    src.copy(this.buf, this.len, from, to);
    this.stats.copiedBytes += to - from;
    this.len += to - from;
  }

  /**
   * Appends the next piece of `chunk` from `off`: up to `need` bytes in all when the length of what
   * is awaited is known (need > 0), else up to the next line end (after LINE_STEPS lines, all of
   * it, so that a request of many small parts is scanned in bulk). Returns the offset reached in
   * `chunk`, or -1 when it took everything and more must come.
   */
  appendPiece(chunk: Buffer, off: number, need: number, step: number): number {
    if (need > 0) {
      const to = Math.min(chunk.length, off + need - this.len);
      this.append(chunk, off, to, need);
      return this.len < need ? -1 : to;
    }
    const lf = chunk.indexOf(LF, off);
    if (lf === -1) {
      this.append(chunk, off, chunk.length, 0);
      return -1;
    }
    const to = step <= LINE_STEPS ? lf + 1 : chunk.length;
    this.append(chunk, off, to, 0);
    return to;
  }

  /** Forgets the contents; `reuse` keeps a small buffer for the next tail. */
  clear(reuse: boolean): void {
    this.len = 0;
    if (!reuse || this.buf.length > TAIL_REUSE_MAX) this.buf = EMPTY;
  }

  /** The contents (a view: only valid until the next append). */
  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * Incremental parser of client requests: multibulk (`*N\r\n$len\r\n...`) as every client library
 * sends, and inline commands (`PING\r\n`) as telnet users type.
 *
 * Requests complete in a read are parsed in place (their arguments are views of the chunk, nothing
 * is allocated). Only an incomplete request at the end of a read is copied, and where its scan
 * stopped is remembered: the next read resumes there, and when a bulk's length is known, reads are
 * appended without scanning until it is all there. A request of any size costs time linear in it.
 */
export class RequestParser {
  private readonly cmd = new ParsedCommand();
  private readonly tail = new Tail();
  private maxArgs = MAX_ARGS;
  /** The request being completed is in a tail buffer that is dropped afterwards. */
  private tailOwned = false;
  private maxBulk = MAX_BULK;
  // Where the scan of the incomplete request in `tail` stopped, relative to the request's start:
  /** Its argument count; -1 while its `*N` line is incomplete (and for an inline request). */
  private tailCount = -1;
  /** Arguments already scanned (their offsets are in `cmd.offsets`, relative to `tail`). */
  private tailArg = 0;
  /** Start of the first argument not scanned yet. */
  private tailPos = 0;
  /** Length the tail must reach before scanning can go on (the end of a bulk); 0: an incomplete line. */
  private tailNeed = 0;

  /**
   * Before AUTH, limits are Redis's for unauthenticated clients: at most 10 arguments of at most
   * 16384 bytes, refused as soon as the header says so — a stranger cannot make the proxy buffer
   * a big body. Takes effect from the next request, even one in the same read (AUTH, then a big SET).
   */
  setAuthenticated(authenticated: boolean): void {
    this.maxArgs = authenticated ? MAX_ARGS : UNAUTH_MAX_ARGS;
    this.maxBulk = authenticated ? MAX_BULK : UNAUTH_MAX_BULK;
  }

  /** Bytes held for a request not complete yet (a query-buffer limit can be enforced on it). */
  get buffered(): number {
    return this.tail.len;
  }

  get tailStats(): Readonly<TailStats> {
    return this.tail.stats;
  }

  /**
   * Parses every complete command in `chunk` (after what was left over); keeps the incomplete
   * tail. `chunk` may be a view of a read buffer reused after this call: what is kept is copied.
   */
  feed(chunk: Buffer, onCommand: (cmd: ParsedCommand) => void): void {
    let pos = this.tail.len > 0 ? this.finishTail(chunk, onCommand) : 0;
    const len = chunk.length;
    while (pos < len) {
      const end = chunk[pos] === STAR ? this.multibulk(chunk, pos, -1, 0, pos, onCommand) : this.inline(chunk, pos, onCommand);
      if (end === -1) return this.keepTail(chunk, pos);
      pos = end;
    }
  }

  /** Copies the incomplete request at chunk[start, ...) (its scan state is already recorded). */
  private keepTail(chunk: Buffer, start: number): void {
    this.checkLine(chunk.length - start, chunk[start]!);
    const offsets = this.cmd.offsets;
    for (let k = 0; k < 2 * this.tailArg; k++) offsets[k] = offsets[k]! - start;
    this.tail.append(chunk, start, chunk.length, this.tailNeed);
  }

  /** Refuses a line (header or inline request) still incomplete after 64 KiB, as Redis does. */
  private checkLine(tailLength: number, firstByte: number): void {
    if (this.tailNeed > 0 || tailLength - this.tailPos <= MAX_LINE) return;
    if (firstByte !== STAR) throw new ProtocolError('too big inline request');
    throw new ProtocolError(this.tailCount === -1 ? 'too big mbulk count string' : 'too big bulk count string');
  }

  /**
   * Adds the start of `chunk` to the incomplete request and parses it when it can; returns where
   * in `chunk` the requests after it start (chunk.length when it took everything).
   */
  private finishTail(chunk: Buffer, onCommand: (cmd: ParsedCommand) => void): number {
    const tail = this.tail;
    let off = 0;
    let steps = 0;
    while (off < chunk.length) {
      // Only the bytes of this request (what follows it is parsed in place), and no rescan of an
      // incomplete line until its end has come.
      off = tail.appendPiece(chunk, off, this.tailNeed, ++steps);
      if (off === -1) {
        if (this.tailNeed === 0) this.checkLine(tail.len, tail.buf[0]!);
        return chunk.length;
      }
      const buf = tail.view();
      this.tailOwned = tail.buf.length > TAIL_REUSE_MAX; // clear() below drops it
      const end = buf[0] === STAR ? this.multibulk(buf, 0, this.tailCount, this.tailArg, this.tailPos, onCommand) : this.inline(buf, 0, onCommand);
      if (end === -1) {
        this.checkLine(tail.len, buf[0]!);
        continue;
      }
      // Bytes past the request's end came from `chunk`: parse them there.
      off -= tail.len - end;
      tail.clear(true);
      return off;
    }
    return off;
  }

  /**
   * Parses the request at `start`, from its argument `arg` at `pos` (count -1: from its header).
   * Returns its end, or -1 after recording where the scan stopped.
   */
  private multibulk(buf: Buffer, start: number, count: number, arg: number, pos: number, onCommand: (cmd: ParsedCommand) => void): number {
    if (count === -1) {
      pos = quickLength(buf, start + 1);
      if (pos !== -1) {
        count = quick.value;
      } else {
        const headerEnd = lineEnd(buf, start);
        if (headerEnd === -1) return this.stop(-1, 0, 0, 0);
        count = readInt(buf, start + 1, headerEnd);
        pos = headerEnd + 2;
      }
      if (count > this.maxArgs) throw new ProtocolError(this.maxArgs === MAX_ARGS ? 'invalid multibulk length' : 'unauthenticated multibulk length');
      if (count <= 0) return pos; // an empty request: Redis ignores it too
    }
    const offsets = this.cmd.offsets;
    for (let i = arg; i < count; i++) {
      if (pos >= buf.length) return this.stop(count, i, pos - start, 0);
      if (buf[pos] !== DOLLAR) throw new ProtocolError(`expected '$', got '${String.fromCharCode(buf[pos]!)}'`);
      let dataStart = quickLength(buf, pos + 1);
      let len = quick.value;
      if (dataStart === -1) {
        const lenEnd = lineEnd(buf, pos);
        if (lenEnd === -1) return this.stop(count, i, pos - start, 0);
        len = readInt(buf, pos + 1, lenEnd);
        if (len < 0) throw new ProtocolError('invalid bulk length');
        dataStart = lenEnd + 2;
      }
      if (len > this.maxBulk) throw new ProtocolError(this.maxBulk === MAX_BULK ? 'invalid bulk length' : 'unauthenticated bulk length');
      const dataEnd = dataStart + len;
      if (dataEnd + 2 > buf.length) return this.stop(count, i, pos - start, dataEnd + 2 - start);
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) throw new ProtocolError('expected CRLF after bulk data');
      offsets[2 * i] = dataStart;
      offsets[2 * i + 1] = dataEnd;
      pos = dataEnd + 2;
    }
    onCommand(this.cmd.reset(buf, start, pos, count, this.tailOwned));
    this.tailOwned = false;
    return pos;
  }

  private stop(count: number, arg: number, pos: number, need: number): -1 {
    this.tailCount = count;
    this.tailArg = arg;
    this.tailPos = pos;
    this.tailNeed = need;
    return -1;
  }

  private inline(buf: Buffer, start: number, onCommand: (cmd: ParsedCommand) => void): number {
    const nl = buf.indexOf(LF, start);
    if (nl === -1) return this.stop(-1, 0, 0, 0);
    if (nl - start > MAX_LINE) throw new ProtocolError('too big inline request');
    const line = buf.subarray(start, nl > start && buf[nl - 1] === CR ? nl - 1 : nl).toString('latin1').trim();
    if (line.length > 0) {
      // Inline commands are rare (telnet): re-encode as multibulk and parse that.
      // (The multibulk limits apply to it as well.)
      const encoded = encodeCommand(line.split(/\s+/).map((a) => Buffer.from(a, 'latin1')));
      this.multibulk(encoded, 0, -1, 0, 0, onCommand);
    }
    return nl + 1;
  }
}

// How each reply type is delimited (0: not a reply type).
const LENGTH_PREFIXED = 1; // $ ! =
const ONE_LINE = 2; // + - : _ , # (
const AGGREGATE = 3; // * ~ > : n replies
const PAIRS = 4; // % | : 2n replies
const REPLY_KIND = new Uint8Array(256);
for (const t of [DOLLAR, BLOB_ERROR, VERBATIM]) REPLY_KIND[t] = LENGTH_PREFIXED;
for (const t of [PLUS, MINUS, COLON, NULL, DOUBLE, BOOLEAN, BIG_NUMBER]) REPLY_KIND[t] = ONE_LINE;
for (const t of [STAR, SET, PUSH]) REPLY_KIND[t] = AGGREGATE;
for (const t of [MAP, ATTRIBUTE]) REPLY_KIND[t] = PAIRS;

// Where scanReply stopped in an incomplete reply (set just before it returns -1).
let stopPending = 0;
let stopPos = 0;
let stopNeed = 0;

/**
 * Walks replies from `pos` (absolute) until `pending` complete ones have been passed (elements of
 * aggregates count too), without recursion. Returns the end, or -1 after setting stopPending,
 * stopPos (absolute: the element to re-read) and stopNeed (relative to `start`: the length the
 * buffer must reach before the walk can go on; 0 when a line is incomplete).
 */
function scanReply(buf: Buffer, start: number, pos: number, pending: number): number {
  while (pending > 0) {
    if (pos >= buf.length) return stopReply(pending, pos, 0);
    const type = buf[pos]!;
    const kind = REPLY_KIND[type]!;
    // The quick reads first (a short line, a length of plain digits), the general way for the rest.
    let end = kind === ONE_LINE ? shortLineEnd(buf, pos) : kind !== 0 ? quickLength(buf, pos + 1) - 2 : -1;
    let number = quick.value;
    if (end < 0) {
      end = lineEnd(buf, pos);
      if (end === -1) return stopReply(pending, pos, 0);
      if (kind !== ONE_LINE && kind !== 0) number = readInt(buf, pos + 1, end);
    }
    if (kind === LENGTH_PREFIXED) {
      const len = number;
      if (len < 0) {
        if (len !== -1 || type !== DOLLAR) throw new ProtocolError('invalid bulk length');
        pos = end + 2;
      } else {
        const next = end + 4 + len;
        if (next > buf.length) return stopReply(pending, pos, next - start);
        if (buf[next - 2] !== CR || buf[next - 1] !== LF) throw new ProtocolError('expected CRLF after bulk data');
        pos = next;
      }
    } else if (kind === ONE_LINE) {
      pos = end + 2;
    } else if (kind === AGGREGATE || kind === PAIRS) {
      const n = number;
      if (n < -1 || (n === -1 && type !== STAR)) throw new ProtocolError('invalid aggregate length');
      pos = end + 2;
      if (n > 0) pending += kind === PAIRS ? 2 * n : n;
      // An attribute annotates the reply that follows it: they are one reply.
      if (type === ATTRIBUTE) pending++;
    } else {
      throw new ProtocolError(`unexpected reply type '${String.fromCharCode(type)}'`);
    }
    pending--;
  }
  return pos;
}

function stopReply(pending: number, pos: number, need: number): -1 {
  stopPending = pending;
  stopPos = pos;
  stopNeed = need;
  return -1;
}

/**
 * End offset of the one complete reply (RESP2 or RESP3) that starts at `pos`, or -1 if it has
 * not fully arrived. Nested aggregates are walked without recursion.
 */
export function replyEnd(buf: Buffer, pos: number): number {
  return scanReply(buf, pos, pos, 1);
}

/**
 * Splits a backend's byte stream into replies, in linear time whatever their size: replies
 * complete in a read are delimited in place; an incomplete one is copied and its scan resumed
 * where it stopped (and, when a bulk's length is known, not resumed before it is all there).
 */
/** Receives one reply as buf[start, end) (the receiver's to keep); false stops the reading. */
export type ReplyRangeHandler = (buf: Buffer, start: number, end: number) => boolean;

/**
 * Copies src[start, end) to dst at `at`; returns the end. Short ranges (most replies: `+OK`, a
 * small bulk) are copied byte by byte: Buffer#copy makes a typed-array view per call, about 150 ns
 * here. Past about 32 bytes the loop costs more than that view (measured on this host with the
 * mix of redis-benchmark's 36- and 45-byte commands and 5- and 9-byte replies: a threshold of 32
 * beat 64 by 15-25 %), so a typical command is copied by Buffer#copy.
 */
const BYTE_LOOP_MAX = 32;

export function copyBytes(src: Buffer, start: number, end: number, dst: Buffer, at: number): number {
  const n = end - start;
  if (n <= BYTE_LOOP_MAX) {
    for (let i = 0; i < n; i++) dst[at + i] = src[start + i]!;
  } else {
    src.copy(dst, at, start, end);
  }
  return at + n;
}

export class ReplyReader {
  private readonly tail = new Tail();
  /** End offsets of the complete replies of one read (reused). */
  private readonly ends: number[] = [];
  private tailPending = 1;
  private tailPos = 0;
  private tailNeed = 0;

  /** Bytes held for a reply not complete yet. */
  get buffered(): number {
    return this.tail.len;
  }

  get tailStats(): Readonly<TailStats> {
    return this.tail.stats;
  }

  /** Forgets the incomplete reply (the connection was dropped). */
  reset(): void {
    this.tail.clear(false);
  }

  /**
   * Calls `onReply` with each complete reply, in order, until it returns false. The replies are
   * the receiver's to keep: with `volatile` (chunk is a view of a read buffer reused after this
   * call) a reply lying in `chunk` is copied; one assembled from several reads is not (its
   * buffer is never reused).
   */
  feed(chunk: Buffer, volatile: boolean, onReply: ReplyRangeHandler): void {
    let pos = 0;
    if (this.tail.len > 0) {
      pos = this.finishTail(chunk, onReply);
      if (pos === -1) return;
    }
    const len = chunk.length;
    // Delimit every complete reply first, so that a volatile chunk is copied once, not per reply.
    const ends = this.ends;
    let count = 0;
    let end = pos;
    while (end < len) {
      const next = scanReply(chunk, end, end, 1);
      if (next === -1) break;
      ends[count++] = next;
      end = next;
    }
    if (count > 0) {
      let source = chunk;
      let base = 0;
      if (volatile) {
        source = Buffer.allocUnsafe(end - pos);
        chunk.copy(source, 0, pos, end);
        base = pos;
      }
      let from = pos;
      for (let i = 0; i < count; i++) {
        const to = ends[i]!;
        if (!onReply(source, from - base, to - base)) return;
        from = to;
      }
    }
    if (end < len) {
      // The scan that stopped at `end` set where it stopped.
      this.tailPending = stopPending;
      this.tailPos = stopPos - end;
      this.tailNeed = stopNeed;
      this.tail.append(chunk, end, len, stopNeed);
    }
  }

  /** Like RequestParser.finishTail; -1 when onReply said stop. */
  private finishTail(chunk: Buffer, onReply: ReplyRangeHandler): number {
    const tail = this.tail;
    let off = 0;
    let steps = 0;
    while (off < chunk.length) {
      off = tail.appendPiece(chunk, off, this.tailNeed, ++steps);
      if (off === -1) return chunk.length;
      const end = scanReply(tail.view(), 0, this.tailPos, this.tailPending);
      if (end === -1) {
        this.tailPending = stopPending;
        this.tailPos = stopPos;
        this.tailNeed = stopNeed;
        continue;
      }
      off -= tail.len - end;
      const complete = tail.buf.subarray(0, end);
      this.tail.clear(false); // `complete` keeps the buffer: it must not be reused
      this.tailPending = 1;
      this.tailPos = this.tailNeed = 0;
      if (!onReply(complete, 0, complete.length)) return -1;
      return off;
    }
    return off;
  }
}

/**
 * The element replies of an aggregate reply: an array, set or push (its n elements), or a map
 * (its 2n keys and values, alternating). Attributes before it are skipped. A null array has none.
 */
export function arrayElements(reply: Buffer): Buffer[] {
  let pos = 0;
  while (reply[pos] === ATTRIBUTE) {
    const end = lineEnd(reply, pos);
    if (end === -1) throw new ProtocolError('truncated attribute');
    pos = scanReply(reply, pos, end + 2, 2 * readInt(reply, pos + 1, end));
    if (pos === -1) throw new ProtocolError('truncated attribute');
  }
  const type = reply[pos];
  if (type !== STAR && type !== SET && type !== PUSH && type !== MAP) throw new ProtocolError('expected an array reply');
  const end = lineEnd(reply, pos);
  if (end === -1) throw new ProtocolError('truncated array reply');
  const n = readInt(reply, pos + 1, end) * (type === MAP ? 2 : 1);
  const out: Buffer[] = [];
  pos = end + 2;
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
  if (reply[0] !== COLON) return null;
  return readInt(reply, 1, lineEnd(reply, 0));
}

/** An error reply: a simple error (`-`) or a RESP3 blob error (`!`). */
export function isError(reply: Buffer): boolean {
  return reply[0] === MINUS || reply[0] === BLOB_ERROR;
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

/** Replies that only exist in RESP3 (for a client that said HELLO 3). */
export const reply3 = {
  null: Buffer.from('_\r\n'),
  boolean: (b: boolean) => Buffer.from(b ? '#t\r\n' : '#f\r\n'),
  double: (n: number) => Buffer.from(`,${formatDouble(n)}\r\n`),
  /** `entries` are encoded replies: [key, value] pairs. */
  map: (entries: [Buffer, Buffer][]) => Buffer.concat([Buffer.from(`%${entries.length}\r\n`), ...entries.flat()]),
  set: (items: Buffer[]) => Buffer.concat([Buffer.from(`~${items.length}\r\n`), ...items]),
  push: (items: Buffer[]) => Buffer.concat([Buffer.from(`>${items.length}\r\n`), ...items]),
  /** A verbatim string; `format` is its 3-letter type (txt, mkd). */
  verbatim: (text: string, format = 'txt') => {
    const data = Buffer.from(`${format}:${text}`);
    return Buffer.concat([Buffer.from(`=${data.length}\r\n`), data, CRLF]);
  },
};

function formatDouble(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (n === Infinity) return 'inf';
  if (n === -Infinity) return '-inf';
  return String(n);
}

/** The replies whose encoding depends on the protocol the client chose. */
export interface ProtocolReplies {
  readonly proto: 2 | 3;
  /** A null (RESP2: the null bulk string). */
  readonly null: Buffer;
  /** A null where RESP2 has the null array (`*-1`). */
  readonly nullArray: Buffer;
  boolean(b: boolean): Buffer;
  double(n: number): Buffer;
  map(entries: [Buffer, Buffer][]): Buffer;
  set(items: Buffer[]): Buffer;
  verbatim(text: string): Buffer;
}

const RESP2: ProtocolReplies = {
  proto: 2,
  null: Buffer.from('$-1\r\n'),
  nullArray: Buffer.from('*-1\r\n'),
  // What Redis answers a RESP2 client in place of each RESP3 type:
  boolean: (b) => reply.integer(b ? 1 : 0),
  double: (n) => reply.bulk(formatDouble(n)),
  map: (entries) => reply.array(entries.flat()),
  set: (items) => reply.array(items),
  verbatim: (text) => reply.bulk(text),
};

const RESP3: ProtocolReplies = {
  proto: 3,
  null: reply3.null,
  nullArray: reply3.null,
  boolean: reply3.boolean,
  double: reply3.double,
  map: reply3.map,
  set: reply3.set,
  verbatim: (text) => reply3.verbatim(text),
};

/** The encoders for a client speaking `proto` (2 unless it said HELLO 3). */
export function encodeFor(proto: 2 | 3): ProtocolReplies {
  return proto === 3 ? RESP3 : RESP2;
}

/** The bytes of a bulk string reply; null for a null reply (`$-1` or RESP3 `_`). Throws for others. */
export function bulkValue(r: Buffer): Buffer | null {
  if (r[0] === NULL) return null;
  if (r[0] !== DOLLAR) throw new ProtocolError('expected a bulk reply');
  const crlf = r.indexOf(CR);
  const len = readInt(r, 1, crlf);
  return len < 0 ? null : r.subarray(crlf + 2, crlf + 2 + len);
}
