/**
 * `sd:tcp` and `sd:tcps` (spec §2): a length-prefixed byte stream. The adapter does not cut frames; it hands
 * the session whatever chunks the socket reads (framing `stream`) and batches outbound frames per tick.
 * Usable on both sides: wrap a socket accepted by {@link TcpListener} or one dialed with net/tls.connect.
 *
 * With `detectFraming`, a connection's first bytes also tell whether the peer speaks the Python reference
 * client's extra length prefix (tcp-framing.ts, docs/clients.md); the adapter then strips and adds the prefixes
 * itself. The decision is made once: a standard connection then runs exactly the code it runs without it.
 */
import net from 'node:net';
import tls from 'node:tls';
import type {
  BoundAddress,
  Connection,
  ConnectionAcceptor,
  ConnectionHandler,
  Framing,
  Listener,
  ListenerReporter,
  TransportCloseCode,
} from './connection.js';
import { listenServer, stopListening } from './listen.js';
import {
  LengthPrefixReader,
  LengthPrefixSocket,
  TcpFramingDetector,
  type TcpFraming,
  type TcpFramingObserver,
  type TcpSocketSink,
} from './tcp-framing.js';
import { flushAtTickEnd, type TickFlushable } from './tick-flush.js';
import { releasePending, takePending, type PendingSlots } from './pending-pool.js';

/** The connection a socket belongs to, for the shared listeners. */
const kConnection = Symbol('socketd.tcpConnection');
type TaggedSocket = (net.Socket | tls.TLSSocket) & { [kConnection]?: TcpConnection };

/** Default high-water mark of a connection's outbound buffer (pending + socket-buffered bytes). */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;

/** Pending ranges at least this large are written as they are, without copying. */
const LARGE_CHUNK = 16 * 1024;
/** Up to this many pending bytes are copied into one buffer and written with one call; above, cork + writes. */
const COALESCE_LIMIT = 64 * 1024;

/** How long end() waits for the peer to close before destroying (a peer may leave a half-open socket). */
const END_LINGER_MS = 5_000;

const KEEPALIVE_DELAY_MS = 30_000;

/**
 * How long end() waits for a peer's first bytes when its framing is not known yet (a refusal at accept), so
 * the Close goes out in the framing the peer reads. A client sends its Connect right after connecting.
 */
const DETECT_END_WAIT_MS = 1_000;

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/** Maps a socket error to a close code: a broken connection is `reset`, anything else `error`. */
export function classifySocketError(error: Error): TransportCloseCode {
  const code = (error as NodeJS.ErrnoException).code;
  return code !== undefined && RESET_CODES.has(code) ? 'reset' : 'error';
}


export interface TcpConnectionOptions {
  transport: 'tcp' | 'tcps';
  /** Bytes above which write() returns false (default 1 MiB). */
  highWaterMark?: number;
  /** Tell the Python client's length-prefixed framing from the standard one on the first bytes (default off). */
  detectFraming?: boolean;
  /** Told which framing each connection speaks, once decided (only with detectFraming). */
  onFraming?: TcpFramingObserver;
}

export class TcpConnection implements Connection, TickFlushable {
  readonly transport: 'tcp' | 'tcps';
  readonly framing: Framing = 'stream';
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly maxOutboundFrame = Infinity;

  /**
   * The socket, or for a length-prefixed peer the LengthPrefixSocket over it (set once, when the framing is
   * decided): the write paths below are the same code for both.
   */
  private socket: TcpSocketSink;
  private readonly highWaterMark: number;
  /**
   * Drain is reported once the buffered bytes fall to this (half the high-water mark), not when the socket
   * is empty as Node's 'drain' is: the paused senders resume while the consumer still has data to read, so
   * the pipe never runs dry (spec §7 flow control without bubbles).
   */
  private readonly lowWaterMark: number;
  /** Completion callback for writes made while congested; created on first congestion. */
  private writeDone: (() => void) | null = null;
  private handler: ConnectionHandler | null = null;
  /**
   * What write()/writeRange() queued this tick, as ranges in triples: source, start, end. One array (not
   * three), taken from the shared pool for the tick and given back by flush (pending-pool.ts): an idle
   * connection holds none. Adjacent ranges of one source are merged on the way in, so a run of forwarded
   * frames is one entry.
   */
  private pending: PendingSlots | null = null;
  /** Slots of `pending` in use (3 per entry); the array may be longer (taken from the pool). */
  private pendingSlots = 0;
  private pendingBytes = 0;
  private flushScheduled = false;
  private needDrain = false;
  private isClosed = false;
  private ending = false;
  /** Set when we ended/destroyed the socket: the close is then `local` whatever the socket reports. */
  private localReason: string | null = null;
  private socketError: Error | null = null;
  private closeCode: TransportCloseCode = 'local';
  private closeDetail = '';
  private lingerTimer: NodeJS.Timeout | null = null;
  /** Until the first bytes decide the framing (detectFraming only); null after, and without detection. */
  private detector: TcpFramingDetector | null = null;
  /** Strips the prefixes of a length-prefixed peer; null for a standard one. */
  private prefixReader: LengthPrefixReader | null = null;
  private readonly onFraming: TcpFramingObserver | null;

  constructor(socket: net.Socket | tls.TLSSocket, options: TcpConnectionOptions) {
    this.socket = socket;
    this.onFraming = options.onFraming ?? null;
    if (options.detectFraming === true) {
      this.detector = new TcpFramingDetector();
      // Holds the flush until the framing is decided (see decideFraming): what is queued before, a refusal
      // at accept, must go out in the framing the peer reads. queued() schedules no flush while this is set.
      this.flushScheduled = true;
    }
    this.transport = options.transport;
    this.highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    this.lowWaterMark = Math.floor(this.highWaterMark / 2);
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;

    // Listeners are shared by every connection and find theirs through the socket: no closures per
    // connection (bench S4, memory per idle connection).
    (socket as TaggedSocket)[kConnection] = this;

    // Frames are small and latency matters more than packet count: we coalesce ourselves (see flush).
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    // 'error' is handled from the start so a failing socket never throws out of the adapter, even before start().
    socket.on('error', TcpConnection.socketOnError);
    socket.on('close', TcpConnection.socketOnClose);
    socket.on('drain', TcpConnection.socketOnDrain);
    if (socket.destroyed) this.finish(socket.errored ? classifySocketError(socket.errored) : 'peer_closed', 'closed before start');
  }

  get bufferedBytes(): number {
    return this.pendingBytes + this.socket.writableLength;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  start(handler: ConnectionHandler): void {
    if (this.handler !== null) throw new Error('TcpConnection.start called twice');
    this.handler = handler;
    if (this.isClosed) {
      process.nextTick(TcpConnection.emitCloseLater, this);
      return;
    }
    // Reading starts here (no 'data' listener before), so no bytes are lost between accept and start.
    // A pause() called before start keeps the stream paused: attaching 'data' does not resume it then.
    // Before the framing is decided, this.socket is the socket itself.
    (this.socket as net.Socket).on('data', this.detector === null ? TcpConnection.socketOnData : TcpConnection.socketOnFirstBytes);
  }

  /** Returns true when closed or ending: nothing is queued then and no drain follows. */
  write(head: Buffer, body?: Buffer): boolean {
    if (this.isClosed || this.ending) return true;
    this.append(head, 0, head.length);
    this.pendingBytes += head.length;
    if (body !== undefined && body.length > 0) {
      this.append(body, 0, body.length);
      this.pendingBytes += body.length;
    }
    return this.queued(body === undefined ? head.length : head.length + body.length);
  }

  writeRange(source: Buffer, start: number, end: number): boolean {
    if (this.isClosed || this.ending) return true;
    this.appendRange(source, start, end);
    this.pendingBytes += end - start;
    return this.queued(end - start);
  }

  writeRanges(head: Buffer, headStart: number, headEnd: number, body: Buffer, bodyStart: number, bodyEnd: number): boolean {
    if (this.isClosed || this.ending) return true;
    this.appendRange(head, headStart, headEnd);
    this.appendRange(body, bodyStart, bodyEnd);
    const size = headEnd - headStart + (bodyEnd - bodyStart);
    this.pendingBytes += size;
    return this.queued(size);
  }

  writeParts(parts: readonly Buffer[], size: number): boolean {
    if (this.isClosed || this.ending) return true;
    for (const part of parts) this.append(part, 0, part.length);
    this.pendingBytes += size;
    return this.queued(size);
  }

  /**
   * Schedules the flush and answers write() for a frame of `size` bytes just queued: false above the
   * high-water mark, unless the frame is all there is. A frame into an empty queue is taken without pushing
   * back however large it is (the socket takes it at the end of the tick): else every frame above the mark
   * (1 MiB payloads, bench S5) would start a congestion episode of its own. The queue stays bounded by the
   * outbound limit, checked before writing.
   */
  private queued(size: number): boolean {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      flushAtTickEnd(this);
    }
    const buffered = this.bufferedBytes;
    if (buffered > this.highWaterMark && buffered > size) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(reason: string): void {
    if (this.isClosed || this.ending) return;
    this.ending = true;
    this.localReason = reason;
    if (this.detector !== null) {
      // The framing is not known yet: wait for the first bytes (decideFraming ends it), at most a while.
      this.socket.resume();
      this.lingerTimer = setTimeout(TcpConnection.lingerOnTimeout, DETECT_END_WAIT_MS, this);
      this.lingerTimer.unref();
      return;
    }
    this.endNow();
  }

  /** Flushes, half-closes and waits for the peer's FIN (end() once the framing is known). */
  private endNow(): void {
    this.flush();
    this.socket.end();
    // We must read the peer's FIN for the socket to close, so reading resumes; a peer that never closes
    // is cut off after the linger time.
    this.socket.resume();
    this.lingerTimer = setTimeout(TcpConnection.lingerOnTimeout, END_LINGER_MS, this);
    this.lingerTimer.unref();
  }

  destroy(reason: string): void {
    if (this.isClosed) return;
    if (this.localReason === null) this.localReason = reason;
    this.dropPending();
    this.socket.destroy();
  }

  private dropPending(): void {
    if (this.pending !== null) releasePending(this.pending, this.pendingSlots);
    this.pending = null;
    this.pendingSlots = 0;
    this.pendingBytes = 0;
  }

  private flush(): void {
    this.flushScheduled = false;
    const pending = this.pending;
    const slots = this.pendingSlots;
    const count = slots / 3;
    if (pending === null || count === 0) return;
    if (this.socket.destroyed) {
      this.dropPending();
      return;
    }
    const bytes = this.pendingBytes;
    // Writes made while this one runs go to another array from the pool; this one goes back to it below.
    this.pending = null;
    this.pendingSlots = 0;
    this.pendingBytes = 0;
    // While congested, each write reports its completion so the drain is noticed at the low-water mark.
    const done = this.needDrain ? (this.writeDone ??= () => this.checkDrain()) : undefined;
    if (count === 1) {
      this.socket.write(view(pending, 0), done);
    } else if (bytes <= COALESCE_LIMIT) {
      // One copy is cheaper than one syscall (or one writev entry) per small frame.
      this.socket.write(gather(pending, 0, count, bytes), done);
    } else {
      // Many frames: small ranges are copied together in groups of up to COALESCE_LIMIT bytes, large ones are
      // written as they are; cork makes the few resulting buffers one writev.
      this.socket.cork();
      let groupStart = 0;
      let groupBytes = 0;
      for (let i = 0; i < count; i++) {
        const length = (pending[3 * i + 2] as number) - (pending[3 * i + 1] as number);
        if (length >= LARGE_CHUNK) {
          this.writeGroup(pending, groupStart, i, groupBytes, done);
          this.socket.write(view(pending, i), done);
          groupStart = i + 1;
          groupBytes = 0;
        } else if (groupBytes + length > COALESCE_LIMIT) {
          this.writeGroup(pending, groupStart, i, groupBytes, done);
          groupStart = i;
          groupBytes = length;
        } else {
          groupBytes += length;
        }
      }
      this.writeGroup(pending, groupStart, count, groupBytes, done);
      this.socket.uncork();
    }
    releasePending(pending, slots);
    // The socket may have taken everything synchronously without ever needing its own 'drain' (our mark can
    // be below the socket's 16 KiB one): report the drain here then.
    if (this.needDrain && !this.socket.writableNeedDrain) this.checkDrain();
  }

  /** Queues `source[start, end)`: extends the last entry when it ends where this range starts, else appends. */
  private appendRange(source: Buffer, start: number, end: number): void {
    const pending = this.pending;
    const n = this.pendingSlots;
    if (pending !== null && n > 0 && pending[n - 3] === source && pending[n - 1] === start) pending[n - 1] = end;
    else if (end > start) this.append(source, start, end);
  }

  /** Appends one entry (source, start, end) at pendingSlots. */
  private append(source: Buffer, start: number, end: number): void {
    const pending = (this.pending ??= takePending());
    const n = this.pendingSlots;
    pending[n] = source;
    pending[n + 1] = start;
    pending[n + 2] = end;
    this.pendingSlots = n + 3;
  }

  /** Writes pending entries [from, to) as one buffer (a copy unless it is a single entry). */
  private writeGroup(pending: PendingSlots, from: number, to: number, bytes: number, done: (() => void) | undefined): void {
    if (to - from === 1) this.socket.write(view(pending, from), done);
    else if (to > from) this.socket.write(gather(pending, from, to, bytes), done);
  }

  private checkDrain(): void {
    if (!this.needDrain || this.isClosed || this.bufferedBytes > this.lowWaterMark) return;
    this.needDrain = false;
    this.handler?.connectionOnDrain();
  }

  private static socketOnData(this: TaggedSocket, chunk: Buffer): void {
    this[kConnection]!.handleData(chunk);
  }

  private static socketOnFirstBytes(this: TaggedSocket, chunk: Buffer): void {
    this[kConnection]!.handleFirstBytes(chunk);
  }

  private static socketOnPrefixedData(this: TaggedSocket, chunk: Buffer): void {
    this[kConnection]!.handlePrefixedData(chunk);
  }

  private static socketOnDrain(this: TaggedSocket): void {
    this[kConnection]!.handleDrain();
  }

  private static socketOnError(this: TaggedSocket, error: Error): void {
    this[kConnection]!.handleError(error);
  }

  private static socketOnClose(this: TaggedSocket): void {
    this[kConnection]!.handleClose();
  }

  /** The tick's flush (tick-flush.ts). */
  flushTick(): void {
    this.flush();
  }

  private static emitCloseLater(connection: TcpConnection): void {
    connection.emitClose();
  }

  private static lingerOnTimeout(connection: TcpConnection): void {
    connection.lingerExpired();
  }

  private handleData(chunk: Buffer): void {
    if (this.isClosed) return;
    this.handler?.connectionOnData(chunk);
  }

  private handleFirstBytes(chunk: Buffer): void {
    if (this.isClosed) return;
    const framing = this.detector!.push(chunk);
    if (framing !== null) this.decideFraming(framing, true);
  }

  private handlePrefixedData(chunk: Buffer): void {
    if (this.isClosed) return;
    this.prefixReader!.push(chunk, this.handler!);
  }

  /**
   * Switches the connection to its framing, once: the data listener is swapped for the framing's own (a
   * standard connection gets socketOnData, exactly as without detection), the held chunks are handed on, and
   * what was queued meanwhile is flushed, or the pending end() carried out. `observed` is false when the peer
   * never sent enough bytes to tell (counted as neither).
   */
  private decideFraming(framing: TcpFraming, observed: boolean): void {
    const detector = this.detector!;
    this.detector = null;
    const socket = this.socket as net.Socket;
    socket.removeListener('data', TcpConnection.socketOnFirstBytes);
    if (framing === 'length_prefixed') {
      this.prefixReader = new LengthPrefixReader();
      this.socket = new LengthPrefixSocket(socket);
      socket.on('data', TcpConnection.socketOnPrefixedData);
    } else {
      socket.on('data', TcpConnection.socketOnData);
    }
    if (observed) this.onFraming?.(this.transport, framing);
    this.flushScheduled = false;
    if (this.ending) {
      if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
      this.endNow();
    } else if (this.pendingSlots > 0) {
      this.flushScheduled = true;
      flushAtTickEnd(this);
    }
    for (const chunk of detector.chunks) {
      if (framing === 'length_prefixed') this.handlePrefixedData(chunk);
      else this.handleData(chunk);
    }
  }

  private handleDrain(): void {
    this.checkDrain();
  }

  private handleError(error: Error): void {
    // 'close' follows; the first error decides the close code.
    if (this.socketError === null) this.socketError = error;
  }

  private handleClose(): void {
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    if (this.localReason !== null) this.finish('local', this.localReason);
    else if (this.socketError !== null) this.finish(classifySocketError(this.socketError), this.socketError.message);
    // allowHalfOpen is false, so a peer FIN ends our side too and the socket closes cleanly.
    else this.finish('peer_closed', 'peer closed the connection');
  }

  private lingerExpired(): void {
    this.lingerTimer = null;
    // An end() that waited for the first bytes in vain: the Close goes out in the standard framing.
    if (this.detector !== null) return this.decideFraming('standard', false);
    this.socket.destroy();
  }

  private finish(code: TransportCloseCode, detail: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeCode = code;
    this.closeDetail = detail;
    this.dropPending();
    if (this.handler !== null) this.emitClose();
  }

  private emitClose(): void {
    this.handler?.connectionOnClose(this.closeCode, this.closeDetail);
  }
}

/** Pending entry `i` (source, start, end) without a copy: the source itself when the range is all of it. */
function view(pending: PendingSlots, i: number): Buffer {
  const source = pending[3 * i] as Buffer;
  const start = pending[3 * i + 1] as number;
  const end = pending[3 * i + 2] as number;
  return start === 0 && end === source.length ? source : source.subarray(start, end);
}

/**
 * Ranges up to this long are copied byte by byte: on Node 20, Buffer#copy of part of a buffer makes a
 * Uint8Array view per call (buffer.js _copyActual), which for the heads of re-headed frames (20-40 bytes)
 * cost more than the copy (CreateTypedArray was 2.5% of the broker in bench S3P under perf).
 */
const BYTEWISE_COPY_MAX = 48;

/** Copies pending entries [from, to) into one new buffer of `bytes` bytes. */
function gather(pending: PendingSlots, from: number, to: number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (let i = from; i < to; i++) {
    const source = pending[3 * i] as Buffer;
    const start = pending[3 * i + 1] as number;
    const end = pending[3 * i + 2] as number;
    if (end - start <= BYTEWISE_COPY_MAX) {
      for (let j = start; j < end; j++) out[at++] = source[j]!;
    } else {
      at += source.copy(out, at, start, end);
    }
  }
  return out;
}

/** Server-side TLS settings for `sd:tcps` / `sd:wss`: key and cert are required, the rest is Node's. */
export type TlsServerOptions = tls.TlsOptions & Required<Pick<tls.TlsOptions, 'key' | 'cert'>>;

export interface TcpListenerOptions {
  host: string;
  port: number;
  /** When given, the listener speaks `sd:tcps`. */
  tls?: TlsServerOptions;
  /** Passed to each connection (default 1 MiB). */
  highWaterMark?: number;
  /** Tell the Python client's length-prefixed framing on each connection's first bytes (default off). */
  detectFraming?: boolean;
  /** Told which framing each connection speaks, once decided. */
  onFraming?: TcpFramingObserver;
  /** Told of errors after binding. */
  reporter?: ListenerReporter;
}

export class TcpListener implements Listener {
  readonly transport: 'tcp' | 'tcps';
  private readonly options: TcpListenerOptions;
  private readonly acceptor: ConnectionAcceptor;
  private readonly server: net.Server;
  private closing = false;

  constructor(options: TcpListenerOptions, acceptor: ConnectionAcceptor) {
    this.options = options;
    this.acceptor = acceptor;
    this.transport = options.tls === undefined ? 'tcp' : 'tcps';
    this.serverOnConnection = this.serverOnConnection.bind(this);
    this.serverOnError = this.serverOnError.bind(this);
    // For tls.Server the connection listener is bound to 'secureConnection': sockets arrive after the handshake.
    this.server =
      options.tls === undefined
        ? net.createServer({ noDelay: true }, this.serverOnConnection)
        : tls.createServer(options.tls, this.serverOnConnection);
    // Errors after listen() (e.g. EMFILE on accept) must not crash the process; listen() handles its own.
    this.server.on('error', this.serverOnError);
  }

  listen(): Promise<BoundAddress> {
    return listenServer(this.server, this.options.port, this.options.host);
  }

  /** Stops accepting; open connections are not waited for (see stopListening). */
  close(): Promise<void> {
    if (this.closing) return Promise.resolve();
    this.closing = true;
    return stopListening(this.server);
  }

  private serverOnConnection(socket: net.Socket): void {
    // A tls handshake that completes after close() belongs to a connection we no longer accept.
    if (this.closing) {
      socket.destroy();
      return;
    }
    const connectionOptions: TcpConnectionOptions = { transport: this.transport as 'tcp' | 'tcps' };
    if (this.options.highWaterMark !== undefined) connectionOptions.highWaterMark = this.options.highWaterMark;
    if (this.options.detectFraming === true) connectionOptions.detectFraming = true;
    if (this.options.onFraming !== undefined) connectionOptions.onFraming = this.options.onFraming;
    this.acceptor(new TcpConnection(socket, connectionOptions));
  }

  private serverOnError(error: Error): void {
    // Binding errors reject listen() (its own listener); later ones (accept failures) are transient and
    // not fatal, but reported.
    if (this.server.listening) this.options.reporter?.listenerOnError(this.transport, error);
  }
}
