/**
 * `sd:ws` and `sd:wss` (spec §2): one binary WebSocket message = one frame (framing `message`). A text message
 * is a protocol error, reported with connectionOnInvalid and left for the session to answer.
 * Usable on both sides: wrap a WebSocket accepted by {@link WsListener} or an OPEN client WebSocket.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
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
import { DEFAULT_HIGH_WATER_MARK, type TlsServerOptions } from './tcp.js';

/** The subprotocol the server selects when offered (spec §2). */
export const SOCKET_D_SUBPROTOCOL = 'Socket.D';

/** A close frame's reason may hold at most 123 bytes (RFC 6455 §5.5: 125-byte control payload minus the code). */
const MAX_CLOSE_REASON_BYTES = 123;

/** ws 1006: the connection dropped without a close frame. */
const WS_ABNORMAL_CLOSURE = 1006;

const SEND_OPTIONS = { binary: true } as const;

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

export class WsConnection implements Connection {
  readonly transport: 'ws' | 'wss';
  readonly framing: Framing = 'message';
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly maxOutboundFrame = Infinity;

  private readonly ws: WebSocket;
  /** The tcp/tls socket under the WebSocket: corked per tick for batching, and the source of 'drain'. */
  private readonly socket: net.Socket;
  private readonly highWaterMark: number;
  /** Drain is reported at half the high-water mark (see TcpConnection.lowWaterMark). */
  private readonly lowWaterMark: number;
  private readonly sendDoneBound = (): void => this.checkDrain();
  private handler: ConnectionHandler | null = null;
  private corked = false;
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
    this.transport = options.transport;
    this.remoteAddress = options.remoteAddress;
    this.remotePort = options.remotePort;
    this.highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    this.lowWaterMark = Math.floor(this.highWaterMark / 2);

    this.wsOnMessage = this.wsOnMessage.bind(this);
    this.wsOnError = this.wsOnError.bind(this);
    this.wsOnClose = this.wsOnClose.bind(this);
    this.socketOnDrain = this.socketOnDrain.bind(this);
    this.flush = this.flush.bind(this);
    this.emitClose = this.emitClose.bind(this);

    // Fragmented messages arrive as one Buffer with 'nodebuffer' (ws concatenates them).
    ws.binaryType = 'nodebuffer';
    ws.on('message', this.wsOnMessage);
    ws.on('error', this.wsOnError);
    ws.on('close', this.wsOnClose);
    socket.on('drain', this.socketOnDrain);
    // Nothing is read until start(), so no message can arrive before there is a handler.
    ws.pause();
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  start(handler: ConnectionHandler): void {
    if (this.handler !== null) throw new Error('WsConnection.start called twice');
    this.handler = handler;
    if (this.isClosed) {
      process.nextTick(this.emitClose);
      return;
    }
    if (!this.userPaused) this.ws.resume();
  }

  /** Returns true when closed or closing: nothing is queued then and no drain follows. */
  /** A message transport sends each frame as its own message: the range is just a view. */
  writeRange(source: Buffer, start: number, end: number): boolean {
    return this.write(source.subarray(start, end));
  }

  /** One message per frame: the parts are joined (a copy; only frames above 64 KiB arrive in parts). */
  writeParts(parts: readonly Buffer[], size: number): boolean {
    return this.write(Buffer.concat(parts, size));
  }

  write(head: Buffer, body?: Buffer): boolean {
    if (this.isClosed || this.ws.readyState !== WebSocket.OPEN) return true;
    if (!this.corked) {
      // Every frame written this tick goes out in one writev when the socket is uncorked in flush().
      this.corked = true;
      this.socket.cork();
      setImmediate(this.flush);
    }
    // One frame must be one message (spec §2), so head and body are joined rather than fragmented.
    const data = body === undefined || body.length === 0 ? head : Buffer.concat([head, body]);
    // While congested, each send reports its completion so the drain is noticed at the low-water mark.
    if (this.needDrain) this.ws.send(data, SEND_OPTIONS, this.sendDoneBound);
    else this.ws.send(data, SEND_OPTIONS);
    if (this.ws.bufferedAmount > this.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
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
    this.ws.terminate();
  }

  private flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
    // Writes the socket took synchronously may never produce a 'drain' (our mark can be below the socket's).
    if (this.needDrain && !this.socket.writableNeedDrain) this.checkDrain();
  }

  private checkDrain(): void {
    if (!this.needDrain || this.isClosed || this.ws.bufferedAmount > this.lowWaterMark) return;
    this.needDrain = false;
    this.handler?.connectionOnDrain();
  }

  private wsOnMessage(data: Buffer, isBinary: boolean): void {
    if (this.isClosed || this.handler === null) return;
    if (isBinary) this.handler.connectionOnData(data);
    else this.handler.connectionOnInvalid('ws_text_message', `text message of ${data.length} bytes; frames must be binary (spec §2)`);
  }

  private socketOnDrain(): void {
    this.checkDrain();
  }

  private wsOnError(error: Error): void {
    // ws closes the connection itself and emits 'close' afterwards; the error only decides the code.
    if (this.wsError === null) this.wsError = error;
  }

  private wsOnClose(code: number, reason: Buffer): void {
    this.corked = false;
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

/** Picks the subprotocol (spec §2): `Socket.D` when offered (any case), otherwise none. */
export function selectSubprotocol(offered: Set<string>): string | false {
  if (offered.has(SOCKET_D_SUBPROTOCOL)) return SOCKET_D_SUBPROTOCOL;
  const wanted = SOCKET_D_SUBPROTOCOL.toLowerCase();
  // The selected value must be one the client offered, spelled as it offered it.
  for (const protocol of offered) if (protocol.toLowerCase() === wanted) return protocol;
  return false;
}

export interface WsListenerOptions {
  host: string;
  port: number;
  /** Only upgrades to this path are accepted (others get 400); any path when omitted. */
  path?: string;
  /** When given, the listener speaks `sd:wss`. */
  tls?: TlsServerOptions;
  /** Largest inbound message in bytes; larger ones close the connection with 1009. */
  maxPayload: number;
  /** Passed to each connection (default 1 MiB). */
  highWaterMark?: number;
  /** Told of errors after binding. */
  reporter?: ListenerReporter;
}

export class WsListener implements Listener {
  readonly transport: 'ws' | 'wss';
  /** The HTTP(S) server carrying the upgrades; plain requests get 426 unless the broker adds routes. */
  readonly httpServer: http.Server | https.Server;
  private readonly options: WsListenerOptions;
  private readonly acceptor: ConnectionAcceptor;
  private readonly wss: WebSocketServer;
  private closing = false;

  constructor(options: WsListenerOptions, acceptor: ConnectionAcceptor) {
    this.options = options;
    this.acceptor = acceptor;
    this.transport = options.tls === undefined ? 'ws' : 'wss';
    this.httpServerOnRequest = this.httpServerOnRequest.bind(this);
    this.wssOnConnection = this.wssOnConnection.bind(this);
    this.wssOnError = this.wssOnError.bind(this);

    this.httpServer =
      options.tls === undefined
        ? http.createServer(this.httpServerOnRequest)
        : https.createServer(options.tls, this.httpServerOnRequest);
    this.wss = new WebSocketServer({
      server: this.httpServer,
      perMessageDeflate: false,
      maxPayload: options.maxPayload,
      handleProtocols: selectSubprotocol,
      // Sessions are tracked by the broker; the server's own client set would be a second registry.
      clientTracking: false,
      ...(options.path === undefined ? {} : { path: options.path }),
    });
    this.wss.on('connection', this.wssOnConnection);
    // The WebSocketServer re-emits the http server's errors; unhandled they would throw.
    this.wss.on('error', this.wssOnError);
  }

  listen(): Promise<BoundAddress> {
    return listenServer(this.httpServer, this.options.port, this.options.host);
  }

  /**
   * Stops accepting: the WebSocketServer stops handling upgrades (ws 8 leaves open clients alone) and the
   * http server releases its port. Upgraded sockets are no longer the http server's, so they stay open; we
   * resolve without waiting for them (see TcpListener.close).
   */
  close(): Promise<void> {
    if (this.closing) return Promise.resolve();
    this.closing = true;
    this.wss.close();
    return stopListening(this.httpServer);
  }

  private httpServerOnRequest(_request: http.IncomingMessage, response: http.ServerResponse): void {
    response.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket', Connection: 'close' });
    response.end('426 Upgrade Required: this endpoint speaks Socket.D over WebSocket\n');
  }

  private wssOnConnection(ws: WebSocket, request: http.IncomingMessage): void {
    if (this.closing) {
      ws.terminate();
      return;
    }
    const connectionOptions: WsConnectionOptions = {
      transport: this.transport,
      remoteAddress: request.socket.remoteAddress ?? '',
      remotePort: request.socket.remotePort ?? 0,
    };
    if (this.options.highWaterMark !== undefined) connectionOptions.highWaterMark = this.options.highWaterMark;
    this.acceptor(new WsConnection(ws, connectionOptions));
  }

  private wssOnError(error: Error): void {
    // Binding errors reach listen() through the http server; later ones are not fatal, but reported.
    if (this.httpServer.listening) this.options.reporter?.listenerOnError(this.transport, error);
  }
}
