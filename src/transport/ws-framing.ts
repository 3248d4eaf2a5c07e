/**
 * WebSocket data framing for the ws adapter (RFC 6455 §5.2, §5.3): frame headers, masking keys, masking and
 * unmasking, range copies. Pure functions on buffers: no I/O (the adapter, ws.ts, writes what they build).
 */
import { randomFillSync } from 'node:crypto';

/** First byte of every data frame we send: FIN + opcode 2 (binary); one frame per message, never fragmented. */
export const BINARY_FIN = 0x82;

/** Masking keys (RFC 6455 §5.3: fresh and unpredictable per frame) are taken from a pool filled by the CSPRNG. */
const MASK_POOL_SIZE = 8 * 1024;
const maskPool = Buffer.alloc(MASK_POOL_SIZE);
let maskPoolOffset = MASK_POOL_SIZE;

/** Size of a WebSocket frame header for a payload of `length` bytes (RFC 6455 §5.2). */
export function wsHeaderLength(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/**
 * Writes the header of a final binary frame carrying `length` payload bytes at `out[offset]`; with `masked`,
 * also a fresh masking key, which the caller applies to the payload. Returns the offset after the header.
 */
export function writeWsHeader(out: Buffer, offset: number, length: number, masked: boolean): number {
  const maskBit = masked ? 0x80 : 0;
  out[offset++] = BINARY_FIN;
  if (length < 126) {
    out[offset++] = length | maskBit;
  } else if (length < 65536) {
    out[offset++] = 126 | maskBit;
    out[offset++] = length >>> 8;
    out[offset++] = length & 0xff;
  } else {
    out[offset++] = 127 | maskBit;
    out.writeUInt32BE(Math.floor(length / 0x1_0000_0000), offset);
    out.writeUInt32BE(length >>> 0, offset + 4);
    offset += 8;
  }
  if (masked) {
    if (maskPoolOffset === MASK_POOL_SIZE) {
      randomFillSync(maskPool);
      maskPoolOffset = 0;
    }
    out[offset++] = maskPool[maskPoolOffset++]!;
    out[offset++] = maskPool[maskPoolOffset++]!;
    out[offset++] = maskPool[maskPoolOffset++]!;
    out[offset++] = maskPool[maskPoolOffset++]!;
  }
  return offset;
}

/** Payloads at least this long are XOR-ed 32 bits at a time (through an Int32Array view), shorter ones bytewise. */
const WORD_MASK_MIN = 256;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * XORs `buffer[start, end)` in place with the key bytes k0..k3 (k0 applies to `buffer[start]`). Short
 * payloads (most Socket.D frames) go to a small function of their own: inside the one that also holds the
 * word loop they ran about 1.5x slower (measured with 150-byte payloads, Node 20).
 */
function xorMask(buffer: Buffer, start: number, end: number, k0: number, k1: number, k2: number, k3: number): void {
  if (end - start < WORD_MASK_MIN) xorBytes(buffer, start, end, k0, k1, k2, k3);
  else xorWords(buffer, start, end, k0, k1, k2, k3);
}

/** xorMask for short payloads: four bytes per iteration. */
function xorBytes(buffer: Buffer, start: number, end: number, k0: number, k1: number, k2: number, k3: number): void {
  let i = start;
  const whole = start + ((end - start) & ~3);
  for (; i < whole; i += 4) {
    buffer[i] = buffer[i]! ^ k0;
    buffer[i + 1] = buffer[i + 1]! ^ k1;
    buffer[i + 2] = buffer[i + 2]! ^ k2;
    buffer[i + 3] = buffer[i + 3]! ^ k3;
  }
  if (i < end) buffer[i] = buffer[i]! ^ k0;
  if (i + 1 < end) buffer[i + 1] = buffer[i + 1]! ^ k1;
  if (i + 2 < end) buffer[i + 2] = buffer[i + 2]! ^ k2;
}

/** xorMask for payloads of at least WORD_MASK_MIN bytes: 32 bits at a time. */
function xorWords(buffer: Buffer, start: number, end: number, k0: number, k1: number, k2: number, k3: number): void {
  let i = start;
  {
    // Bytewise up to a 4-byte aligned address, then whole words, then the tail.
    const misaligned = (buffer.byteOffset + i) & 3;
    for (let n = misaligned === 0 ? 0 : 4 - misaligned; n > 0; n--) {
      buffer[i] = buffer[i]! ^ k0;
      i++;
      const k = k0;
      k0 = k1;
      k1 = k2;
      k2 = k3;
      k3 = k;
    }
    const words = (end - i) >>> 2;
    const key = LITTLE_ENDIAN ? (k0 | (k1 << 8) | (k2 << 16) | (k3 << 24)) : ((k0 << 24) | (k1 << 16) | (k2 << 8) | k3);
    const view = new Int32Array(buffer.buffer, buffer.byteOffset + i, words);
    // Unrolled: about 2.5x faster than one word per iteration in V8 (Node 20).
    const unrolled = words & ~3;
    let w = 0;
    for (; w < unrolled; w += 4) {
      view[w] = view[w]! ^ key;
      view[w + 1] = view[w + 1]! ^ key;
      view[w + 2] = view[w + 2]! ^ key;
      view[w + 3] = view[w + 3]! ^ key;
    }
    for (; w < words; w++) view[w] = view[w]! ^ key;
    i += words * 4;
  }
  if (i < end) buffer[i] = buffer[i]! ^ k0;
  if (i + 1 < end) buffer[i + 1] = buffer[i + 1]! ^ k1;
  if (i + 2 < end) buffer[i + 2] = buffer[i + 2]! ^ k2;
}

/**
 * Copies `source` to `out[offset]` XOR-ed with the 4-byte key at `out[keyAt]`, starting at key byte `phase`
 * (RFC 6455 §5.3: payload byte i is XOR-ed with key byte i mod 4). `source` is not modified.
 */
export function maskCopy(source: Buffer, out: Buffer, offset: number, keyAt: number, phase: number): void {
  maskCopyRange(source, 0, source.length, out, offset, keyAt, phase);
}

/** maskCopy() of `source[start, end)`. */
export function maskCopyRange(source: Buffer, start: number, end: number, out: Buffer, offset: number, keyAt: number, phase: number): void {
  const k0 = out[keyAt + (phase & 3)]!;
  const k1 = out[keyAt + ((phase + 1) & 3)]!;
  const k2 = out[keyAt + ((phase + 2) & 3)]!;
  const k3 = out[keyAt + ((phase + 3) & 3)]!;
  const length = end - start;
  if (length >= WORD_MASK_MIN) {
    source.copy(out, offset, start, end);
    xorMask(out, offset, offset + length, k0, k1, k2, k3);
    return;
  }
  const whole = length & ~3;
  let i = 0;
  for (; i < whole; i += 4) {
    out[offset + i] = source[start + i]! ^ k0;
    out[offset + i + 1] = source[start + i + 1]! ^ k1;
    out[offset + i + 2] = source[start + i + 2]! ^ k2;
    out[offset + i + 3] = source[start + i + 3]! ^ k3;
  }
  if (i < length) out[offset + i] = source[start + i]! ^ k0;
  if (i + 1 < length) out[offset + i + 1] = source[start + i + 1]! ^ k1;
  if (i + 2 < length) out[offset + i + 2] = source[start + i + 2]! ^ k2;
}

/**
 * Ranges up to this long are copied byte by byte: Buffer#copy of part of a buffer makes a view per call on
 * Node 20 (see the tcp adapter's gather()).
 */
const BYTEWISE_COPY_MAX = 48;

/** Copies `source[start, end)` to `out[offset]`. */
export function copyRange(source: Buffer, start: number, end: number, out: Buffer, offset: number): void {
  if (end - start <= BYTEWISE_COPY_MAX) {
    for (let i = start; i < end; i++) out[offset++] = source[i]!;
  } else {
    source.copy(out, offset, start, end);
  }
}

/** XORs `buffer[start, end)` in place with the 4-byte masking key at `buffer[keyAt]` (RFC 6455 §5.3). */
/**
 * XORs `buffer[start, end)` in place with the 4-byte key `key[keyAt, keyAt + 4)`, starting at key byte `phase`:
 * one of the parts of a payload that arrived in several buffers (RFC 6455 §5.3: payload byte i takes key byte
 * i mod 4, so a part that starts at payload offset p starts at phase p mod 4).
 */
export function unmaskPartInPlace(buffer: Buffer, start: number, end: number, key: Buffer, keyAt: number, phase: number): void {
  const k0 = key[keyAt + (phase & 3)]!;
  const k1 = key[keyAt + ((phase + 1) & 3)]!;
  const k2 = key[keyAt + ((phase + 2) & 3)]!;
  const k3 = key[keyAt + ((phase + 3) & 3)]!;
  if ((k0 | k1 | k2 | k3) !== 0) xorMask(buffer, start, end, k0, k1, k2, k3);
}

export function unmaskInPlace(buffer: Buffer, start: number, end: number, keyAt: number): void {
  const k0 = buffer[keyAt]!;
  const k1 = buffer[keyAt + 1]!;
  const k2 = buffer[keyAt + 2]!;
  const k3 = buffer[keyAt + 3]!;
  if ((k0 | k1 | k2 | k3) !== 0) xorMask(buffer, start, end, k0, k1, k2, k3);
}

