/**
 * Close codes (spec §3) and Alarm codes (spec §6). These numbers are on the wire; docs/protocol.md lists them.
 */
export const CloseCode = {
  /** The peer is closing normally (the reference's "closing starting"). */
  Closing: 1000,
  /** Protocol close: normal close, and the idle timeout. */
  ProtocolClose: 1001,
  /** Protocol illegal: wrong first frame, undecodable bytes, a frame not allowed in this state. */
  ProtocolIllegal: 1002,
  /** Refused handshake or an error on the broker's side. */
  Error: 2001,
} as const;

export const AlarmCode = {
  /** Nobody to deliver to (spec §4). */
  NoRoute: 4004,
  /** Denied by access rules (spec §8). */
  Forbidden: 4003,
  /** Frame or field above a limit, or a target transport that cannot carry it. */
  TooLarge: 4013,
  /** Rate limited or congested (spec §7). */
  Congested: 4029,
  /** Request or stream timed out (spec §5). */
  Timeout: 4008,
  /** The responder's session ended with the stream open (spec §5). */
  ResponderGone: 5003,
  /** A control event was malformed (bad pattern, missing meta). */
  BadRequest: 4000,
} as const;

/** Pressure meta code (spec §6). */
export const PRESSURE_CODE = 3001;
