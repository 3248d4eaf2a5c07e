/**
 * A Socket.D client without a socket: it speaks to the broker through a {@link VirtualConnection}, frame by
 * frame, as src/client does over tcp (Connect, then Message/Request, then Close; spec §3). The HTTP API uses
 * one per call or per event stream, so an HTTP caller is a real session with its own permissions.
 */
import { randomUUID } from 'node:crypto';
import { Flag } from '../../protocol/flags.js';
import { CloseCode } from '../../protocol/codes.js';
import { encodeBare, encodeFrame } from '../../protocol/codec.js';
import type { Frame, FrameFields } from '../../protocol/frame.js';
import type { Connection } from '../../transport/connection.js';
import { Session } from '../../broker/session.js';
import { VirtualConnection, isAnswer, type VirtualPeer } from './virtual-connection.js';

export interface VirtualClientDeps {
  /** The broker's ConnectionAcceptor. */
  accept: (connection: Connection) => void;
  /** Frames the broker has delivered to target sessions so far (BrokerStats.deliveries). */
  deliveries: () => number;
  /** flow.outboundHighWaterBytes */
  highWaterMark: number;
}

/** Why the broker refused or ended the session: the Close's reason and text. */
export interface Ended {
  reason: string;
  text: string;
}

/** The result of a Request: its first answer, or why there is none. */
export type Answer = { frame: Frame } | { ended: Ended } | { timeout: true };

const PING = encodeBare(Flag.Ping);
const CLOSE = encodeFrame({ flag: Flag.Close, meta: `code=${CloseCode.ProtocolClose}` });

export class VirtualClient implements VirtualPeer {
  readonly connection: VirtualConnection;
  /** Messages routed to this session (event subscriptions); others are ignored. */
  onMessage: ((frame: Frame) => void) | null = null;
  /** The session ended, for whatever reason (called once). */
  onEnded: ((ended: Ended, aborted: boolean) => void) | null = null;
  /** What the peer's own sink holds (set by an SSE stream; 0 for one-shot calls). */
  buffered: () => number = () => 0;
  private open = false;
  private ended: Ended | null = null;
  private connack: ((ended: Ended | null) => void) | null = null;
  private readonly pending = new Map<string, (frame: Frame | null) => void>();
  private nextSid = 0;
  private readonly sidPrefix = randomUUID().replace(/-/g, '').slice(0, 24);

  constructor(private readonly deps: VirtualClientDeps, remoteAddress: string, remotePort: number) {
    this.connection = new VirtualConnection(this, remoteAddress, remotePort, deps.highWaterMark);
  }

  get virtualBufferedBytes(): number {
    return this.buffered();
  }

  /** The broker's session for this client (for the access checks only the HTTP side makes). */
  get session(): Session | null {
    const owner = this.connection.owner;
    return owner instanceof Session ? owner : null;
  }

  /**
   * Connects: `url` is the handshake URL (its path names the namespace), `meta` the Connect metas (the
   * token). Resolves null once open, or with the refusal; gives up after `timeoutMs` (the broker holds new
   * readers while over its memory budget).
   */
  connect(url: string, meta: string, timeoutMs: number): Promise<Ended | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.connack = null;
        resolve({ reason: 'congested', text: `The broker did not read the handshake within ${timeoutMs} ms` });
      }, timeoutMs);
      this.connack = (ended) => {
        clearTimeout(timer);
        this.connack = null;
        resolve(ended);
      };
      this.deps.accept(this.connection);
      this.connection.whenReadable(() => this.connection.feed(encodeFrame({ flag: Flag.Connect, sid: this.sid(), event: url, meta })));
    });
  }

  /** A fresh sid: 32 hex characters, as the reference clients make them. */
  sid(): string {
    return `${this.sidPrefix}${(this.nextSid++).toString(16).padStart(8, '0')}`;
  }

  /**
   * Sends a Message and resolves with the sessions it was queued to and the Alarm it got, if any.
   * Precondition (counting): routing a Message is synchronous, so the deliveries counted while feeding it are
   * exactly its own; an Alarm for it arrives during the same call.
   */
  publish(fields: FrameFields, timeoutMs: number): Promise<{ delivered: number; alarm: Frame | null } | Ended> {
    const sid = fields.sid ?? this.sid();
    const bytes = encodeFrame({ ...fields, flag: Flag.Message, sid });
    return new Promise((resolve) => {
      let settled = false;
      const settle = (result: { delivered: number; alarm: Frame | null } | Ended): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(sid);
        resolve(result);
      };
      const timer = setTimeout(() => settle(this.ended ?? { reason: 'congested', text: `The broker did not read the message within ${timeoutMs} ms` }), timeoutMs);
      let alarm: Frame | null = null;
      // An Alarm for the Message arrives while it is fed; null: the session ended before it was read.
      this.pending.set(sid, (frame) => {
        if (frame !== null) alarm = frame;
        else settle(this.ended ?? { reason: 'closed', text: 'The session ended before the message was read' });
      });
      this.connection.whenReadable(() => {
        const before = this.deps.deliveries();
        this.connection.feed(bytes);
        settle({ delivered: this.deps.deliveries() - before, alarm });
      });
    });
  }

  /**
   * Sends a Request (or a control Request such as `$sub`) and resolves with its first answer (Reply,
   * ReplyEnd or Alarm). `timeoutMs` is a backstop: the broker's own stream timeout answers first with 4008.
   */
  request(fields: FrameFields, timeoutMs: number): Promise<Answer> {
    const sid = fields.sid ?? this.sid();
    const bytes = encodeFrame({ ...fields, flag: fields.flag === Flag.Subscribe ? Flag.Subscribe : Flag.Request, sid });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(sid);
        resolve({ timeout: true });
      }, timeoutMs);
      this.pending.set(sid, (frame) => {
        clearTimeout(timer);
        this.pending.delete(sid);
        resolve(frame === null ? { ended: this.ended ?? { reason: 'closed', text: 'session ended' } } : { frame });
      });
      this.connection.whenReadable(() => this.connection.feed(bytes));
    });
  }

  /** Keeps a long-lived session from the idle timeout (spec §3), as a client's heartbeat does. */
  ping(): void {
    this.connection.whenReadable(() => this.connection.feed(PING));
  }

  /** Ends the session as a client does (Close); at once when the broker is not reading from it. */
  close(): void {
    if (this.connection.closed) return;
    if (this.open) this.connection.whenReadable(() => this.connection.feed(CLOSE));
    // Held (paused) or never opened: drop it like a socket that went away.
    if (!this.connection.closed) setImmediate(() => this.connection.peerClosed('api_call_done'));
  }

  // ----- VirtualPeer -------------------------------------------------------------------------------------

  virtualOnFrame(frame: Frame): void {
    switch (frame.flag) {
      case Flag.Connack:
        this.open = true;
        this.connack?.(null);
        return;
      case Flag.Message:
        this.onMessage?.(frame);
        return;
      case Flag.Close:
        this.ended = { reason: frame.meta('reason') ?? 'closed', text: frame.data.toString('utf8') };
        return;
      default:
        if (isAnswer(frame.flag)) this.pending.get(frame.sid)?.(frame);
    }
  }

  virtualOnClose(reason: string, aborted: boolean): void {
    const ended = this.ended ?? { reason, text: '' };
    this.ended = ended;
    this.connack?.(ended);
    for (const settle of [...this.pending.values()]) settle(null);
    this.pending.clear();
    this.onEnded?.(ended, aborted);
  }
}
