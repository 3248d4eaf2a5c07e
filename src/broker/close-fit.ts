/**
 * A Close frame (spec §3, §6) that fits a byte allowance: what a session may send a peer whose address is not
 * validated yet (Connection.sendAllowance, the anti-amplification limit of RFC 9000 section 8.1, see
 * docs/security.md). The code is what a client acts on, so it is kept longest: the reason text goes first,
 * then the reason code; when not even `code=N` fits, nothing is sent.
 */
import { encodeFrame } from '../protocol/codec.js';
import { Flag } from '../protocol/flags.js';

export interface FittedClose {
  /** The frame to send, or null when no Close fits. */
  frame: Buffer | null;
  /** True when the frame is shorter than the full Close (text cut, or reason dropped). */
  trimmed: boolean;
}

/** The full Close: meta `code=N&reason=R`, data the human-readable text. */
export function encodeClose(code: number, reason: string, text: string): Buffer {
  return encodeFrame({ flag: Flag.Close, meta: `code=${code}&reason=${reason}`, data: text });
}

/** The longest Close for (code, reason, text) of at most `allowance` bytes. */
export function fitClose(code: number, reason: string, text: string, allowance: number): FittedClose {
  const full = encodeClose(code, reason, text);
  if (full.length <= allowance) return { frame: full, trimmed: false };
  const meta = `code=${code}&reason=${reason}`;
  const bare = encodeFrame({ flag: Flag.Close, meta });
  if (bare.length <= allowance) {
    const bytes = Buffer.from(text, 'utf8');
    let room = Math.min(bytes.length, allowance - bare.length);
    // Cut at a character boundary: never leave half of a UTF-8 sequence (continuation bytes are 10xxxxxx).
    while (room > 0 && room < bytes.length && (bytes[room] & 0xc0) === 0x80) room--;
    return { frame: encodeFrame({ flag: Flag.Close, meta, data: bytes.subarray(0, room) }), trimmed: true };
  }
  const codeOnly = encodeFrame({ flag: Flag.Close, meta: `code=${code}` });
  if (codeOnly.length <= allowance) return { frame: codeOnly, trimmed: true };
  return { frame: null, trimmed: true };
}
