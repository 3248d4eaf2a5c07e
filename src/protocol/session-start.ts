/**
 * Which message may open a session on a connectionless transport (spec §2, §3: udp). A datagram from an
 * address without a session is kept only when it is one whole, well-formed Connect frame; anything else is
 * dropped unanswered, so a forged source address cannot make the broker answer a third party (RFC 9000
 * section 8.1 applies the same rule before address validation). No I/O.
 */
import { decodeMessage } from './codec.js';
import { Flag } from './flags.js';
import { Frame } from './frame.js';
import { FRAME_PREFIX_BYTES, MIN_MESSAGE_FRAME_BYTES, type FrameLimits } from './limits.js';

/**
 * A predicate for a transport adapter: true when `message` is exactly one Connect frame that decodes within
 * `limits` (length prefix equal to the message size, three separators, every field within its limit).
 * Anything that is not a Connect is refused by its first 8 bytes, so the predicate is cheap for the many
 * datagrams of open sessions it sees too.
 */
export function connectOpener(limits: FrameLimits): (message: Buffer) => boolean {
  return (message: Buffer): boolean => {
    if (message.length < MIN_MESSAGE_FRAME_BYTES) return false;
    if (message.readInt32BE(0) !== message.length || message.readInt32BE(FRAME_PREFIX_BYTES - 4) !== Flag.Connect) return false;
    return decodeMessage(message, limits) instanceof Frame;
  };
}
