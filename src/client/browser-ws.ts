/**
 * The browser's transport: a {@link Connection} over the global WebSocket (binaryType 'arraybuffer'), and the
 * dialer the browser entry (browser.ts) injects into the client. No Node built-in and no `ws` package here:
 * the only runtime dependency is `Buffer`, which the browser bundle provides (the `buffer` package).
 *
 * - One Socket.D frame is one binary message (spec §2): a head and a body are joined before sending.
 * - bufferedBytes is the socket's `bufferedAmount`. Browsers have no 'drain' event, so after a write above
 *   the high-water mark the connection polls bufferedAmount and calls connectionOnDrain once it fell below.
 * - pause()/resume() are best effort: a browser WebSocket cannot stop reading, so while paused inbound
 *   messages are held in memory and delivered on resume(); nothing reaches the socket's flow control.
 * - end() sends a close frame (1000) and reports the close once the peer answered; destroy() reports it at
 *   once (a browser cannot drop a socket without the closing handshake).
 */
import type { Connection, ConnectionHandler, Framing, TransportCloseCode } from '../transport/connection.js';
import { SocketdError } from './errors.js';
import type { Dial, DialOptions, Dialer } from './dialer.js';
import type { ClientUrl } from './url.js';

/** The subprotocol the broker selects when offered (spec §2); the same as src/transport/ws.ts's. */
export const SOCKET_D_SUBPROTOCOL = 'Socket.D';

/** Bytes above which write() returns false (as the Node adapters' default: 1 MiB). */
const HIGH_WATER_MARK = 1024 * 1024;
/** How often bufferedAmount is polled while waiting for a drain, in ms. */
const DRAIN_POLL_MS = 10;
/** A close frame's reason may hold at most 123 bytes (browsers throw on longer ones). */
const MAX_CLOSE_REASON_BYTES = 123;
const OPEN = 1;

// The few members of the WHATWG WebSocket used here (the project compiles without the DOM lib).
interface WsEvent {
  readonly type: string;
}
interface WsMessageEvent extends WsEvent {
  readonly data: unknown;
}
interface WsCloseEvent extends WsEvent {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

/** The part of the browser's WebSocket this module uses. */
export interface BrowserWebSocket {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  readonly protocol: string;
  send(data: Uint8Array | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: never) => void): void;
  removeEventListener(type: string, listener: (event: never) => void): void;
}

export type BrowserWebSocketConstructor = new (url: string, protocols?: string | string[]) => BrowserWebSocket;

function truncateReason(reason: string): string {
  const bytes = new TextEncoder().encode(reason);
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return reason;
  let end = MAX_CLOSE_REASON_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

function toBytes(data: unknown): Buffer | null {
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

export interface BrowserWsConnectionOptions {
  transport: 'ws' | 'wss';
  remoteAddress: string;
  remotePort: number;
  highWaterMark?: number;
}

export class BrowserWsConnection implements Connection {
  readonly transport: 'ws' | 'wss';
  readonly framing: Framing = 'message';
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly maxOutboundFrame = Infinity;

  private readonly highWaterMark: number;
  private handler: ConnectionHandler | null = null;
  /** Messages that arrived before start() or while paused. */
  private held: Buffer[] = [];
  private paused = false;
  private isClosed = false;
  private localReason: string | null = null;
  private sawError = false;
  private drainTimer: ReturnType<typeof setTimeout> | null = null;
  private closeCode: TransportCloseCode = 'local';
  private closeDetail = '';

  /** `ws` must be OPEN. Listening starts at once; messages are held until start(). */
  constructor(private readonly ws: BrowserWebSocket, options: BrowserWsConnectionOptions) {
    if (ws.readyState !== OPEN) throw new Error('BrowserWsConnection needs an OPEN WebSocket');
    this.transport = options.transport;
    this.remoteAddress = options.remoteAddress;
    this.remotePort = options.remotePort;
    this.highWaterMark = options.highWaterMark ?? HIGH_WATER_MARK;
    this.wsOnMessage = this.wsOnMessage.bind(this);
    this.wsOnError = this.wsOnError.bind(this);
    this.wsOnClose = this.wsOnClose.bind(this);
    this.pollDrain = this.pollDrain.bind(this);
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', this.wsOnMessage);
    ws.addEventListener('error', this.wsOnError);
    ws.addEventListener('close', this.wsOnClose);
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  start(handler: ConnectionHandler): void {
    if (this.handler !== null) throw new Error('BrowserWsConnection.start called twice');
    this.handler = handler;
    if (!this.paused) this.deliverHeld();
    if (this.isClosed) queueMicrotask(() => this.handler?.connectionOnClose(this.closeCode, this.closeDetail));
  }

  write(head: Buffer, body?: Buffer): boolean {
    if (this.isClosed || this.localReason !== null || this.ws.readyState !== OPEN) return true;
    if (body === undefined || body.length === 0) {
      this.ws.send(head);
    } else {
      // One frame must be one message (spec §2), so head and body are joined rather than fragmented.
      const frame = new Uint8Array(head.length + body.length);
      frame.set(head, 0);
      frame.set(body, head.length);
      this.ws.send(frame);
    }
    if (this.ws.bufferedAmount > this.highWaterMark) {
      if (this.drainTimer === null) this.drainTimer = setTimeout(this.pollDrain, DRAIN_POLL_MS);
      return false;
    }
    return true;
  }

  /** Best effort: the browser keeps reading; messages are held until resume(). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.handler !== null) this.deliverHeld();
  }

  end(reason: string): void {
    if (this.isClosed || this.localReason !== null) return;
    this.localReason = reason;
    this.ws.close(1000, truncateReason(reason));
  }

  destroy(reason: string): void {
    if (this.isClosed) return;
    if (this.localReason === null) this.localReason = reason;
    try {
      this.ws.close(1000, truncateReason(reason));
    } catch {
      // already closing
    }
    this.finish('local', this.localReason);
  }

  private deliverHeld(): void {
    while (this.held.length > 0 && !this.paused && !this.isClosed && this.handler !== null) {
      this.handler.connectionOnData(this.held.shift()!);
    }
  }

  private pollDrain(): void {
    this.drainTimer = null;
    if (this.isClosed) return;
    if (this.ws.bufferedAmount > this.highWaterMark) {
      this.drainTimer = setTimeout(this.pollDrain, DRAIN_POLL_MS);
      return;
    }
    this.handler?.connectionOnDrain();
  }

  private wsOnMessage(event: WsMessageEvent): void {
    if (this.isClosed) return;
    const bytes = toBytes(event.data);
    if (bytes === null) {
      const size = typeof event.data === 'string' ? event.data.length : 0;
      this.handler?.connectionOnInvalid('ws_text_message', `text message of ${size} characters; frames must be binary (spec §2)`);
      return;
    }
    if (this.handler === null || this.paused || this.held.length > 0) this.held.push(bytes);
    else this.handler.connectionOnData(bytes);
  }

  private wsOnError(): void {
    // The browser closes the socket itself and fires 'close' afterwards; the error only decides the code.
    this.sawError = true;
  }

  private wsOnClose(event: WsCloseEvent): void {
    if (this.localReason !== null) this.finish('local', this.localReason);
    else if (event.code === 1006) this.finish('reset', 'connection dropped without a close frame');
    else if (this.sawError) this.finish('error', `WebSocket error (${event.code})`);
    else this.finish('peer_closed', event.reason.length > 0 ? `${event.code} ${event.reason}` : String(event.code));
  }

  private finish(code: TransportCloseCode, detail: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeCode = code;
    this.closeDetail = detail;
    this.held = [];
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    this.drainTimer = null;
    this.ws.removeEventListener('message', this.wsOnMessage);
    this.ws.removeEventListener('error', this.wsOnError);
    this.ws.removeEventListener('close', this.wsOnClose);
    this.handler?.connectionOnClose(code, detail);
  }
}

function failed(target: ClientUrl, detail: string): SocketdError {
  return new SocketdError('connect_failed', `Cannot open ${target.transport}://${target.host}:${target.port}: ${detail}`);
}

/** The WebSocket constructor: the one given, else the global one (browsers, Deno, Node 22+). */
function webSocketClass(given: BrowserWebSocketConstructor | undefined): BrowserWebSocketConstructor {
  const found = given ?? (globalThis as { WebSocket?: BrowserWebSocketConstructor }).WebSocket;
  if (found === undefined) throw new SocketdError('invalid_argument', 'No global WebSocket in this environment');
  return found;
}

/** A dialer over the WHATWG WebSocket, ws and wss only. `WebSocketClass` defaults to the global one. */
export function browserDialer(WebSocketClass?: BrowserWebSocketConstructor): Dialer {
  return (target: ClientUrl, _options: DialOptions): Dial => {
    if (target.transport !== 'ws' && target.transport !== 'wss') {
      const error = new SocketdError('invalid_argument', `The browser client speaks ws and wss only, not ${target.transport}`);
      return { promise: Promise.reject(error), cancel: () => {} };
    }
    const transport = target.transport;
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    const url = `${transport}://${host}:${target.port}${target.pathAndQuery}`;
    let ws: BrowserWebSocket;
    try {
      ws = new (webSocketClass(WebSocketClass))(url, [SOCKET_D_SUBPROTOCOL]);
    } catch (error) {
      return { promise: Promise.reject(failed(target, error instanceof Error ? error.message : String(error))), cancel: () => {} };
    }
    ws.binaryType = 'arraybuffer';
    let settled = false;
    let cancelDial: (reason: string) => void = () => {};
    const promise = new Promise<BrowserWsConnection>((resolve, reject) => {
      const detach = (): void => {
        ws.removeEventListener('open', onOpen);
        ws.removeEventListener('error', onError);
        ws.removeEventListener('close', onClose);
      };
      const fail = (error: SocketdError): void => {
        if (settled) return;
        settled = true;
        detach();
        try {
          ws.close();
        } catch {
          // not open yet or already closing
        }
        reject(error);
      };
      // Browsers tell nothing about why a WebSocket failed (no message on the error event).
      const onError = (): void => fail(failed(target, 'the WebSocket failed to open'));
      const onClose = (event: WsCloseEvent): void => fail(failed(target, `closed during the WebSocket handshake (${event.code})`));
      const onOpen = (): void => {
        if (settled) return;
        settled = true;
        detach();
        resolve(new BrowserWsConnection(ws, { transport, remoteAddress: target.host, remotePort: target.port }));
      };
      ws.addEventListener('open', onOpen);
      ws.addEventListener('error', onError);
      ws.addEventListener('close', onClose);
      cancelDial = (reason: string) => fail(new SocketdError('connect_failed', reason));
    });
    return { promise, cancel: (reason) => cancelDial(reason) };
  };
}
