/**
 * Key → slot mapping. CRC16-XMODEM of the key (or of its hash tag, under Redis Cluster's rule),
 * modulo the cluster's slot count. With 16384 slots this is exactly Redis Cluster's CLUSTER KEYSLOT.
 */

const CRC16_TABLE = buildCrc16Table();

function buildCrc16Table(): Uint16Array {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    table[i] = crc;
  }
  return table;
}

/** CRC16-XMODEM (poly 0x1021, init 0) over buf[start, end). */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ buf[i]!) & 0xff]!;
  }
  return crc;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Redis Cluster's hash-tag rule: if the key contains '{' and a later '}' with at least one byte
 * between them, only the bytes between the first '{' and the first '}' after it are hashed.
 */
export function hashedRange(key: Uint8Array, start = 0, end = key.length): [number, number] {
  for (let open = start; open < end; open++) {
    if (key[open] !== OPEN_BRACE) continue;
    for (let close = open + 1; close < end; close++) {
      if (key[close] === CLOSE_BRACE) {
        return close === open + 1 ? [start, end] : [open + 1, close];
      }
    }
    return [start, end];
  }
  return [start, end];
}

export function keySlot(key: string | Uint8Array, slotCount: number): number {
  const buf = typeof key === 'string' ? Buffer.from(key) : key;
  return bytesSlot(buf, 0, buf.length, slotCount);
}

/**
 * The slot of the key at buf[start, end), allocating nothing: the proxy calls this for every
 * command, on the bytes as received.
 */
export function bytesSlot(buf: Uint8Array, start: number, end: number, slotCount: number): number {
  // One pass for the common key without a '{': the CRC as the bytes are scanned for one.
  let crc = 0;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b === OPEN_BRACE) {
      // A key with a '{' (rare): the hash-tag rule decides what is hashed.
      const [from, to] = hashedRange(buf, start, end);
      return crc16(buf, from, to) % slotCount;
    }
    crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff]!;
  }
  return crc % slotCount;
}
