/**
 * What the ws adapter (ws.ts) reads of the `ws` library's private state. Kept in one place: these are not ws's
 * public API, and a ws upgrade is checked against this file.
 */
/**
 * The parts of ws 8's WebSocket and Receiver the inbound fast path relies on. When they are not there (another
 * ws version), WsConnection leaves reading to ws entirely.
 */
export interface WsInternals {
  _isServer: boolean;
  _closeFrameReceived: boolean;
  _receiver?: ReceiverInternals;
}

export interface ReceiverInternals {
  write(chunk: Buffer): boolean;
  /** 0 (GET_INFO): between frames. */
  _state: number;
  /** Bytes it holds of an unfinished frame. */
  _bufferedBytes: number;
  /** Non-zero inside a fragmented message. */
  _fragmented: number;
  /** Largest message, 0 for no limit. */
  _maxPayload: number;
  _writableState: { errored: Error | null };
}

export function receiverAtBoundary(receiver: ReceiverInternals): boolean {
  return receiver._state === 0 && receiver._bufferedBytes === 0 && receiver._fragmented === 0;
}
