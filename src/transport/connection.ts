/**
 * The one interface between the broker and its transports (spec §2). Nothing above `src/transport` knows
 * whether tcp, ws or udp is underneath: adapters only translate socket events into these calls.
 */

export type TransportName = 'tcp' | 'tcps' | 'ws' | 'wss' | 'udp' | 'memory' | 'http' | 'cluster';

/**
 * How inbound bytes are cut: `stream` delivers arbitrary chunks of a byte stream (tcp); `message` delivers
 * exactly one frame's bytes per call (a ws binary message, a udp datagram), and writes must be whole frames.
 */
export type Framing = 'stream' | 'message';

/**
 * Why a connection ended, as a stable code (logged and used as a metric label).
 * - `peer_closed`: the peer closed cleanly (tcp FIN, ws close frame)
 * - `reset`: the connection broke (ECONNRESET, EPIPE, ws abnormal close)
 * - `error`: another socket error
 * - `local`: we ended or destroyed it (the reason given to end/destroy is passed along)
 * - `replaced`: udp only, a new Connect arrived from the same address:port
 * - `listener_closed`: the listener shut down
 */
export type TransportCloseCode = 'peer_closed' | 'reset' | 'error' | 'local' | 'replaced' | 'listener_closed';

/** Receives a connection's events. Implemented by the session (no per-connection closures). */
export interface ConnectionHandler {
  /** Inbound bytes (see {@link Framing}). The buffer may be kept: adapters never reuse it. */
  connectionOnData(data: Buffer): void;
  /**
   * Message framing only: one large message that arrived over several reads, as those buffers in order
   * (`size` bytes in all), so that it need not be joined into one (ws messages of 64 KiB and more). Optional:
   * for a handler without it, the adapter joins the parts and calls connectionOnData.
   */
  connectionOnParts?(parts: readonly Buffer[], size: number): void;
  /** The transport's buffered bytes fell below its high-water mark after a write returned false. */
  connectionOnDrain(): void;
  /**
   * Something the transport itself cannot carry arrived (a ws text message). The adapter does not close the
   * connection; the owner answers (Close 1002) and closes. `code` is stable, `detail` human-readable.
   */
  connectionOnInvalid(code: string, detail: string): void;
  /** The connection is gone. Called exactly once, also after end()/destroy(). */
  connectionOnClose(code: TransportCloseCode, detail: string): void;
}

export interface Connection {
  readonly transport: TransportName;
  readonly framing: Framing;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Largest frame this transport can carry outbound (udp: the datagram limit); Infinity when unbounded. */
  readonly maxOutboundFrame: number;
  /** Bytes accepted by write() and not yet handed to the operating system. */
  readonly bufferedBytes: number;
  /** True once closed (by either side); writes are then ignored. */
  readonly closed: boolean;
  /**
   * True when the connection carries one request of another protocol (an HTTP API call or event stream,
   * docs/http-api.md), which has a rate limit and an access log of its own: its session's open and close lines
   * are written at debug, and it does not draw on limits.handshakesPerSecond. Absent: false.
   */
  readonly requestScoped?: boolean;

  /** Starts delivering events to the handler. Called once, right after the listener hands the connection over. */
  start(handler: ConnectionHandler): void;

  /**
   * Queues one whole frame: `head`, followed by `body` when given. Writes are batched and flushed once at
   * the end of the current tick (one syscall for many frames where the transport allows). The buffers must
   * not be modified afterwards; the same buffers may be written to many connections.
   * Returns false when bufferedBytes is above the transport's high-water mark: connectionOnDrain follows.
   */
  write(head: Buffer, body?: Buffer): boolean;

  /**
   * Optional: queues one whole frame held in `source[start, end)`, a received frame forwarded untouched
   * (principle 7). Same contract as write(). The tcp adapter merges it with the previous range when that one
   * is of the same `source` and ends at `start`, so a run of frames read in one chunk and forwarded to one
   * target goes out as one slice of that chunk, without a copy. Without it, the broker writes a view.
   */
  writeRange?(source: Buffer, start: number, end: number): boolean;

  /**
   * Optional: queues one whole frame given as two ranges, `head[headStart, headEnd)` then
   * `body[bodyStart, bodyEnd)`: a head the broker wrote (a forwarded stream frame's new sid, spec §5) and the
   * rest of the received frame, untouched. Same contract as write(). Without it, the broker writes views.
   */
  writeRanges?(head: Buffer, headStart: number, headEnd: number, body: Buffer, bodyStart: number, bodyEnd: number): boolean;

  /**
   * Optional: queues one whole frame of `size` bytes given as consecutive parts, a large frame received in
   * several chunks and forwarded untouched (Frame.parts). Same contract as write(). Without it (message
   * transports, one message per frame), the broker joins the parts and writes them.
   */
  writeParts?(parts: readonly Buffer[], size: number): boolean;

  /**
   * Optional: bytes this connection may still send before its peer's address is validated, for transports
   * whose source addresses can be forged (udp). Such an adapter sends a peer at most
   * `amplification factor × bytes received` until the owner calls peerValidated() (the anti-amplification
   * limit of RFC 9000 section 8.1) and refuses writes beyond it. Absent (or Infinity) when the transport's
   * own handshake proved the address (tcp, ws): nothing above it has to cut anything.
   */
  readonly sendAllowance?: number;

  /** Optional: the owner accepted the peer (its Connect, spec §3); sendAllowance no longer applies. */
  peerValidated?(): void;

  /** Stops reading from the peer (backpressure, spec §7); resume() undoes it. Idempotent. */
  pause(): void;
  resume(): void;

  /** Flushes what is queued, then closes. `reason` goes to logs and, for ws, the close frame. */
  end(reason: string): void;
  /** Closes at once, dropping anything queued. */
  destroy(reason: string): void;
}

/** Address a listener is bound to. */
export interface BoundAddress {
  host: string;
  port: number;
}

/**
 * Receives what a listener cannot handle itself, so nothing fails silently: socket errors after binding
 * (e.g. EMFILE on accept, a failed udp send) and inbound datagrams it drops (udp, reading paused).
 */
export interface ListenerReporter {
  listenerOnError(transport: TransportName, error: Error): void;
  listenerOnDrop(transport: TransportName, reason: string): void;
  /**
   * Optional: an inbound message from a peer without a session that cannot open one (udp: not a Connect)
   * was dropped unanswered. `remote` is the claimed source (forgeable), for the log's summary only.
   */
  listenerOnStray?(transport: TransportName, reason: string, remote: string): void;
}

/** Receives new connections from a listener. */
export type ConnectionAcceptor = (connection: Connection) => void;

export interface Listener {
  readonly transport: TransportName;
  /** Binds and starts accepting; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<BoundAddress>;
  /** Stops accepting new connections; resolves once the socket is closed. Open connections are not touched. */
  close(): Promise<void>;
}
