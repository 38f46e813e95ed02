/**
 * The proxy's SCAN cursor: a plain decimal integer (what redis-py, go-redis and the rest parse
 * and send back) that carries the shard's own cursor and the id of the shard being scanned.
 *
 *   cursor = (inner × 37^len + id) × 33 + len
 *
 * where `id` is the shard id read as a base-37 number over [-0-9a-z] (the characters a shard id
 * may have) and `len` its length (1..32). The shard is named by its id, not by its position in
 * the route, and shards are scanned in id order: a shard added or removed mid-scan does not make
 * a cursor point at another shard, and a cursor whose shard is gone goes on with the next id.
 * With ids of up to 3 characters (the default s0 ... s99) a cursor fits in 64 bits while the
 * shard's own cursor is below 2^43 (Redis's cursor stays below its hash table's size); longer
 * ids make longer cursors, which clients that parse cursors as arbitrary integers accept.
 * Cursor 0 starts and ends a scan; no other cursor is 0, since `len` ≥ 1.
 */

const ALPHABET = '-0123456789abcdefghijklmnopqrstuvwxyz';
const RADIX = BigInt(ALPHABET.length);
const MAX_ID_LENGTH = 32;
const LENGTH_RADIX = BigInt(MAX_ID_LENGTH + 1);
/** Longer than any cursor this encoding makes (inner < 2^64, 32-character ids): not a cursor. */
const MAX_DIGITS = 90;

export interface ScanPosition {
  shardId: string;
  /** The shard's own cursor (0: start that shard). */
  inner: bigint;
}

export function encodeScanCursor(position: ScanPosition): string {
  const { shardId, inner } = position;
  if (shardId.length < 1 || shardId.length > MAX_ID_LENGTH) throw new Error(`shard id '${shardId}' cannot be in a SCAN cursor`);
  let id = 0n;
  for (const ch of shardId) {
    const digit = ALPHABET.indexOf(ch);
    if (digit < 0) throw new Error(`shard id '${shardId}' cannot be in a SCAN cursor`);
    id = id * RADIX + BigInt(digit);
  }
  const len = BigInt(shardId.length);
  return ((inner * RADIX ** len + id) * LENGTH_RADIX + len).toString();
}

/** 'start' for cursor 0, the position for a cursor this encoding made, null for anything else. */
export function decodeScanCursor(text: string): ScanPosition | 'start' | null {
  if (!/^\d+$/.test(text) || text.length > MAX_DIGITS) return null;
  let n = BigInt(text);
  if (n === 0n) return 'start';
  const len = Number(n % LENGTH_RADIX);
  if (len === 0) return null;
  n /= LENGTH_RADIX;
  const scale = RADIX ** BigInt(len);
  let id = n % scale;
  const inner = n / scale;
  let shardId = '';
  for (let i = 0; i < len; i++) {
    shardId = ALPHABET[Number(id % RADIX)]! + shardId;
    id /= RADIX;
  }
  if (shardId.startsWith('-')) return null; // no shard id starts with '-'
  return { shardId, inner };
}

/**
 * Which shard to ask, with which of its cursors: the cursor's shard if it is still among `ids`
 * (in any order), else the next id after it; null when the scan is over.
 */
export function scanTarget(ids: readonly string[], at: ScanPosition | 'start'): ScanPosition | null {
  if (at !== 'start' && ids.includes(at.shardId)) return at;
  const next = at === 'start' ? firstId(ids) : nextId(ids, at.shardId);
  return next === null ? null : { shardId: next, inner: 0n };
}

/** The cursor to hand back after `shardId` answered with its cursor `inner`. */
export function nextScanCursor(ids: readonly string[], shardId: string, inner: bigint): string {
  if (inner !== 0n) return encodeScanCursor({ shardId, inner });
  const next = nextId(ids, shardId);
  return next === null ? '0' : encodeScanCursor({ shardId: next, inner: 0n });
}

function firstId(ids: readonly string[]): string | null {
  let first: string | null = null;
  for (const id of ids) if (first === null || id < first) first = id;
  return first;
}

/** The smallest id greater than `after`. */
function nextId(ids: readonly string[], after: string): string | null {
  let next: string | null = null;
  for (const id of ids) if (id > after && (next === null || id < next)) next = id;
  return next;
}
