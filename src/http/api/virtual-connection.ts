/**
 * The HTTP API's way into the broker (docs/http-api.md): a Connection held in memory, one per API call or
 * Server-Sent Events stream. The broker accepts it like any socket, so the handshake, access rules, routing,
 * Alarms, the outbound queue's limits and the metrics apply to an HTTP caller exactly as to a Socket.D client
 * (spec §3-§8). Nothing here knows HTTP: frames the broker queues go to a {@link VirtualPeer}, decoded.
 *
 * Re-entrancy rule: write() is called from inside the broker's routing of another session's frame, so a
 * peer must never feed frames back synchronously from virtualOnFrame (the router's scratch state is in use);
 * it answers later (a promise continuation or a timer), which feed() callers here always do.
 */
import { Flag } from '../../protocol/flags.js';
import { MessageDecoder } from '../../protocol/codec.js';
import { Frame } from '../../protocol/frame.js';
import { DEFAULT_FRAME_LIMITS } from '../../protocol/limits.js';
import type { Connection, ConnectionHandler, Framing, TransportCloseCode } from '../../transport/connection.js';

export interface VirtualPeer {
  /** One whole frame the broker queued to this connection. Must not feed the broker synchronously. */
  virtualOnFrame(frame: Frame): void;
  /** The connection closed (called once, on a later tick). `aborted`: queued bytes were to be dropped. */
  virtualOnClose(reason: string, aborted: boolean): void;
  /** Bytes handed to the peer's own sink and not yet sent on (an SSE response's socket buffer); 0 if none. */
  readonly virtualBufferedBytes: number;
}

export class VirtualConnection implements Connection {
  readonly transport = 'http' as const;
  /** One whole frame per write, as a ws message: no stream reassembly needed on either side. */
  readonly framing: Framing = 'message';
  readonly maxOutboundFrame = Infinity;
  /** One API call: limited by http.api.ratePerSecond, so its session's lines go at debug (Connection). */
  readonly requestScoped = true;
  private handler: ConnectionHandler | null = null;
  /** Work waiting for the broker to read from us again (a paused session, spec §7); small: one call's frames. */
  private waiting: (() => void)[] = [];
  private paused = false;
  private isClosed = false;
  private needDrain = false;
  /** Frames the broker writes are its own encodings: decoded with the protocol's ceilings. */
  private readonly decoder = new MessageDecoder(DEFAULT_FRAME_LIMITS);

  constructor(
    private readonly peer: VirtualPeer,
    readonly remoteAddress: string,
    readonly remotePort: number,
    /** The broker's outbound high-water mark (flow.outboundHighWaterBytes). */
    private readonly highWaterMark: number,
  ) {}

  get bufferedBytes(): number {
    return this.peer.virtualBufferedBytes;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** The session handling this connection (the broker's Session), once started. */
  get owner(): ConnectionHandler | null {
    return this.handler;
  }

  start(handler: ConnectionHandler): void {
    if (this.handler !== null) throw new Error('VirtualConnection.start called twice');
    this.handler = handler;
    this.runWaiting();
  }

  /**
   * Runs `work` as soon as the broker reads from this connection: now, or once it resumes (its reading is
   * paused while a target it fed is congested, or over the memory budget). `work` calls feed().
   */
  whenReadable(work: () => void): void {
    if (this.isClosed) return;
    if (this.handler === null || this.paused) this.waiting.push(work);
    else work();
  }

  /** Hands one encoded frame to the broker, as if it had arrived on a socket. Precondition: readable. */
  feed(frame: Buffer): void {
    if (this.isClosed || this.handler === null) return;
    this.handler.connectionOnData(frame);
  }

  write(head: Buffer, body?: Buffer): boolean {
    if (this.isClosed) return true;
    const bytes = body === undefined || body.length === 0 ? head : Buffer.concat([head, body]);
    const frame = this.decoder.decode(bytes);
    // The broker only writes frames it encoded or decoded itself: an error here is a broker bug.
    if (frame instanceof Frame) this.peer.virtualOnFrame(frame);
    return this.belowHighWater();
  }

  writeRanges(head: Buffer, headStart: number, headEnd: number, body: Buffer, bodyStart: number, bodyEnd: number): boolean {
    return this.write(head.subarray(headStart, headEnd), body.subarray(bodyStart, bodyEnd));
  }

  private belowHighWater(): boolean {
    if (this.peer.virtualBufferedBytes <= this.highWaterMark) return true;
    this.needDrain = true;
    return false;
  }

  /** The peer's sink drained (an SSE response's socket): the broker's drain follows when below high water. */
  peerDrained(): void {
    if (!this.needDrain || this.isClosed || this.peer.virtualBufferedBytes > this.highWaterMark) return;
    this.needDrain = false;
    this.handler?.connectionOnDrain();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.runWaiting();
  }

  private runWaiting(): void {
    while (this.waiting.length > 0 && !this.paused && !this.isClosed) this.waiting.shift()!();
  }

  /** Nothing is queued on our side (frames reach the peer when written): ending is closing. */
  end(reason: string): void {
    this.finish('local', reason, false);
  }

  destroy(reason: string): void {
    this.finish('local', reason, true);
  }

  /** The HTTP caller went away (response closed): the session ends as with a dropped socket. */
  peerClosed(detail: string): void {
    this.finish('peer_closed', detail, true);
  }

  private finish(code: TransportCloseCode, reason: string, aborted: boolean): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.waiting = [];
    // Next tick, so that end()/destroy() never re-enter the session or the router (as the socket adapters).
    process.nextTick(() => {
      this.handler?.connectionOnClose(code, reason);
      this.peer.virtualOnClose(reason, aborted);
    });
  }
}

/** Flags the peer sees that end a pending call. */
export function isAnswer(flag: number): boolean {
  return flag === Flag.Reply || flag === Flag.ReplyEnd || flag === Flag.Alarm;
}
