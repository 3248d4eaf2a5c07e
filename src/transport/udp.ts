/**
 * `sd:udp` (spec §2): one datagram = one frame (framing `message`). A session is keyed by the peer's
 * address:port; it ends on Close or idle timeout (the session's business) or when a new Connect arrives from
 * the same address (ours: the old connection closes with `replaced`).
 *
 * Source addresses of udp can be forged, so traffic before a session costs nothing and reflects nothing
 * (docs/security.md): a datagram from an address without a session opens one only when the `opensSession`
 * predicate accepts it (a well-formed Connect, src/protocol/session-start.ts); anything else is dropped
 * unanswered and reported as a stray. Until the owner accepts the peer (peerValidated), a connection sends
 * it at most `amplificationFactor` times the bytes it received from it (RFC 9000 section 8.1); the budget
 * lives on the connection, so it is bounded by the connections the broker admits, never by the addresses
 * that sent something.
 *
 * UDP has no flow control: write() never returns false (the kernel drops what it cannot send), and pause()
 * cannot hold datagrams back, so those arriving while paused are dropped and counted.
 */
import dgram from 'node:dgram';
import { DEFAULT_FRAME_LIMITS, DEFAULT_UDP_MAX_DATAGRAM, connectOpener } from '../protocol/index.js';
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
import { classifySocketError } from './tcp.js';

/** At most this many bytes out per byte in before the peer is validated (RFC 9000 section 8.1). */
export const DEFAULT_AMPLIFICATION_FACTOR = 3;

/** Datagrams kept for a connection whose owner has not called start() yet (the first is the Connect). */
const MAX_DATAGRAMS_BEFORE_START = 16;

function socketTypeFor(host: string): dgram.SocketType {
  return host.includes(':') ? 'udp6' : 'udp4';
}

/** Shared by both sides: handler bookkeeping, pause, and exactly-once close. */
abstract class DatagramConnection implements Connection {
  readonly transport = 'udp' as const;
  readonly framing: Framing = 'message';
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly maxOutboundFrame: number;
  /** Datagrams refused by write() because they exceed the datagram limit. */
  oversizeWrites = 0;

  protected handler: ConnectionHandler | null = null;
  protected paused = false;
  private isClosed = false;
  private beforeStart: Buffer[] | null = [];
  private closeCode: TransportCloseCode = 'local';
  private closeDetail = '';

  constructor(remoteAddress: string, remotePort: number, maxDatagram: number) {
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
    this.maxOutboundFrame = maxDatagram;
    this.emitClose = this.emitClose.bind(this);
  }

  abstract get bufferedBytes(): number;

  get closed(): boolean {
    return this.isClosed;
  }

  start(handler: ConnectionHandler): void {
    if (this.handler !== null) throw new Error('UdpConnection.start called twice');
    this.handler = handler;
    const early = this.beforeStart;
    this.beforeStart = null;
    if (early !== null) for (const datagram of early) if (!this.isClosed && !this.paused) handler.connectionOnData(datagram);
    if (this.isClosed) process.nextTick(this.emitClose);
  }

  /** Sends one datagram; a frame above the datagram limit is refused (not sent) and counted. Never false. */
  write(head: Buffer, body?: Buffer): boolean {
    if (this.isClosed) return true;
    const size = body === undefined ? head.length : head.length + body.length;
    if (size > this.maxOutboundFrame) {
      this.oversizeWrites++;
      return true;
    }
    this.send(head, body);
    return true;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  end(reason: string): void {
    this.closeWith('local', reason);
  }

  destroy(reason: string): void {
    this.closeWith('local', reason);
  }

  /** Delivers one inbound datagram; returns false when it was dropped because the connection is paused. */
  deliver(datagram: Buffer): boolean {
    if (this.isClosed) return true;
    if (this.paused) return false;
    if (this.handler !== null) this.handler.connectionOnData(datagram);
    else if (this.beforeStart !== null && this.beforeStart.length < MAX_DATAGRAMS_BEFORE_START) this.beforeStart.push(datagram);
    return true;
  }

  /** Closes once; the handler hears about it on the next tick so end()/destroy() never re-enter it. */
  closeWith(code: TransportCloseCode, detail: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeCode = code;
    this.closeDetail = detail;
    this.beforeStart = null;
    this.onClosed();
    if (this.handler !== null) process.nextTick(this.emitClose);
  }

  protected abstract send(head: Buffer, body: Buffer | undefined): void;
  protected abstract onClosed(): void;

  private emitClose(): void {
    this.handler?.connectionOnClose(this.closeCode, this.closeDetail);
  }
}

/** A peer's session on a {@link UdpListener}; it shares the listener's socket. */
export class UdpConnection extends DatagramConnection {
  /** The listener's session key (`address:port`). */
  readonly key: string;
  /** Writes refused because they would have exceeded the anti-amplification allowance. */
  amplificationRefusals = 0;
  private readonly listener: UdpListener;
  private readonly socket: dgram.Socket;
  private readonly amplificationFactor: number;
  /** Bytes received from and sent to the peer before it was validated (sendAllowance). */
  private unvalidatedIn = 0;
  private unvalidatedOut = 0;
  private validated = false;

  constructor(listener: UdpListener, socket: dgram.Socket, key: string, remoteAddress: string, remotePort: number,
    maxDatagram: number, amplificationFactor: number = DEFAULT_AMPLIFICATION_FACTOR) {
    super(remoteAddress, remotePort, maxDatagram);
    this.listener = listener;
    this.socket = socket;
    this.key = key;
    this.amplificationFactor = amplificationFactor;
  }

  /** Bytes that may still be sent before the peer is validated (Connection.sendAllowance). */
  get sendAllowance(): number {
    return this.validated ? Infinity : Math.max(0, this.amplificationFactor * this.unvalidatedIn - this.unvalidatedOut);
  }

  peerValidated(): void {
    this.validated = true;
  }

  /** The listener counts every datagram of this peer, before handing it over (and before accept). */
  received(bytes: number): void {
    if (!this.validated) this.unvalidatedIn += bytes;
  }

  /** As DatagramConnection.write, and never past the allowance while the peer is not validated. */
  override write(head: Buffer, body?: Buffer): boolean {
    if (!this.validated && !this.closed) {
      const size = body === undefined ? head.length : head.length + body.length;
      if (size > this.sendAllowance) {
        // The owner should have cut its answer to fit (the session trims its Close); this is the guarantee.
        this.amplificationRefusals++;
        this.listener.refusedForAmplification();
        return true;
      }
      if (size <= this.maxOutboundFrame) this.unvalidatedOut += size;
    }
    return super.write(head, body);
  }

  /** The shared socket's send queue: every session on the listener contributes to it. */
  get bufferedBytes(): number {
    return this.closed ? 0 : this.socket.getSendQueueSize();
  }

  protected send(head: Buffer, body: Buffer | undefined): void {
    // The array form sends head and body as one datagram without copying them together.
    if (body === undefined || body.length === 0) this.socket.send(head, this.remotePort, this.remoteAddress);
    else this.socket.send([head, body], this.remotePort, this.remoteAddress);
  }

  protected onClosed(): void {
    this.listener.forget(this);
  }
}

export interface UdpListenerOptions {
  host: string;
  port: number;
  /** Largest datagram in bytes, both ways (default 2048, spec §1). */
  maxDatagram?: number;
  /** Told of socket errors and of datagrams dropped while their connection was paused. */
  reporter?: ListenerReporter;
  /**
   * Whether a datagram from an address without a session opens one (default: a well-formed Connect within
   * the default frame limits and the datagram size, src/protocol/session-start.ts). The same predicate
   * decides when a datagram from an address with a session replaces it (spec §2).
   */
  opensSession?: (datagram: Buffer) => boolean;
  /** Bytes sent per byte received before the peer is validated (default 3, RFC 9000 section 8.1). */
  amplificationFactor?: number;
}

export class UdpListener implements Listener {
  readonly transport = 'udp' as const;
  /** Datagrams dropped because their connection was paused (udp cannot push back on the peer). */
  droppedWhilePaused = 0;
  /** Socket errors seen after binding (e.g. a failed send); they do not close the listener. */
  socketErrors = 0;
  /** Datagrams from addresses without a session that could not open one: dropped, never answered. */
  droppedWithoutSession = 0;
  /** Writes refused by a connection because they would have exceeded its anti-amplification allowance. */
  amplificationRefusals = 0;

  private readonly options: UdpListenerOptions;
  private readonly acceptor: ConnectionAcceptor;
  private readonly maxDatagram: number;
  private readonly opensSession: (datagram: Buffer) => boolean;
  private readonly amplificationFactor: number;
  private readonly socket: dgram.Socket;
  private readonly connections = new Map<string, UdpConnection>();
  private listening = false;
  private closing = false;

  constructor(options: UdpListenerOptions, acceptor: ConnectionAcceptor) {
    this.options = options;
    this.acceptor = acceptor;
    this.maxDatagram = options.maxDatagram ?? DEFAULT_UDP_MAX_DATAGRAM;
    this.opensSession = options.opensSession ?? connectOpener({ ...DEFAULT_FRAME_LIMITS, maxFrame: this.maxDatagram });
    this.amplificationFactor = options.amplificationFactor ?? DEFAULT_AMPLIFICATION_FACTOR;
    this.socketOnMessage = this.socketOnMessage.bind(this);
    this.socketOnError = this.socketOnError.bind(this);
    this.socket = dgram.createSocket({ type: socketTypeFor(options.host) });
    this.socket.on('message', this.socketOnMessage);
    this.socket.on('error', this.socketOnError);
  }

  /** Open sessions (for leak checks). */
  get connectionCount(): number {
    return this.connections.size;
  }

  listen(): Promise<BoundAddress> {
    return new Promise<BoundAddress>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.socket.once('error', onError);
      this.socket.bind(this.options.port, this.options.host, () => {
        this.socket.removeListener('error', onError);
        this.listening = true;
        const address = this.socket.address();
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /** Closes the socket; every session on it ends with `listener_closed` (they cannot outlive the socket). */
  close(): Promise<void> {
    if (this.closing) return Promise.resolve();
    this.closing = true;
    for (const connection of [...this.connections.values()]) connection.closeWith('listener_closed', 'udp listener closed');
    this.connections.clear();
    if (!this.listening) {
      // A socket whose bind failed still holds a handle; closing it is all there is to do.
      try {
        this.socket.close();
      } catch {
        // already closed
      }
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  /** Called by a connection when it closes, so the map never holds a closed one. */
  forget(connection: UdpConnection): void {
    if (this.connections.get(connection.key) === connection) this.connections.delete(connection.key);
  }

  /** Called by a connection that refused a write over its anti-amplification allowance. */
  refusedForAmplification(): void {
    this.amplificationRefusals++;
    this.options.reporter?.listenerOnDrop('udp', 'amplification_limit');
  }

  private socketOnMessage(datagram: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closing) return;
    const key = `${rinfo.address}:${rinfo.port}`;
    let connection = this.connections.get(key);
    const opens = this.opensSession(datagram);
    if (connection !== undefined && opens) {
      // Spec §2: a new Connect from the same address:port starts a new session (the client restarted).
      connection.closeWith('replaced', 'new Connect from the same address');
      connection = undefined;
    }
    if (connection === undefined) {
      if (!opens) {
        // No session and no Connect: a scanner, a client whose session ended, or a forged source. Answering
        // would reflect bytes at whoever owns the address, so nothing is sent and nothing is kept.
        this.droppedWithoutSession++;
        this.options.reporter?.listenerOnStray?.('udp', 'udp_no_session', key);
        return;
      }
      connection = new UdpConnection(this, this.socket, key, rinfo.address, rinfo.port, this.maxDatagram, this.amplificationFactor);
      this.connections.set(key, connection);
      // Counted before the acceptor runs: a connection refused on accept answers within this allowance.
      connection.received(datagram.length);
      this.acceptor(connection);
    } else {
      connection.received(datagram.length);
    }
    if (!connection.deliver(datagram)) {
      this.droppedWhilePaused++;
      this.options.reporter?.listenerOnDrop('udp', 'udp_paused');
    }
  }

  private socketOnError(error: Error): void {
    // Sends have no callback (none is allocated per write); their failures land here.
    this.socketErrors++;
    this.options.reporter?.listenerOnError('udp', error);
  }
}

/** The client side: a connected dgram socket to one peer. Create it with {@link dialUdp}. */
export class UdpClientConnection extends DatagramConnection {
  /** Datagrams dropped because the connection was paused. */
  droppedWhilePaused = 0;
  private readonly socket: dgram.Socket;

  constructor(socket: dgram.Socket, maxDatagram: number) {
    const remote = socket.remoteAddress();
    super(remote.address, remote.port, maxDatagram);
    this.socket = socket;
    this.socketOnMessage = this.socketOnMessage.bind(this);
    this.socketOnError = this.socketOnError.bind(this);
    socket.on('message', this.socketOnMessage);
    socket.on('error', this.socketOnError);
  }

  get bufferedBytes(): number {
    return this.closed ? 0 : this.socket.getSendQueueSize();
  }

  protected send(head: Buffer, body: Buffer | undefined): void {
    if (body === undefined || body.length === 0) this.socket.send(head);
    else this.socket.send([head, body]);
  }

  protected onClosed(): void {
    this.socket.close();
  }

  private socketOnMessage(datagram: Buffer): void {
    if (!this.deliver(datagram)) this.droppedWhilePaused++;
  }

  private socketOnError(error: Error): void {
    // On a connected socket an error (e.g. ICMP port unreachable as ECONNREFUSED) means the peer is gone.
    this.closeWith(classifySocketError(error), error.message);
  }
}

/** Opens a udp socket connected to host:port (only that peer's datagrams are received). */
export function dialUdp(host: string, port: number, maxDatagram: number = DEFAULT_UDP_MAX_DATAGRAM): Promise<UdpClientConnection> {
  return new Promise<UdpClientConnection>((resolve, reject) => {
    const socket = dgram.createSocket({ type: socketTypeFor(host) });
    const onError = (error: Error): void => {
      socket.close();
      reject(error);
    };
    socket.once('error', onError);
    socket.connect(port, host, () => {
      socket.removeListener('error', onError);
      resolve(new UdpClientConnection(socket, maxDatagram));
    });
  });
}
