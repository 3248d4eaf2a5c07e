/**
 * Decoder errors. Each has a stable code (used in logs, metrics and Close reasons) and says whether the stream
 * can go on: a fatal error leaves the byte stream unreadable, so the connection must be closed with 1002;
 * a recoverable one was skipped whole (its length was valid) and is answered with Alarm 4013.
 */
export type FrameErrorCode =
  | 'frame_length_invalid' // length prefix < 8, or too short to hold the three separators
  | 'frame_too_large' // length prefix above maxFrame
  | 'flag_unknown' // flag not in spec §1
  | 'frame_malformed' // separators missing inside the declared length
  | 'sid_too_long'
  | 'event_too_long'
  | 'meta_too_long'
  | 'data_too_large'
  | 'datagram_length_mismatch'; // message transports: the length prefix must equal the message size

export class FrameError extends Error {
  constructor(
    readonly code: FrameErrorCode,
    message: string,
    readonly fatal: boolean,
    /** What was read of the offending frame before the limit broke (for the Alarm that answers it). */
    readonly flag: number = 0,
    readonly sid: string = '',
    readonly event: string = '',
    readonly metaString: string = '',
  ) {
    super(message);
    this.name = 'FrameError';
  }
}
