/**
 * Encodes the client's outbound frames (spec §1) for one connection, straight into a slab: no head buffer
 * per frame, no string built for a sid, no second buffer for small data.
 *
 * - Each frame is encoded at the end of the current slab: prefix, sid, event, meta, separators and, when it
 *   is small, its data. Larger data follows as its own buffer, never copied.
 * - Over a stream transport (tcp), the frames written in one tick are handed to the connection as one
 *   buffer at the end of the tick (or as soon as the slab is full), so the transport sees one write instead
 *   of two per frame. Over message transports (ws, udp) every frame is one message, written at once.
 * - Handed-over bytes are never written again: a new slab is started when the current one is full.
 * - Every frame of the connection goes through here (Ping, Pong, Connect, Close too), so order is kept.
 */
import type { Connection } from '../transport/connection.js';
import { FRAME_PREFIX_BYTES } from '../protocol/limits.js';
import { SocketdError } from './errors.js';
import { SID_BYTES, type SidSource } from './sids.js';
import { defer } from './tick.js';

/** Data up to this size is copied next to its head: the tcp adapter would copy it into its batch anyway. */
const COPY_DATA_MAX = 16 * 1024;
/** The slab grows by doubling from the first size to the last, so an idle connection holds little. */
const FIRST_SLAB_BYTES = 2 * 1024;
const MAX_SLAB_BYTES = 64 * 1024;
/** Texts longer than this are encoded by Buffer.write; shorter ones by a loop, faster while they are ASCII. */
const SHORT_TEXT = 64;
/** Prefix and the three separators. */
const FIXED_HEAD_BYTES = FRAME_PREFIX_BYTES + 6;
/** UTF-8 needs at most 3 bytes per UTF-16 unit (a surrogate pair: 4 bytes for 2 units). */
const MAX_UTF8_PER_UNIT = 3;
/** The length prefix is an int32. */
const MAX_FRAME_BYTES = 0x7fff_ffff;
const ZERO = 0x00;
const LF = 0x0a;

/** Writes `text` as UTF-8 at `buf[offset]` (room for 3 bytes per unit must be there); returns the end. */
function writeText(buf: Buffer, offset: number, text: string): number {
  const n = text.length;
  if (n > SHORT_TEXT) return offset + buf.write(text, offset, buf.length - offset, 'utf8');
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return offset + buf.write(text, offset, buf.length - offset, 'utf8');
    buf[offset + i] = c;
  }
  return offset + n;
}

/**
 * Offset in a received message frame's bytes just past the separator that ends its event: `raw[8, end)` is
 * its sid, separator, event and separator, which an answer repeats. The separators are found as the decoder
 * finds them (the first `00 0A` of each field). -1 when the frame has no such separators (a bare frame).
 */
export function answerHeadEnd(raw: Uint8Array): number {
  const last = raw.length - 1;
  let separators = 0;
  for (let i = FRAME_PREFIX_BYTES; i < last; i++) {
    if (raw[i] === ZERO && raw[i + 1] === LF) {
      if (++separators === 2) return i + 2;
      i++;
    }
  }
  return -1;
}

function writerFlushLater(writer: FrameWriter): void {
  writer._flushLater();
}

export class FrameWriter {
  /** Set when the connection reported its buffer above its high-water mark; the link clears it on drain. */
  full = false;
  private slab: Buffer = Buffer.alloc(0);
  /** End of the encoded bytes in the slab. */
  private used = 0;
  /** Start of the bytes not yet handed to the connection (stream transports); equals `end` when none. */
  private batchStart = 0;
  private flushScheduled = false;
  private readonly batches: boolean;

  constructor(
    readonly connection: Connection,
    private readonly sids: SidSource,
    private readonly maxOutboundBytes: number,
  ) {
    this.batches = connection.framing === 'stream';
  }

  /** Bytes written and not yet handed to the OS: the connection's and the batch not handed to it yet. */
  get bufferedBytes(): number {
    return this.connection.bufferedBytes + (this.used - this.batchStart);
  }

  /**
   * Encodes a frame with the next sid of the client and queues it; returns the sid's number. Throws
   * SocketdError `too_large` or `congested`, and then nothing is queued.
   */
  frame(flag: number, event: string, meta: string, data: Buffer): number {
    const copy = data.length <= COPY_DATA_MAX;
    const start = this.reserve(FIXED_HEAD_BYTES + SID_BYTES + MAX_UTF8_PER_UNIT * (event.length + meta.length) + (copy ? data.length : 0));
    const slab = this.slab;
    let o = start + FRAME_PREFIX_BYTES;
    const sid = this.sids.take(slab, o);
    o += SID_BYTES;
    slab[o++] = ZERO;
    slab[o++] = LF;
    o = writeText(slab, o, event);
    slab[o++] = ZERO;
    slab[o++] = LF;
    o = writeText(slab, o, meta);
    slab[o++] = ZERO;
    slab[o++] = LF;
    this.commit(start, o, flag, data, copy, event);
    return sid;
  }

  /**
   * Encodes an answer (Reply, ReplyEnd, Alarm) to a received frame: its sid and event are copied as bytes
   * from `raw[8, headEnd)` (see {@link answerHeadEnd}), so they go back exactly as they came. Throws as
   * {@link frame}.
   */
  answer(flag: number, raw: Buffer, headEnd: number, event: string, meta: string, data: Buffer): void {
    const copy = data.length <= COPY_DATA_MAX;
    const idBytes = headEnd - FRAME_PREFIX_BYTES;
    const start = this.reserve(FRAME_PREFIX_BYTES + idBytes + MAX_UTF8_PER_UNIT * meta.length + 2 + (copy ? data.length : 0));
    const slab = this.slab;
    let o = start + FRAME_PREFIX_BYTES;
    if (idBytes <= SHORT_TEXT) {
      for (let i = FRAME_PREFIX_BYTES; i < headEnd; i++) slab[o++] = raw[i]!;
    } else {
      slab.set(raw.subarray(FRAME_PREFIX_BYTES, headEnd), o);
      o += idBytes;
    }
    o = writeText(slab, o, meta);
    slab[o++] = ZERO;
    slab[o++] = LF;
    this.commit(start, o, flag, data, copy, event);
  }

  /** Queues a whole encoded frame (Ping, Pong, Connect, Close). Not subject to the limits. */
  raw(frame: Buffer): void {
    if (!this.batches) {
      if (!this.connection.write(frame)) this.full = true;
      return;
    }
    const start = this.reserve(frame.length);
    this.slab.set(frame, start);
    this.used = start + frame.length;
    this.scheduleFlush();
  }

  /** Hands the batch to the connection now. */
  flush(): void {
    const start = this.batchStart;
    const end = this.used;
    if (end === start) return;
    this.batchStart = end;
    if (!this.connection.write(this.slab.subarray(start, end))) this.full = true;
  }

  /** Flushes, then ends the connection (it sends what it holds, then closes). */
  end(reason: string): void {
    this.flush();
    this.connection.end(reason);
  }

  /** @internal */
  _flushLater(): void {
    this.flushScheduled = false;
    this.flush();
  }

  /** Checks the frame encoded at `slab[start, headEnd)` against the limits, then queues it with its data. */
  private commit(start: number, headEnd: number, flag: number, data: Buffer, copy: boolean, event: string): void {
    const connection = this.connection;
    const size = headEnd - start + data.length;
    if (size > connection.maxOutboundFrame || size > MAX_FRAME_BYTES) {
      const limit = Math.min(connection.maxOutboundFrame, MAX_FRAME_BYTES);
      throw new SocketdError('too_large', `Frame of ${size} bytes exceeds the ${connection.transport} limit (${limit})`, { event });
    }
    const buffered = connection.bufferedBytes + (start - this.batchStart);
    if (buffered + size > this.maxOutboundBytes) {
      throw new SocketdError('congested', `The connection already holds ${buffered} unsent bytes (maxOutboundBytes ${this.maxOutboundBytes})`, { event });
    }
    const slab = this.slab;
    slab[start] = size >>> 24;
    slab[start + 1] = (size >>> 16) & 0xff;
    slab[start + 2] = (size >>> 8) & 0xff;
    slab[start + 3] = size & 0xff;
    slab[start + 4] = flag >>> 24;
    slab[start + 5] = (flag >>> 16) & 0xff;
    slab[start + 6] = (flag >>> 8) & 0xff;
    slab[start + 7] = flag & 0xff;
    if (copy) {
      if (data.length > 0) slab.set(data, headEnd);
      this.used = headEnd + data.length;
      if (this.batches) {
        this.scheduleFlush();
      } else {
        this.batchStart = this.used;
        if (!connection.write(slab.subarray(start, this.used))) this.full = true;
      }
      return;
    }
    // Large data: whatever is batched goes out with this head, then the data as it is.
    this.used = headEnd;
    const from = this.batches ? this.batchStart : start;
    this.batchStart = headEnd;
    if (!connection.write(slab.subarray(from, headEnd), data)) this.full = true;
  }

  /** Makes room for `bytes` at the end of the slab and returns where they start. */
  private reserve(bytes: number): number {
    if (this.used + bytes <= this.slab.length) return this.used;
    // A batch must be one buffer: hand it over before starting the next slab.
    this.flush();
    const size = Math.max(bytes, Math.min(MAX_SLAB_BYTES, this.slab.length === 0 ? FIRST_SLAB_BYTES : this.slab.length * 2));
    this.slab = Buffer.allocUnsafe(size);
    this.used = 0;
    this.batchStart = 0;
    return 0;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    defer(writerFlushLater, this);
  }
}
