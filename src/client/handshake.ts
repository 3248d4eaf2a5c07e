/**
 * One attempt to connect (spec §3 Connect/Connack; docs/client.md "Connect"): dial the transport, send
 * Connect on a new Link, then wait for the broker's Connack (the link becomes the client's), its Close (the
 * attempt is refused: `handshake_refused` with the Close's code, reason and text), the connection's end
 * (`connect_failed`) or `connectTimeout` (`connect_timeout`). Separate from client.ts: an attempt's timer,
 * dial and link are its own until it ends, and it ends exactly once.
 */
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import { encodeFrame } from '../protocol/codec.js';
import { CloseCode } from '../protocol/codes.js';
import type { Connection } from '../transport/connection.js';
import type { Dial, DialOptions, Dialer } from './dialer.js';
import { SocketdError } from './errors.js';
import type { Link } from './link.js';
import type { ClientUrl } from './url.js';

/** What an attempt needs from its client. */
export interface HandshakeOwner {
  /** @internal A Link for the dialled connection (its events go to the client, which hands them on here). */
  _newLink(connection: Connection): Link;
  /** @internal The attempt ended, either way: it is no longer the client's current one. */
  _handshakeEnded(hs: Handshake): void;
  /** @internal The Connack arrived: `link` is the client's connection from now on. */
  _handshakeDone(hs: Handshake, link: Link): void;
}

function timedOut(hs: Handshake, timeout: number): void {
  hs.timer = null;
  hs.fail(new SocketdError('connect_timeout', `No Connack within ${timeout} ms`));
}

export class Handshake {
  /** The Link of the dialled connection, null until the dial succeeds. */
  link: Link | null = null;
  /** @internal The connectTimeout timer. */
  timer: NodeJS.Timeout | null = null;
  private dial: Dial | null = null;
  private ended = false;

  /** `resolve` and `reject` settle the connect (or reconnect) that started the attempt. */
  constructor(
    private readonly owner: HandshakeOwner,
    /** The Connect frame's sid. */ readonly sid: string,
    private readonly resolve: () => void,
    private readonly reject: (error: SocketdError) => void,
  ) {}

  /** Dials `target` and sends Connect with `connectMeta` once connected; fails after `timeout` ms. */
  start(dialer: Dialer, target: ClientUrl, options: DialOptions, timeout: number, connectMeta: string): void {
    this.timer = setTimeout(timedOut, timeout, this, timeout);
    this.dial = dialer(target, options);
    this.dial.promise.then(
      (connection) => {
        if (this.ended) {
          connection.destroy('handshake abandoned');
          return;
        }
        const link = this.owner._newLink(connection);
        this.link = link;
        connection.start(link);
        const url = target.connectUrl;
        link.writer.raw(encodeFrame({ flag: Flag.Connect, sid: this.sid, event: url, meta: connectMeta, data: url }));
      },
      (error: SocketdError) => this.fail(error),
    );
  }

  /** A frame on the attempt's link: Connack completes it, Close refuses it, anything else is ignored. */
  onFrame(frame: Frame): void {
    if (frame.flag === Flag.Connack) {
      this.complete();
      return;
    }
    if (frame.flag === Flag.Close) {
      const code = Number(frame.meta('code') ?? CloseCode.ProtocolClose);
      const reason = frame.meta('reason') ?? '';
      const text = frame.data.toString('utf8');
      this.fail(new SocketdError('handshake_refused', text || `Connection refused (${code}${reason ? ` ${reason}` : ''})`, {
        closeCode: code,
        reason,
      }));
    }
  }

  /** Ends the attempt with `error` (once): the dial is cancelled, the connection destroyed, the connect rejected. */
  fail(error: SocketdError): void {
    if (this.ended) return;
    this.ended = true;
    // Before the connection is destroyed: its close event must find the attempt gone.
    this.owner._handshakeEnded(this);
    if (this.timer !== null) clearTimeout(this.timer);
    this.dial?.cancel(error.message);
    if (this.link !== null && !this.link.isClosed) this.link.connection.destroy(error.message);
    this.reject(error);
  }

  private complete(): void {
    this.ended = true;
    this.owner._handshakeEnded(this);
    if (this.timer !== null) clearTimeout(this.timer);
    this.owner._handshakeDone(this, this.link!);
    this.resolve();
  }
}
