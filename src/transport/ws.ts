/**
 * `sd:ws` and `sd:wss` (spec §2): one binary WebSocket message = one frame (framing `message`). A text message
 * is a protocol error, reported with connectionOnInvalid and left for the session to answer.
 * Usable on both sides: wrap a WebSocket accepted by the listener (ws-listener.ts) or an OPEN client WebSocket.
 *
 * The `ws` library does the handshake, the control frames (ping/pong, the close handshake), fragments, text
 * and the limits. The data frames themselves, all a Socket.D peer exchanges, are framed and cut here: each
 * tick's outbound frames are written in one socket write (masked on the client side), and complete inbound
 * binary frames are cut from the socket's reads without ws's per-message stream and event layers. That is
 * most of the CPU a message costs over ws beyond tcp (bench S1/S2).
 */
import type net from 'node:net';
import { WebSocket } from 'ws';
import type { Connection, ConnectionHandler, Framing, TransportCloseCode } from './connection.js';
import { DEFAULT_HIGH_WATER_MARK } from './tcp.js';
import { flushAtTickEnd, type TickFlushable } from './tick-flush.js';
import { releasePending, takePending, type PendingSlots } from './pending-pool.js';
import { receiverAtBoundary, type ReceiverInternals, type WsInternals } from './ws-internals.js';
import { BINARY_FIN, unmaskInPlace, unmaskPartInPlace, writeWsHeader, wsHeaderLength } from './ws-framing.js';
import { LARGE_BODY, writeFramed } from './ws-outbound.js';

// The framing helpers live in ws-framing.ts; re-exported for the adapter's users and tests.
export { maskCopy, unmaskInPlace, writeWsHeader, wsHeaderLength } from './ws-framing.js';

const EMPTY = Buffer.alloc(0);

/** The subprotocol the server selects when offered (spec §2). */
export const SOCKET_D_SUBPROTOCOL = 'Socket.D';

/** A close frame's reason may hold at most 123 bytes (RFC 6455 §5.5: 125-byte control payload minus the code). */
const MAX_CLOSE_REASON_BYTES = 123;

/** ws 1006: the connection dropped without a close frame. */
const WS_ABNORMAL_CLOSURE = 1006;

/**
 * Inbound binary messages at least this large that span reads are delivered as their parts (connectionOnParts),
 * as the stream decoder keeps frames of 64 KiB and more (src/protocol/codec.ts, PARTS_MIN_BYTES).
 */
const PARTS_MIN_BYTES = 64 * 1024;

/**
 * The connection a WebSocket or its socket belongs to: the listeners are shared by every connection and find
 * theirs through this tag, so a connection holds no closures of its own (memory per idle session).
 */
const kConnection = Symbol('socketd.wsConnection');
type Tagged<T> = T & { [kConnection]?: WsConnection };

/** Node's Buffer constructor for views (what Buffer#subarray makes), without the species lookup. */
const FastBuffer = (Buffer as unknown as { [Symbol.species]: new (buffer: ArrayBufferLike, byteOffset: number, length: number) => Buffer })[Symbol.species];

/** Cuts `reason` to at most 123 UTF-8 bytes on a character boundary (ws refuses longer ones, peers invalid UTF-8). */
export function truncateCloseReason(reason: string): string {
  const bytes = Buffer.from(reason, 'utf8');
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return reason;
  let end = MAX_CLOSE_REASON_BYTES;
  // Step back over continuation bytes (10xxxxxx) so a multi-byte character is not split.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}

export interface WsConnectionOptions {
  transport: 'ws' | 'wss';
  remoteAddress: string;
  remotePort: number;
  /** Bytes above which write() returns false (default 1 MiB). */
  highWaterMark?: number;
}

export class WsConnection implements Connection, TickFlushable {
  readonly transport: 'ws' | 'wss';
  readonly framing: Framing = 'message';
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly maxOutboundFrame = Infinity;

  private readonly ws: WebSocket;
  /** The tcp/tls socket under the WebSocket: our data frames are written to it directly, and it gives 'drain'. */
  private readonly socket: net.Socket;
  /** Client side: frames we send must be masked (RFC 6455 §5.3); the server's are not. */
  private readonly masked: boolean;
  private readonly highWaterMark: number;
  /** Drain is reported at half the high-water mark (see TcpConnection.lowWaterMark). */
  private readonly lowWaterMark: number;
  /** Completion callback for writes made while congested; created on first congestion. */
  private writeDone: (() => void) | null = null;
  private handler: ConnectionHandler | null = null;
  /**
   * Frames written this tick, six slots each: head, headStart, headEnd, body (null for none), bodyStart,
   * bodyEnd; framed and written in flush(), in as few socket writes as possible, instead of one ws.send (two
   * socket writes, a copy) per frame. Ranges, not views: a forwarded frame (writeRange) costs no Buffer.
   * The array is taken from the shared pool for the tick and given back by the flush (pending-pool.ts).
   */
  private pending: PendingSlots | null = null;
  /** Slots of `pending` in use (6 per frame); the array may be longer (taken from the pool). */
  private pendingSlots = 0;
  /** Wire bytes of the pending frames, WebSocket headers included. */
  private pendingBytes = 0;
  /** The part of pendingBytes flush() copies (all but large unmasked bodies): sizes its buffers. */
  private pendingCopyBytes = 0;
  private flushScheduled = false;
  /** The socket is corked until the end of the tick (only while ws reads by itself, see write()). */
  private tickCorked = false;

  /**
   * Inbound fast path: our own 'data' listener replaces ws's. Complete final binary frames (all a Socket.D
   * peer sends) are cut, unmasked and handed to the handler here; anything else (control frames, text,
   * fragments, oversize or invalid frames) goes to ws's Receiver, which answers pings and close frames,
   * reassembles fragments, enforces the limits and reports errors as before. Null: ws reads by itself.
   */
  private readonly receiver: ReceiverInternals | null = null;
  /** Inbound frames must be masked (server side) or must not be (client side). */
  private readonly inboundMasked: boolean = false;
  private readonly maxPayload: number = 0;
  /** Bytes of an unfinished frame (or frame header) kept from earlier reads, and how many are needed. */
  private keptParts: Buffer[] | null = null;
  private keptBytes = 0;
  private keptNeed = 0;
  /**
   * Non-zero while the kept frame is a large binary message whose WebSocket header (this many bytes, masking
   * key included) is all in keptParts[0]: it is delivered as its parts (connectionOnParts), not joined.
   */
  private keptHeader = 0;
  /** Everything goes to the Receiver until it is back at a message boundary (e.g. inside fragments). */
  private delegating = false;
  /** After a close frame or a receive error: ws reads no more, and neither do we. */
  private readingStopped = false;
  private needDrain = false;
  private userPaused = false;
  private isClosed = false;
  private localReason: string | null = null;
  private wsError: Error | null = null;
  private closeCode: TransportCloseCode = 'local';
  private closeDetail = '';

  /** `ws` must be OPEN (a server-accepted socket is; a client one after its 'open' event). */
  constructor(ws: WebSocket, options: WsConnectionOptions) {
    const socket = (ws as unknown as { _socket: net.Socket | null })._socket;
    if (ws.readyState !== WebSocket.OPEN || socket === null) throw new Error('WsConnection needs an OPEN WebSocket');
    this.ws = ws;
    this.socket = socket;
    this.masked = !(ws as unknown as { _isServer: boolean })._isServer;
    this.transport = options.transport;
    this.remoteAddress = options.remoteAddress;
    this.remotePort = options.remotePort;
    this.highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    this.lowWaterMark = Math.floor(this.highWaterMark / 2);

    (ws as Tagged<WebSocket>)[kConnection] = this;
    (socket as Tagged<net.Socket>)[kConnection] = this;

    // Fragmented messages arrive as one Buffer with 'nodebuffer' (ws concatenates them).
    ws.binaryType = 'nodebuffer';
    ws.on('message', WsConnection.wsOnMessage);
    ws.on('error', WsConnection.wsOnError);
    ws.on('close', WsConnection.wsOnClose);
    socket.on('drain', WsConnection.socketOnDrain);

    const internals = ws as unknown as WsInternals;
    const receiver = internals._receiver;
    const wsOnData = socket.listeners('data').find((listener) => listener.name === 'socketOnData');
    if (receiver !== undefined && typeof receiver.write === 'function' && typeof receiver._maxPayload === 'number' && wsOnData !== undefined) {
      this.receiver = receiver;
      this.inboundMasked = internals._isServer;
      this.maxPayload = receiver._maxPayload;
      this.delegating = !receiverAtBoundary(receiver);
      // Ours is added before ws's is removed: the socket's listener table then keeps its fast shape (removing
      // a type's only listener deletes the key and turns the table into a dictionary, ~230 B per connection).
      socket.on('data', WsConnection.socketOnData);
      socket.removeListener('data', wsOnData as (chunk: Buffer) => void);
      // Before ws's own 'close' listener, which would pass bytes still buffered in a paused socket to its Receiver.
      socket.prependListener('close', WsConnection.socketOnClose);
    }
    // Nothing is read until start(), so no message can arrive before there is a handler.
    ws.pause();
  }

  get bufferedBytes(): number {
    return this.pendingBytes + this.ws.bufferedAmount;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  start(handler: ConnectionHandler): void {
    if (this.handler !== null) throw new Error('WsConnection.start called twice');
    this.handler = handler;
    if (this.isClosed) {
      process.nextTick(WsConnection.emitCloseLater, this);
      return;
    }
    if (!this.userPaused) this.ws.resume();
  }

  /** Returns true when closed or closing: nothing is queued then and no drain follows. */
  write(head: Buffer, body?: Buffer): boolean {
    return body === undefined ? this.queue(head, 0, head.length, null, 0, 0) : this.queue(head, 0, head.length, body, 0, body.length);
  }

  writeRange(source: Buffer, start: number, end: number): boolean {
    return this.queue(source, start, end, null, 0, 0);
  }

  writeRanges(head: Buffer, headStart: number, headEnd: number, body: Buffer, bodyStart: number, bodyEnd: number): boolean {
    return this.queue(head, headStart, headEnd, body, bodyStart, bodyEnd);
  }

  /** Queues one frame, `head[headStart, headEnd)` then `body[bodyStart, bodyEnd)` (body null: none). */
  private queue(head: Buffer, headStart: number, headEnd: number, body: Buffer | null, bodyStart: number, bodyEnd: number): boolean {
    if (this.isClosed || this.ws.readyState !== WebSocket.OPEN) return true;
    // A large frame forwarded whole is queued as a body, so that writePending writes it uncopied.
    if (body === null && !this.masked && headEnd - headStart >= LARGE_BODY) return this.queue(EMPTY, 0, 0, head, headStart, headEnd);
    // One frame must be one message (spec §2): head and body become the payload of one WebSocket frame.
    const bodyLength = body === null ? 0 : bodyEnd - bodyStart;
    const length = headEnd - headStart + bodyLength;
    const wireBytes = length + wsHeaderLength(length, this.masked);
    const pending = (this.pending ??= takePending());
    const n = this.pendingSlots;
    pending[n] = head;
    pending[n + 1] = headStart;
    pending[n + 2] = headEnd;
    pending[n + 3] = body;
    pending[n + 4] = bodyStart;
    pending[n + 5] = bodyEnd;
    this.pendingSlots = n + 6;
    this.pendingBytes += wireBytes;
    this.pendingCopyBytes += !this.masked && bodyLength >= LARGE_BODY ? wireBytes - bodyLength : wireBytes;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      if (this.receiver === null) {
        this.tickCorked = true;
        this.socket.cork();
      }
      flushAtTickEnd(this);
    }
    // When ws reads by itself it may write a pong or close frame at any time: frames then go into the socket
    // at once (corked for the tick, as one writev), so nothing ws writes later can overtake them.
    if (this.receiver === null) this.writePending();
    return this.belowHighWater(wireBytes);
  }

  /**
   * Answers a write of `size` wire bytes just queued: false above the high-water mark, unless the frame is
   * all there is. As in the tcp adapter (TcpConnection.queued): a frame into an empty queue is taken without
   * pushing back however large it is, else every 1 MiB frame (bench S5) would start a congestion episode.
   */
  private belowHighWater(size: number): boolean {
    const buffered = this.bufferedBytes;
    if (buffered > this.highWaterMark && buffered > size) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  /**
   * A large frame received in parts (Frame.parts), forwarded without joining them: what is queued goes out
   * first, then the WebSocket header and the parts as they are (server side, unmasked). A client masks, so
   * it joins them.
   */
  writeParts(parts: readonly Buffer[], size: number): boolean {
    if (this.masked) return this.write(Buffer.concat(parts, size));
    if (this.isClosed || this.ws.readyState !== WebSocket.OPEN) return true;
    this.writePending();
    if (!this.socket.destroyed && !this.socket.writableEnded) {
      const header = Buffer.allocUnsafe(wsHeaderLength(size, false));
      writeWsHeader(header, 0, size, false);
      const done = this.needDrain ? (this.writeDone ??= () => this.checkDrain()) : undefined;
      this.socket.cork();
      this.socket.write(header, done);
      for (const part of parts) this.socket.write(part, done);
      this.socket.uncork();
    }
    return this.belowHighWater(size + wsHeaderLength(size, false));
  }

  pause(): void {
    this.userPaused = true;
    this.ws.pause();
  }

  resume(): void {
    this.userPaused = false;
    if (this.handler !== null) this.ws.resume();
  }

  end(reason: string): void {
    if (this.isClosed || this.localReason !== null) return;
    this.localReason = reason;
    this.flush();
    this.ws.close(1000, truncateCloseReason(reason));
    // The peer's close frame must be read to finish the handshake (ws times out after 30 s otherwise).
    this.ws.resume();
  }

  destroy(reason: string): void {
    if (this.isClosed) return;
    if (this.localReason === null) this.localReason = reason;
    this.dropPending();
    this.ws.terminate();
  }

  /** Writes what write() queued this tick (see writePending), then reports a drain the writes allow. */
  private flush(): void {
    this.flushScheduled = false;
    this.writePending();
    if (this.tickCorked) {
      this.tickCorked = false;
      this.socket.uncork();
    }
    // Writes the socket took synchronously may never produce a 'drain' (our mark can be below the socket's).
    if (this.needDrain && !this.socket.writableNeedDrain) this.checkDrain();
  }

  /**
   * Frames and writes what write() queued. Small frames are copied, header and payload (masked on
   * the client side), into buffers of up to COALESCE_LIMIT bytes; large unmasked bodies are written as they
   * are. Several buffers go out corked, as one writev.
   */
  private writePending(): void {
    const pending = this.pending;
    if (pending === null) return;
    const count = this.pendingSlots;
    const remaining = this.pendingCopyBytes;
    this.pending = null;
    this.pendingSlots = 0;
    this.pendingBytes = 0;
    this.pendingCopyBytes = 0;
    // Ended (peer FIN) or destroyed: nothing can be written any more.
    if (this.socket.destroyed || this.socket.writableEnded) {
      releasePending(pending, count);
      return;
    }
    const done = this.needDrain ? (this.writeDone ??= () => this.checkDrain()) : undefined;
    writeFramed(this.socket, pending, count, remaining, this.masked, done);
    releasePending(pending, count);
  }

  private dropPending(): void {
    if (this.pending !== null) releasePending(this.pending, this.pendingSlots);
    this.pending = null;
    this.pendingSlots = 0;
    this.pendingBytes = 0;
    this.pendingCopyBytes = 0;
  }

  private checkDrain(): void {
    if (!this.needDrain || this.isClosed || this.bufferedBytes > this.lowWaterMark) return;
    this.needDrain = false;
    this.handler?.connectionOnDrain();
  }

  private static wsOnMessage(this: Tagged<WebSocket>, data: Buffer, isBinary: boolean): void {
    this[kConnection]!.handleMessage(data, isBinary);
  }

  private static wsOnError(this: Tagged<WebSocket>, error: Error): void {
    this[kConnection]!.handleWsError(error);
  }

  private static wsOnClose(this: Tagged<WebSocket>, code: number, reason: Buffer): void {
    this[kConnection]!.handleWsClose(code, reason);
  }

  private static socketOnData(this: Tagged<net.Socket>, chunk: Buffer): void {
    this[kConnection]!.handleData(chunk);
  }

  private static socketOnClose(this: Tagged<net.Socket>): void {
    this[kConnection]!.handleSocketClose();
  }

  private static socketOnDrain(this: Tagged<net.Socket>): void {
    this[kConnection]!.checkDrain();
  }

  /** The tick's flush (tick-flush.ts). */
  flushTick(): void {
    this.flush();
  }

  private static emitCloseLater(connection: WsConnection): void {
    connection.emitClose();
  }

  private handleMessage(data: Buffer, isBinary: boolean): void {
    if (this.isClosed || this.handler === null) return;
    if (isBinary) this.handler.connectionOnData(data);
    else this.handler.connectionOnInvalid('ws_text_message', `text message of ${data.length} bytes; frames must be binary (spec §2)`);
  }

  private handleData(chunk: Buffer): void {
    if (this.readingStopped) return;
    if (this.delegating) {
      this.delegate(chunk);
      return;
    }
    let offset = 0;
    // First complete a frame kept from earlier reads, copying only the bytes it still needs.
    while (this.keptBytes > 0) {
      const missing = this.keptNeed - this.keptBytes;
      const kept = this.keptParts!;
      if (chunk.length - offset < missing) {
        kept.push(offset === 0 ? chunk : chunk.subarray(offset));
        this.keptBytes += chunk.length - offset;
        return;
      }
      kept.push(chunk.subarray(offset, offset + missing));
      offset += missing;
      this.keptParts = null;
      this.keptBytes = 0;
      if (this.keptHeader > 0) {
        this.deliverParts(kept);
      } else {
        // Consumes the frame, or keeps it again with a larger need once its header is complete.
        this.parse(Buffer.concat(kept, this.keptNeed));
      }
      if (this.readingStopped) return;
      if (this.delegating) {
        if (offset < chunk.length) this.delegate(chunk.subarray(offset));
        return;
      }
    }
    if (offset < chunk.length) this.parse(offset === 0 ? chunk : chunk.subarray(offset));
  }

  /** Cuts the frames in `data`; keeps an unfinished last one for the next read. */
  private parse(data: Buffer): void {
    const length = data.length;
    let offset = 0;
    while (offset < length) {
      const available = length - offset;
      if (available < 2) return this.keep(data, offset, 2);
      const b0 = data[offset]!;
      const b1 = data[offset + 1]!;
      let payloadLength = b1 & 0x7f;
      let headerLength = 2;
      if (payloadLength === 126) {
        if (available < 4) return this.keep(data, offset, 4);
        payloadLength = (data[offset + 2]! << 8) | data[offset + 3]!;
        headerLength = 4;
      } else if (payloadLength === 127) {
        if (available < 10) return this.keep(data, offset, 10);
        // 4 GiB and more is above any maxPayload we run with: ws refuses it (1009).
        if (data.readUInt32BE(offset + 2) !== 0) return this.delegateRest(data, offset);
        payloadLength = data.readUInt32BE(offset + 6);
        headerLength = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      // A wrong mask bit, reserved bits or an oversize payload: ws closes with the right status at once.
      if (masked !== this.inboundMasked || (b0 & 0x70) !== 0 || (this.maxPayload > 0 && payloadLength > this.maxPayload)) {
        return this.delegateRest(data, offset);
      }
      if (masked) headerLength += 4;
      const end = offset + headerLength + payloadLength;
      if (end > length) {
        if (b0 === BINARY_FIN && payloadLength >= PARTS_MIN_BYTES && available >= headerLength && this.handler?.connectionOnParts !== undefined) {
          this.keptHeader = headerLength;
        }
        return this.keep(data, offset, headerLength + payloadLength);
      }
      if (b0 !== BINARY_FIN) {
        // Control frames, text and fragments: ws's Receiver takes the whole frame (pong, close handshake,
        // UTF-8 check, reassembly) and emits any message through wsOnMessage.
        if (!this.delegate(data.subarray(offset, end))) {
          if (!this.readingStopped && end < length) this.delegate(data.subarray(end));
          return;
        }
        offset = end;
        continue;
      }
      const start = offset + headerLength;
      if (masked) unmaskInPlace(data, start, end, start - 4);
      offset = end;
      // As ws did: messages are dropped before start() and after the close.
      if (this.handler !== null && !this.isClosed) this.handler.connectionOnData(new FastBuffer(data.buffer, data.byteOffset + start, end - start));
      if (this.readingStopped || this.delegating) {
        if (this.delegating && offset < length) this.delegate(data.subarray(offset));
        return;
      }
    }
  }

  /**
   * Delivers the kept large message as its parts: the first without its WebSocket header, each unmasked in
   * place at its phase of the key. Nothing is copied (a 1 MiB message was joined, then unmasked: bench S5).
   */
  private deliverParts(kept: Buffer[]): void {
    const headerLength = this.keptHeader;
    const size = this.keptNeed - headerLength;
    this.keptHeader = 0;
    const first = kept[0]!;
    kept[0] = first.subarray(headerLength);
    if (this.inboundMasked) {
      let phase = 0;
      for (const part of kept) {
        unmaskPartInPlace(part, 0, part.length, first, headerLength - 4, phase);
        phase = (phase + part.length) & 3;
      }
    }
    // As ws did: messages are dropped before start() and after the close.
    if (this.handler !== null && !this.isClosed) this.handler.connectionOnParts!(kept, size);
  }

  private keep(data: Buffer, offset: number, need: number): void {
    (this.keptParts ??= []).push(offset === 0 ? data : data.subarray(offset));
    this.keptBytes = data.length - offset;
    this.keptNeed = need;
  }

  private delegateRest(data: Buffer, offset: number): void {
    this.delegate(offset === 0 ? data : data.subarray(offset));
  }

  /** Hands bytes to ws's Receiver; true when it is back at a message boundary, so the fast path goes on. */
  private delegate(bytes: Buffer): boolean {
    const receiver = this.receiver!;
    // The Receiver may answer at once (pong, close frame): what we queued before goes out first.
    this.flush();
    // As ws's own 'data' listener does.
    if (!receiver.write(bytes)) this.socket.pause();
    if ((this.ws as unknown as WsInternals)._closeFrameReceived || receiver._writableState.errored) {
      this.readingStopped = true;
      this.delegating = false;
      return false;
    }
    this.delegating = !receiverAtBoundary(receiver);
    return !this.delegating;
  }

  private handleSocketClose(): void {
    // ws's 'close' listener (after this one) passes bytes still buffered in a paused socket to its Receiver;
    // they are cut here instead, so frames are cut in one place. read() emits 'data' only when no error was
    // emitted: our listener goes first so that the bytes are handled exactly once.
    this.socket.removeListener('data', WsConnection.socketOnData);
    if (!this.readingStopped && this.socket.readableLength > 0) {
      const rest = this.socket.read(this.socket.readableLength) as Buffer | null;
      if (rest !== null) this.handleData(rest);
    }
    this.readingStopped = true;
    this.keptParts = null;
    this.keptBytes = 0;
    this.keptHeader = 0;
  }

  private handleWsError(error: Error): void {
    // ws closes the connection itself and emits 'close' afterwards; the error only decides the code.
    if (this.wsError === null) this.wsError = error;
  }

  private handleWsClose(code: number, reason: Buffer): void {
    this.dropPending();
    if (this.localReason !== null) this.finish('local', this.localReason);
    else if (this.wsError !== null) this.finish('error', this.wsError.message);
    else if (code === WS_ABNORMAL_CLOSURE) this.finish('reset', 'connection dropped without a close frame');
    else this.finish('peer_closed', reason.length > 0 ? `${code} ${reason.toString('utf8')}` : String(code));
  }

  private finish(code: TransportCloseCode, detail: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeCode = code;
    this.closeDetail = detail;
    if (this.handler !== null) this.emitClose();
  }

  private emitClose(): void {
    this.handler?.connectionOnClose(this.closeCode, this.closeDetail);
  }
}
