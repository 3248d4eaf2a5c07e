/**
 * The connection under the client: one transport connection with its decoder and FrameWriter (a Link), and
 * the state of a handshake in progress (spec §3). A new Link per (re)connect, so late events of an old one
 * are told apart: the client compares the Link an event comes from with its current one. Separate from
 * client.ts because it is the only part that knows a transport's framing (stream or message); nothing here
 * knows whether tcp, udp or ws is underneath.
 */
import type { Frame } from '../protocol/frame.js';
import { Frame as FrameClass } from '../protocol/frame.js';
import { FrameError } from '../protocol/errors.js';
import { Flag } from '../protocol/flags.js';
import { CloseCode } from '../protocol/codes.js';
import { FrameDecoder, MessageDecoder, encodeFrame } from '../protocol/codec.js';
import type { FrameLimits } from '../protocol/limits.js';
import type { Connection, ConnectionHandler, TransportCloseCode } from '../transport/connection.js';
import { SocketdError } from './errors.js';
import { FrameWriter } from './frame-writer.js';
import type { SidSource } from './sids.js';
import type { TickClock } from './tick.js';

// The final close, as the reference's session.close() (fixture f1: code=1001). Code 1000 would only announce
// a close ("closing starting"), which the broker answers by routing nothing new to the session.
const CLOSE = encodeFrame({ flag: Flag.Close, meta: `code=${CloseCode.ProtocolClose}` });

/** What a Link reports to its client: every event names the Link it comes from. */
export interface LinkOwner {
  /** @internal */
  _linkOnFrame(link: Link, frame: Frame): void;
  /** @internal */
  _linkOnFrameError(link: Link, error: FrameError): void;
  /** @internal */
  _linkOnDrain(link: Link): void;
  /** @internal */
  _linkOnClose(link: Link, code: TransportCloseCode, detail: string): void;
}

/** One transport connection and its decoder; a new one per (re)connect, so late events of an old one are told apart. */
export class Link implements ConnectionHandler {
  private readonly decoder: FrameDecoder | null;
  private readonly messageDecoder: MessageDecoder | null;
  /** Every frame of this connection is written through it. */
  readonly writer: FrameWriter;
  /** When the last frame arrived (TickClock): every frame counts as a sign of life for the heartbeat. */
  lastReceived = 0;
  /** Set by a Close frame from the broker: why the connection is ending. */
  closeError: SocketdError | null = null;
  /** Called once the connection is closed (close() waits on it). */
  onClosed: (() => void) | null = null;
  isClosed = false;

  constructor(
    private readonly owner: LinkOwner,
    readonly connection: Connection,
    limits: FrameLimits,
    sids: SidSource,
    maxOutboundBytes: number,
    private readonly clock: TickClock,
  ) {
    this.writer = new FrameWriter(connection, sids, maxOutboundBytes);
    if (connection.framing === 'stream') {
      this.decoder = new FrameDecoder(limits);
      this.messageDecoder = null;
    } else {
      this.decoder = null;
      this.messageDecoder = new MessageDecoder(limits);
    }
  }

  /** The client closes: the final Close, then the connection ends once its queued frames are written. */
  sendClose(): void {
    if (this.isClosed) return;
    this.writer.raw(CLOSE);
    if (this.connection.transport === 'udp') {
      // udp sends at once but closing the socket in the same tick could cancel the datagram.
      setImmediate(endLink, this);
    } else {
      this.writer.end('client closed');
    }
  }

  /** Resolves once the connection is closed (at once when it is). One waiter at a time: close() is idempotent. */
  whenClosed(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.onClosed = resolve;
    });
  }

  /** The broker sent Close on this open link: why it ends (the close event reports it), then it ends. */
  onBrokerClose(frame: Frame): void {
    const code = Number(frame.meta('code') ?? CloseCode.ProtocolClose);
    const reason = frame.meta('reason') ?? '';
    const text = frame.data.toString('utf8');
    this.closeError = new SocketdError('connection_lost', `The broker closed the connection (${code}${reason ? ` ${reason}` : ''})${text ? `: ${text}` : ''}`, {
      closeCode: code,
      reason,
    });
    this.writer.end('broker sent Close');
  }

  connectionOnData(data: Buffer): void {
    if (this.decoder !== null) {
      this.decoder.push(data, this);
      return;
    }
    const result = this.messageDecoder!.decode(data);
    if (result instanceof FrameClass) this.onFrame(result);
    else this.owner._linkOnFrameError(this, result);
  }

  /** FrameSink */
  onFrame(frame: Frame): void {
    this.lastReceived = this.clock.now();
    this.owner._linkOnFrame(this, frame);
  }

  /** FrameSink */
  onFrameError(error: FrameError): void {
    this.owner._linkOnFrameError(this, error);
  }

  connectionOnDrain(): void {
    this.writer.full = false;
    this.owner._linkOnDrain(this);
  }

  connectionOnInvalid(code: string, detail: string): void {
    this.owner._linkOnFrameError(this, new FrameError('frame_malformed', `${code}: ${detail}`, true));
  }

  connectionOnClose(code: TransportCloseCode, detail: string): void {
    this.isClosed = true;
    this.decoder?.stop();
    const onClosed = this.onClosed;
    this.onClosed = null;
    onClosed?.();
    this.owner._linkOnClose(this, code, detail);
  }
}

/** Ends the link once its queued frames (the final Close among them) are written. */
function endLink(link: Link): void {
  link.writer.end('client closed');
}
