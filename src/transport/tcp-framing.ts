/**
 * The two framings a tcp peer may speak (docs/clients.md, "Python"), told apart once per connection:
 *
 * - `standard` (spec §2): the byte stream is the frames themselves, `[len][flag]...`.
 * - `length_prefixed`: the Python reference client (socket.d 2.5.x, socketd_aio_tcp) writes every frame with an
 *   extra 4-byte big-endian length in front, `[L][frame]`, where the frame's own first int32 is `L` again, and
 *   reads the same way.
 *
 * A standard connection starts with a Connect, so bytes 4-7 are its flag, 10; a length-prefixed one repeats the
 * length there. Only a repeated length that is followed by the Connect flag (bytes 8-11) is the prefixed
 * framing: anything else is left to the standard decoder, which refuses it exactly as it always did.
 *
 * Nothing here knows Socket.D beyond the length and flag words; the session above never learns which framing
 * its connection speaks (its tcp adapter strips and adds the prefixes).
 */
import type { ConnectionHandler } from './connection.js';

export type TcpFraming = 'standard' | 'length_prefixed';

/** Told once per connection which framing it speaks (counted as a metric by the wiring point). */
export type TcpFramingObserver = (transport: 'tcp' | 'tcps', framing: TcpFraming) => void;

/** The Connect flag (spec §1): a standard first frame has it at bytes 4-7. */
const CONNECT_FLAG = 10;

/** Bytes that decide a standard connection, and the most that decide any. */
const DECIDE_STANDARD_BYTES = 8;
const DECIDE_ANY_BYTES = 12;

/**
 * Decides the framing from the first bytes of a connection, `head` being at least its first 12 bytes, or all
 * of them when fewer arrived; null when more are needed. A standard client is decided at byte 8.
 */
export function detectTcpFraming(head: Buffer): TcpFraming | null {
  if (head.length < DECIDE_STANDARD_BYTES) return null;
  const first = head.readInt32BE(0);
  const second = head.readInt32BE(4);
  // A standard Connect has its flag here; a length of 10 is no valid frame in either framing, so a repeated
  // 10 is left to the standard decoder too.
  if (first !== second || second === CONNECT_FLAG) return 'standard';
  if (head.length < DECIDE_ANY_BYTES) return null;
  return head.readInt32BE(8) === CONNECT_FLAG ? 'length_prefixed' : 'standard';
}

/**
 * Collects a connection's first chunks until their first 12 bytes decide its framing. The chunks are kept
 * whole, to be handed on unchanged once decided.
 */
export class TcpFramingDetector {
  /** Every chunk received so far (normally one). */
  readonly chunks: Buffer[] = [];
  /** The first bytes, copied only when they come in several chunks (made then: most connections never need it). */
  private head: Buffer | null = null;
  private headBytes = 0;

  /** Adds a chunk; returns the framing once decided, else null. */
  push(chunk: Buffer): TcpFraming | null {
    this.chunks.push(chunk);
    // The usual case: the whole head is in the first chunk.
    if (this.headBytes === 0 && chunk.length >= DECIDE_ANY_BYTES) return detectTcpFraming(chunk);
    const head = (this.head ??= Buffer.alloc(DECIDE_ANY_BYTES));
    const take = Math.min(DECIDE_ANY_BYTES - this.headBytes, chunk.length);
    chunk.copy(head, this.headBytes, 0, take);
    this.headBytes += take;
    return detectTcpFraming(head.subarray(0, this.headBytes));
  }
}

/**
 * Inbound side of the prefixed framing: strips each frame's 4-byte prefix and hands the frame's bytes to the
 * handler, as views of the received chunks (no copy, except a header split across chunks). The prefix must
 * equal the frame's own length; a mismatch is reported as invalid (`length_prefix_mismatch`), and a length
 * below 8 is handed on so the decoder refuses it as it would on a standard connection. Nothing is buffered
 * beyond an 8-byte header; the limits stay the decoder's, checked at the earliest byte as usual.
 */
export class LengthPrefixReader {
  /** Bytes of the current frame still to hand on. */
  private remaining = 0;
  /** A header (prefix and the frame's length) split across chunks. */
  private readonly header = Buffer.alloc(8);
  private headerBytes = 0;
  private failed = false;

  push(chunk: Buffer, handler: ConnectionHandler): void {
    const n = chunk.length;
    let off = 0;
    while (off < n && !this.failed) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - off);
        handler.connectionOnData(off === 0 && take === n ? chunk : chunk.subarray(off, off + take));
        this.remaining -= take;
        off += take;
        continue;
      }
      if (this.headerBytes === 0 && n - off >= 8) {
        // The frame itself (its own length first) follows the prefix: handed on by the branch above.
        if (!this.check(chunk.readInt32BE(off), chunk.readInt32BE(off + 4), handler)) return;
        this.remaining = chunk.readInt32BE(off);
        off += 4;
        continue;
      }
      const take = Math.min(8 - this.headerBytes, n - off);
      chunk.copy(this.header, this.headerBytes, off, off + take);
      this.headerBytes += take;
      off += take;
      if (this.headerBytes < 8) return;
      this.headerBytes = 0;
      const prefix = this.header.readInt32BE(0);
      if (!this.check(prefix, this.header.readInt32BE(4), handler)) return;
      // A copy: the decoder may keep what it is given, and the header buffer is reused.
      handler.connectionOnData(Buffer.from(this.header.subarray(4, 8)));
      this.remaining = prefix - 4;
    }
  }

  /** False (and reading stops) when the header cannot start a frame. */
  private check(prefix: number, length: number, handler: ConnectionHandler): boolean {
    if (prefix !== length) {
      this.failed = true;
      handler.connectionOnInvalid('length_prefix_mismatch',
        `length prefix ${prefix} differs from the frame's own length ${length} (Python client framing, docs/clients.md)`);
      return false;
    }
    if (prefix < 8) {
      // Refused by the decoder (frame_length_invalid), as on a standard connection; nothing after it is read.
      this.failed = true;
      handler.connectionOnData(int32(length));
      return false;
    }
    return true;
  }
}

function int32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeInt32BE(value, 0);
  return out;
}

/** What the tcp adapter needs of a socket after its framing is decided: a net.Socket, or a LengthPrefixSocket. */
export interface TcpSocketSink {
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  readonly destroyed: boolean;
  write(chunk: Buffer, callback?: () => void): boolean;
  cork(): void;
  uncork(): void;
  end(): void;
  destroy(error?: Error): void;
  pause(): void;
  resume(): void;
}

/**
 * Outbound side of the prefixed framing: a socket stand-in that writes `[L][frame]` for every frame of the
 * byte stream it is given. The adapter writes whole frames, but one write may hold many frames or part of
 * one (a large frame written as several ranges within one corked flush), so frames are found by their own
 * length. The prefix is the frame's first 4 bytes written twice (a view, no copy), and every write is corked
 * so a prefix and its frame go to the kernel in one writev: the Python reader takes a frame whole only when
 * it arrives in one read (docs/clients.md).
 */
export class LengthPrefixSocket implements TcpSocketSink {
  /** Bytes of the current frame still to pass through. */
  private need = 0;
  /** The first bytes of a frame whose length word was split across writes. */
  private readonly lengthWord = Buffer.alloc(4);
  private lengthBytes = 0;

  constructor(private readonly socket: TcpSocketSink) {}

  get writableLength(): number {
    return this.socket.writableLength + this.lengthBytes;
  }

  get writableNeedDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  write(chunk: Buffer, callback?: () => void): boolean {
    const socket = this.socket;
    const n = chunk.length;
    let off = 0;
    // The pieces are written at the end, the callback on the last one, inside one cork.
    const pieces: Buffer[] = [];
    while (off < n) {
      if (this.need > 0) {
        const take = Math.min(this.need, n - off);
        pieces.push(off === 0 && take === n ? chunk : chunk.subarray(off, off + take));
        this.need -= take;
        off += take;
        continue;
      }
      if (this.lengthBytes === 0 && n - off >= 4) {
        const length = chunk.readInt32BE(off);
        if (length < 8) return this.notAFrame(length);
        pieces.push(chunk.subarray(off, off + 4));
        this.need = length;
        continue;
      }
      const take = Math.min(4 - this.lengthBytes, n - off);
      chunk.copy(this.lengthWord, this.lengthBytes, off, off + take);
      this.lengthBytes += take;
      off += take;
      if (this.lengthBytes < 4) break;
      this.lengthBytes = 0;
      const length = this.lengthWord.readInt32BE(0);
      if (length < 8) return this.notAFrame(length);
      const word = Buffer.from(this.lengthWord);
      pieces.push(word, word);
      this.need = length - 4;
    }
    if (pieces.length === 0) {
      if (callback !== undefined) process.nextTick(callback);
      return !socket.writableNeedDrain;
    }
    socket.cork();
    let ok = true;
    for (let i = 0; i < pieces.length; i++) ok = socket.write(pieces[i]!, i === pieces.length - 1 ? callback : undefined);
    socket.uncork();
    return ok;
  }

  /**
   * The adapter wrote bytes that are no frame (a bug above): the connection goes, with the error as its close
   * detail, rather than lose the framing.
   */
  private notAFrame(length: number): boolean {
    this.socket.destroy(new Error(`length-prefixed framing: a frame length of ${length} in the outbound stream`));
    return false;
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  end(): void {
    this.socket.end();
  }

  destroy(error?: Error): void {
    this.socket.destroy(error);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}
