/**
 * The one error type the client SDK throws and rejects with. `code` is stable (switch on it); `message` is
 * for people. An Alarm from the broker (spec §6) becomes code `alarm` with the Alarm's `code` meta as
 * `alarmCode` and its data text as the message.
 */
export type SocketdErrorCode =
  /** The broker answered the Connect with Close (auth, invalid name, limits). `closeCode`/`reason` are set. */
  | 'handshake_refused'
  /** No Connack within `connectTimeout`. */
  | 'connect_timeout'
  /** The transport could not be opened (refused, DNS, TLS, ...). */
  | 'connect_failed'
  /** The connection dropped (or the broker closed it) while the operation was pending or the client was offline. */
  | 'connection_lost'
  /** No answer within the request's timeout (local timer). */
  | 'timeout'
  /** The broker (or the responder) answered with an Alarm: see `alarmCode`. */
  | 'alarm'
  /** The operation was cancelled with its AbortSignal. */
  | 'aborted'
  /** `close()` was called. */
  | 'closed'
  /** The data or the frame exceeds a limit (`maxData`, or the udp datagram size). */
  | 'too_large'
  /** The connection's outbound buffer would exceed `maxOutboundBytes`. */
  | 'congested'
  /** The broker sent something undecodable. */
  | 'protocol_error'
  /** A local handler threw or rejected (reported through `client.events`). */
  | 'handler_error'
  /** A bad argument: URL, pattern, meta key. */
  | 'invalid_argument'
  /** The `token` function threw or returned no usable token (docs/client.md, "Tokens"). */
  | 'token_failed';

export class SocketdError extends Error {
  readonly code: SocketdErrorCode;
  /** The Alarm's `code` meta (4004 no route, 4003 forbidden, 4008 timeout, 4013 too large, 4029 congested, 5003 responder gone, ...). */
  readonly alarmCode?: number;
  /** The Close frame's `code` meta (handshake_refused / connection_lost after a Close). */
  readonly closeCode?: number;
  /** The Close frame's `reason` meta, e.g. `invalid_name`. */
  readonly reason?: string;
  /** The sid and event of the frame the error belongs to, when there is one. */
  readonly sid?: string;
  readonly event?: string;

  constructor(
    code: SocketdErrorCode,
    message: string,
    extra?: { alarmCode?: number; closeCode?: number; reason?: string; sid?: string; event?: string; cause?: unknown },
  ) {
    super(message, extra?.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'SocketdError';
    this.code = code;
    if (extra !== undefined) {
      if (extra.alarmCode !== undefined) this.alarmCode = extra.alarmCode;
      if (extra.closeCode !== undefined) this.closeCode = extra.closeCode;
      if (extra.reason !== undefined) this.reason = extra.reason;
      if (extra.sid !== undefined) this.sid = extra.sid;
      if (extra.event !== undefined) this.event = extra.event;
    }
  }
}
