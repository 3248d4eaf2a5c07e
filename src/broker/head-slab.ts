/**
 * Where the broker writes the new heads of re-headed frames (a forwarded Request/Subscribe with its stream
 * sid, a relayed Reply with the requester's sid; spec §5), so that a head is a range of a slab rather than
 * a Buffer of its own: each head was two allocations (the pooled view and, with the body's view, the
 * largest share of a round trip's garbage in the bench S3P allocation profile).
 *
 * A slab region is never written twice: heads stay valid while transports hold them, as Node's own Buffer
 * pool does; a full slab is let go (the transports' queues keep it alive until flushed) and a new one taken.
 */
import { FRAME_PREFIX_BYTES } from '../protocol/limits.js';
import { reheadedLength, writeReheaded, writeReheadedFrame } from '../protocol/codec.js';
import type { Frame } from '../protocol/frame.js';

/**
 * Slab size: Node's own Buffer pool size, so a head queued for a slow consumer pins no more memory than a
 * pooled Buffer.allocUnsafe head did before (the queue's limit counts frame bytes, not the slabs behind
 * them). Heads longer than a quarter of it (sids of more than ~2 KiB) get a buffer of their own.
 */
const SLAB_BYTES = 8 * 1024;

export class HeadSlab {
  /** The buffer holding the head last written, and its range. */
  buffer: Buffer;
  start = 0;
  end = 0;
  private used = 0;

  constructor() {
    this.buffer = Buffer.allocUnsafe(SLAB_BYTES);
  }

  /** Writes `frame`'s head with `flag` and `sid` (see encodeReheaded); read it from buffer/start/end. */
  rehead(frame: Frame, flag: number, sid: string): void {
    // An ASCII sid (as clients make them) is copied char by char: Buffer.byteLength plus Buffer#write cost
    // about 4x as much for a 20-char sid. The first non-ASCII char leaves that region unused and takes the
    // UTF-8 path.
    const n = sid.length;
    let at = this.reserve(reheadedLength(n));
    const buffer = this.buffer;
    const sidAt = at + FRAME_PREFIX_BYTES;
    let i = 0;
    for (; i < n; i++) {
      const c = sid.charCodeAt(i);
      if (c > 0x7f) break;
      buffer[sidAt + i] = c;
    }
    if (i === n) {
      this.end = writeReheadedFrame(buffer, at, frame, flag, n);
      return;
    }
    const sidBytes = Buffer.byteLength(sid);
    at = this.reserve(reheadedLength(sidBytes));
    this.end = writeReheaded(this.buffer, at, frame, flag, sid, sidBytes);
  }

  /**
   * As rehead(), with the sid `prefix` followed by the decimal digits of `id` (a stream sid, written without
   * making its string). Precondition: `id` is a non-negative integer below 10^15 (StreamTable.idIn reads
   * at most 15 digits back; at a million streams a second that is 31 years of one broker run).
   */
  reheadWithId(frame: Frame, flag: number, prefix: Buffer, id: number): void {
    const digits = decimalDigits(id);
    const sidBytes = prefix.length + digits;
    const at = this.reserve(reheadedLength(sidBytes));
    const buffer = this.buffer;
    this.end = writeReheadedFrame(buffer, at, frame, flag, sidBytes);
    const sidAt = at + FRAME_PREFIX_BYTES;
    for (let i = 0; i < prefix.length; i++) buffer[sidAt + i] = prefix[i]!;
    let value = id;
    for (let i = sidAt + sidBytes - 1; i >= sidAt + prefix.length; i--) {
      buffer[i] = 48 + (value % 10);
      value = Math.floor(value / 10);
    }
  }

  /** Takes `length` bytes for the next head; sets buffer and start and returns start. */
  private reserve(length: number): number {
    if (length > SLAB_BYTES / 4) {
      this.buffer = Buffer.allocUnsafe(length);
      this.used = length; // full: the next head takes a new slab
      this.start = 0;
      return 0;
    }
    if (this.used + length > this.buffer.length) {
      this.buffer = Buffer.allocUnsafe(SLAB_BYTES);
      this.used = 0;
    }
    this.start = this.used;
    this.used += length;
    return this.start;
  }
}

/** How many decimal digits `n` has (n a non-negative integer). */
export function decimalDigits(n: number): number {
  let digits = 1;
  for (let limit = 10; n >= limit; limit *= 10) digits++;
  return digits;
}
