/**
 * The Socket.D frame codec (spec §1). No I/O: bytes in, frames out, and the same frames (or the same error)
 * however the input is chunked, one byte at a time included.
 *
 *   [len:int32 BE][flag:int32 BE][sid][00 0A][event][00 0A][meta][00 0A][data]
 *
 * Limits are checked at the earliest byte that breaks them: the length prefix at byte 4, the flag at byte 8,
 * each header field while it streams in, the data size as soon as the meta separator arrives. Nothing larger
 * than one frame (bounded by maxFrame) plus one input chunk is ever buffered, and a refused frame is skipped
 * without buffering its remaining bytes.
 */
import { EMPTY_BUFFER, Frame } from './frame.js';
import { FrameError } from './errors.js';
import { FRAME_PREFIX_BYTES, MIN_MESSAGE_FRAME_BYTES, type FrameLimits } from './limits.js';
import {
  HeaderScanner,
  SCAN_DONE,
  SCAN_FAILED,
  SCAN_MORE,
  bareFrame,
  buildFrame,
  checkFlag,
  checkLength,
  withHeader,
} from './header-scan.js';

/** Receives what the decoder produces. Implemented by the session, so the hot path has no closures. */
export interface FrameSink {
  onFrame(frame: Frame): void;
  /** A fatal error is the last call the sink receives from this decoder. */
  onFrameError(error: FrameError): void;
  /**
   * Optional: an 8-byte frame (len + flag only, e.g. Ping) whole in one chunk is offered here first, so a
   * heartbeat costs no Frame object. Returns true when taken; false makes the decoder build the Frame and
   * call onFrame as for any other frame. Precondition: `flag` passed the flag checks (see mayBeBare).
   */
  onBare?(flag: number): boolean;
}

/**
 * Frames of at least this size that arrive over several chunks are delivered as those chunks (Frame.parts)
 * instead of being copied into one buffer: a 1 MiB payload forwarded through the broker is then never copied
 * by it (bench S5), and no fresh megabyte is page-faulted in per frame.
 */
export const PARTS_MIN_BYTES = 64 * 1024;

/**
 * Stream decoder (tcp). Feed it chunks with {@link FrameDecoder.push}; frames and errors go to the sink.
 * Frames that arrive whole inside one chunk are views of that chunk (no copy); a frame split across chunks
 * is copied once when its last byte arrives.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the frame being assembled, or -1 before its 4-byte prefix has arrived. */
  private frameLen = -1;
  /** Flag of the frame being assembled, or -1 before byte 8. */
  private flag = -1;
  /** Bytes still to discard of a refused frame. */
  private skip = 0;
  private failed = false;
  /** Chunk index and offset of the scanner's next byte while assembling. */
  private scanChunk = 0;
  private scanOffset = 0;
  private readonly scanner: HeaderScanner;

  constructor(private readonly limits: FrameLimits) {
    this.scanner = new HeaderScanner(limits);
  }

  /** True once a fatal error was reported; later input is ignored. */
  get isFailed(): boolean {
    return this.failed;
  }

  /** Stops decoding, also of the frames left in the current chunk (the session is closing). */
  stop(): void {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
  }

  /** Bytes held for an incomplete frame (bounded by maxFrame + one chunk). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer, sink: FrameSink): void {
    if (this.failed || chunk.length === 0) return;
    if (this.skip > 0) {
      if (chunk.length <= this.skip) {
        this.skip -= chunk.length;
        return;
      }
      chunk = chunk.subarray(this.skip);
      this.skip = 0;
    }
    if (this.buffered > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (!this.advancePartial(sink)) return;
      // The partial frame completed; whatever followed it continues on the contiguous path.
      chunk = this.takeAll();
      if (chunk.length === 0) return;
    }
    this.decodeContiguous(chunk, sink);
  }

  /** Decodes the whole frames in `buf`, then keeps its tail as the start of a partial frame. */
  private decodeContiguous(buf: Buffer, sink: FrameSink): void {
    const limits = this.limits;
    const scanner = this.scanner;
    let off = 0;
    const total = buf.length;
    // The sink may stop() us from any callback: a bare frame, a recoverable error or a frame.
    while (!this.failed && total - off >= FRAME_PREFIX_BYTES) {
      const len = buf.readInt32BE(off);
      const lenError = checkLength(len, limits);
      if (lenError !== null) return this.fatal(lenError, sink);
      const flag = buf.readInt32BE(off + 4);
      const flagError = checkFlag(flag, len);
      if (flagError !== null) return this.fatal(flagError, sink);
      if (total - off < len) break;
      // No view per frame: the Frame refers to `buf` by offset (principle 7).
      const start = off;
      off += len;
      if (len === FRAME_PREFIX_BYTES) {
        if (sink.onBare === undefined || !sink.onBare(flag)) sink.onFrame(bareFrame(buf, start, flag));
        continue;
      }
      scanner.reset();
      const status = scanner.scanWhole(buf, start, len) ? SCAN_DONE : scanner.scan(buf, start + FRAME_PREFIX_BYTES, start + len, len);
      if (status !== SCAN_DONE) {
        const error = withHeader(scanner.error!, buf.subarray(start, start + len), flag, scanner);
        if (error.fatal) return this.fatal(error, sink);
        sink.onFrameError(error);
        continue;
      }
      const dataError = this.checkData(len, scanner);
      if (dataError !== null) {
        sink.onFrameError(withHeader(dataError, buf.subarray(start, start + len), flag, scanner));
        continue;
      }
      sink.onFrame(buildFrame(buf, start, len, flag, scanner));
      if (this.failed) return; // the sink may have stopped us
    }
    if (off < total && !this.failed) {
      this.chunks.push(off === 0 ? buf : buf.subarray(off));
      this.buffered = total - off;
      this.advancePartial(sink);
    }
  }

  private checkData(len: number, scanner: HeaderScanner): FrameError | null {
    const dataLen = len - (scanner.metaEnd + 2);
    if (dataLen > this.limits.maxData) {
      return new FrameError('data_too_large', `data of ${dataLen} bytes exceeds the limit of ${this.limits.maxData}`, false);
    }
    return null;
  }

  /**
   * Checks what has arrived of a frame that is not complete in one chunk. Returns true when the frame
   * completed (it was delivered or refused and its bytes consumed), false when it waits for more bytes.
   */
  private advancePartial(sink: FrameSink): boolean {
    if (this.frameLen < 0) {
      if (this.buffered < 4) return false;
      const len = this.peekInt32(0);
      const lenError = checkLength(len, this.limits);
      if (lenError !== null) {
        this.fatal(lenError, sink);
        return false;
      }
      this.frameLen = len;
    }
    if (this.flag < 0) {
      if (this.buffered < FRAME_PREFIX_BYTES) return false;
      const flag = this.peekInt32(4);
      const flagError = checkFlag(flag, this.frameLen);
      if (flagError !== null) {
        this.fatal(flagError, sink);
        return false;
      }
      this.flag = flag;
      this.scanner.reset();
      this.locateScanStart();
    }
    const len = this.frameLen;
    const scanner = this.scanner;
    if (len > FRAME_PREFIX_BYTES && scanner.field < 3) {
      let status = SCAN_MORE;
      while (status === SCAN_MORE && this.scanChunk < this.chunks.length) {
        const chunk = this.chunks[this.scanChunk];
        const before = scanner.pos;
        status = scanner.scan(chunk, this.scanOffset, chunk.length, len);
        this.scanOffset += scanner.pos - before;
        if (this.scanOffset >= chunk.length) {
          this.scanChunk++;
          this.scanOffset = 0;
        }
      }
      if (status === SCAN_FAILED) {
        this.refusePartial(scanner.error!, sink);
        return !this.failed;
      }
      if (status === SCAN_DONE) {
        const dataError = this.checkData(len, scanner);
        if (dataError !== null) {
          this.refusePartial(dataError, sink);
          return true;
        }
      }
    }
    if (this.buffered < len) return false;
    const flag = this.flag;
    this.frameLen = -1;
    this.flag = -1;
    if (len >= PARTS_MIN_BYTES && this.chunks[0]!.length < len && this.chunks[0]!.length >= scanner.metaEnd + 2) {
      // A large frame over several chunks, its header in the first: kept as the chunks (views), not copied.
      const parts = this.takeParts(len);
      sink.onFrame(new Frame(flag, parts[0]!, 0, len, scanner.sidEnd, scanner.eventEnd, scanner.metaEnd, parts));
      return !this.failed;
    }
    const frameBuf = this.take(len);
    sink.onFrame(len === FRAME_PREFIX_BYTES ? bareFrame(frameBuf, 0, flag) : buildFrame(frameBuf, 0, len, flag, scanner));
    return !this.failed;
  }

  /** Refuses the frame being assembled: reports the error, then discards its bytes (buffered and to come). */
  private refusePartial(error: FrameError, sink: FrameSink): void {
    const headerBytes = Math.min(this.buffered, this.frameLen);
    const head = this.peek(headerBytes);
    const full = withHeader(error, head, this.flag, this.scanner);
    if (full.fatal) {
      this.fatal(full, sink);
      return;
    }
    const len = this.frameLen;
    if (this.buffered >= len) {
      this.take(len);
    } else {
      this.skip = len - this.buffered;
      this.chunks = [];
      this.buffered = 0;
    }
    this.frameLen = -1;
    this.flag = -1;
    sink.onFrameError(full);
  }

  private fatal(error: FrameError, sink: FrameSink): void {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
    sink.onFrameError(error);
  }

  /** Sets the scan cursor to frame offset 8 within the buffered chunks. */
  private locateScanStart(): void {
    let offset = FRAME_PREFIX_BYTES;
    let i = 0;
    while (i < this.chunks.length && offset >= this.chunks[i].length) {
      offset -= this.chunks[i].length;
      i++;
    }
    this.scanChunk = i;
    this.scanOffset = offset;
  }

  private peekInt32(at: number): number {
    const first = this.chunks[0];
    if (first.length >= at + 4) return first.readInt32BE(at);
    return this.peek(at + 4).readInt32BE(at);
  }

  /** The first n buffered bytes as one buffer, without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    for (let i = 0; copied < n; i++) {
      const c = this.chunks[i];
      const k = Math.min(c.length, n - copied);
      c.copy(out, copied, 0, k);
      copied += k;
    }
    return out;
  }

  /** Consumes the first n buffered bytes: a view when they lie in one chunk, else one copy. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let copied = 0;
      while (copied < n) {
        const c = this.chunks[0];
        const k = Math.min(c.length, n - copied);
        c.copy(out, copied, 0, k);
        copied += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    return out;
  }

  /** Consumes the first n buffered bytes as views of the chunks that hold them, in order (no copy). */
  private takeParts(n: number): Buffer[] {
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        parts.push(c);
        this.chunks.shift();
        left -= c.length;
      } else {
        parts.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    return parts;
  }

  private takeAll(): Buffer {
    if (this.buffered === 0) {
      this.chunks = [];
      return EMPTY_BUFFER;
    }
    const out = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return out;
  }
}

/**
 * Decodes whole frames from a message transport (ws message, udp datagram: spec §2). The length prefix must
 * equal the message size. A frame above maxFrame is refused but its header is still read, so the sender can
 * be told which frame was too large (spec §2: udp frames over the datagram size get an Alarm).
 * A fatal error means the peer speaks something else and should be closed with 1002.
 */
export class MessageDecoder {
  private readonly scanner: HeaderScanner;

  constructor(private readonly limits: FrameLimits) {
    this.scanner = new HeaderScanner(limits);
  }

  decode(buf: Buffer): Frame | FrameError {
    if (buf.length < FRAME_PREFIX_BYTES) {
      return new FrameError('frame_length_invalid', `message of ${buf.length} bytes is shorter than a frame`, true);
    }
    const flag = this.checkPrefix(buf, buf.length);
    if (typeof flag !== 'number') return flag;
    if (buf.length === FRAME_PREFIX_BYTES) return bareFrame(buf, 0, flag);
    const scanner = this.scanner;
    scanner.reset();
    const status = scanner.scanWhole(buf, 0, buf.length) ? SCAN_DONE : scanner.scan(buf, FRAME_PREFIX_BYTES, buf.length, buf.length);
    if (status !== SCAN_DONE) return withHeader(scanner.error!, buf, flag, scanner);
    const limitError = this.checkLimits(buf, buf.length, flag);
    return limitError ?? buildFrame(buf, 0, buf.length, flag, scanner);
  }

  /**
   * As decode(), for one large message that arrived as several buffers (a ws message cut from several reads):
   * `parts` in order are the message, `size` bytes in all. When the first part holds the whole header, the
   * frame keeps the parts (Frame.parts: forwarded without ever being joined, as the stream decoder does);
   * otherwise they are joined and decoded as one buffer. The checks and errors are decode()'s.
   */
  decodeParts(parts: readonly Buffer[], size: number): Frame | FrameError {
    const first = parts[0]!;
    if (parts.length === 1 || first.length < FRAME_PREFIX_BYTES) return this.decode(parts.length === 1 ? first : Buffer.concat(parts, size));
    const flag = this.checkPrefix(first, size);
    if (typeof flag !== 'number') return flag;
    const scanner = this.scanner;
    scanner.reset();
    const status = scanner.scan(first, FRAME_PREFIX_BYTES, first.length, size);
    if (status === SCAN_MORE) return this.decode(Buffer.concat(parts, size));
    if (status !== SCAN_DONE) return withHeader(scanner.error!, first, flag, scanner);
    const limitError = this.checkLimits(first, size, flag);
    return limitError ?? new Frame(flag, first, 0, size, scanner.sidEnd, scanner.eventEnd, scanner.metaEnd, parts);
  }

  /** The length prefix against the message size, then the flag: the flag, or the error. */
  private checkPrefix(buf: Buffer, size: number): number | FrameError {
    const len = buf.readInt32BE(0);
    if (len !== size) {
      return new FrameError('datagram_length_mismatch', `frame length ${len} differs from message size ${size}`, true);
    }
    if (len > FRAME_PREFIX_BYTES && len < MIN_MESSAGE_FRAME_BYTES) {
      return new FrameError('frame_length_invalid', `invalid frame length ${len}`, true);
    }
    const flag = buf.readInt32BE(4);
    return checkFlag(flag, len) ?? flag;
  }

  /** maxFrame and maxData, once the header is scanned (the error carries it). `head` holds the header. */
  private checkLimits(head: Buffer, len: number, flag: number): FrameError | null {
    const limits = this.limits;
    const scanner = this.scanner;
    if (len > limits.maxFrame) {
      const error = new FrameError('frame_too_large', `frame of ${len} bytes exceeds the limit of ${limits.maxFrame}`, false);
      return withHeader(error, head, flag, scanner);
    }
    const dataLen = len - (scanner.metaEnd + 2);
    if (dataLen > limits.maxData) {
      const error = new FrameError('data_too_large', `data of ${dataLen} bytes exceeds the limit of ${limits.maxData}`, false);
      return withHeader(error, head, flag, scanner);
    }
    return null;
  }
}

const sharedMessageDecoders = new WeakMap<FrameLimits, MessageDecoder>();

/**
 * One MessageDecoder per limits object, for every message connection that decodes with those limits: decode()
 * and decodeParts() keep nothing between calls and run to completion (nothing they call decodes), so sharing
 * one is safe and saves each idle ws session its decoder and header scanner.
 */
export function sharedMessageDecoder(limits: FrameLimits): MessageDecoder {
  let decoder = sharedMessageDecoders.get(limits);
  if (decoder === undefined) {
    decoder = new MessageDecoder(limits);
    sharedMessageDecoders.set(limits, decoder);
  }
  return decoder;
}

/** One-off form of {@link MessageDecoder.decode}. */
export function decodeMessage(buf: Buffer, limits: FrameLimits): Frame | FrameError {
  return new MessageDecoder(limits).decode(buf);
}

// The encoders live in encode.ts; re-exported so that codec.ts stays the one entry for frames.
export { encodeHead, encodeFrame, encodeBare, encodeReheaded, reheadedLength, writeReheaded, writeReheadedFrame, bodyAfterSid } from './encode.js';
