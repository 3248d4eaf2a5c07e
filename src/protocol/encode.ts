/**
 * The Socket.D frame encoders (spec §1): whole frames, heads to write before untouched data, bare 8-byte
 * frames, and re-headed frames (a new flag and sid before a received frame's own event, meta and data). No I/O.
 * The decoders are in codec.ts, which re-exports these.
 */
import { EMPTY_BUFFER, Frame, type FrameFields } from './frame.js';
import { FRAME_PREFIX_BYTES } from './limits.js';

function toBuffer(data: Buffer | Uint8Array | string | undefined): Buffer {
  if (data === undefined) return EMPTY_BUFFER;
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Encodes everything of a frame but its data: prefix, sid, event, meta and the three separators, sized for
 * `dataLength` bytes of data to follow. Callers write `[head, data]` so the data is never copied.
 */
export function encodeHead(flag: number, sid: string, event: string, meta: string, dataLength: number): Buffer {
  const sidLen = Buffer.byteLength(sid);
  const eventLen = Buffer.byteLength(event);
  const metaLen = Buffer.byteLength(meta);
  const headLen = FRAME_PREFIX_BYTES + sidLen + eventLen + metaLen + 6;
  const head = Buffer.allocUnsafe(headLen);
  writeHeadInto(head, flag, headLen + dataLength, sid, sidLen, event, eventLen, meta, metaLen);
  return head;
}

function writeHeadInto(
  buf: Buffer,
  flag: number,
  total: number,
  sid: string,
  sidLen: number,
  event: string,
  eventLen: number,
  meta: string,
  metaLen: number,
): number {
  buf.writeInt32BE(total, 0);
  buf.writeInt32BE(flag, 4);
  let o = FRAME_PREFIX_BYTES;
  if (sidLen > 0) buf.write(sid, o, sidLen, 'utf8');
  o += sidLen;
  buf[o++] = 0;
  buf[o++] = 0x0a;
  if (eventLen > 0) buf.write(event, o, eventLen, 'utf8');
  o += eventLen;
  buf[o++] = 0;
  buf[o++] = 0x0a;
  if (metaLen > 0) buf.write(meta, o, metaLen, 'utf8');
  o += metaLen;
  buf[o++] = 0;
  buf[o++] = 0x0a;
  return o;
}

/** Encodes a frame into one buffer (the data is copied: meant for small frames the broker makes itself). */
export function encodeFrame(fields: FrameFields): Buffer {
  const data = toBuffer(fields.data);
  const sid = fields.sid ?? '';
  const event = fields.event ?? '';
  const meta = fields.meta ?? '';
  const sidLen = Buffer.byteLength(sid);
  const eventLen = Buffer.byteLength(event);
  const metaLen = Buffer.byteLength(meta);
  const total = FRAME_PREFIX_BYTES + sidLen + eventLen + metaLen + 6 + data.length;
  const buf = Buffer.allocUnsafe(total);
  const o = writeHeadInto(buf, fields.flag, total, sid, sidLen, event, eventLen, meta, metaLen);
  if (data.length > 0) data.copy(buf, o);
  return buf;
}

/** The 8-byte frame the reference uses for Ping and Pong. */
export function encodeBare(flag: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_PREFIX_BYTES);
  buf.writeInt32BE(FRAME_PREFIX_BYTES, 0);
  buf.writeInt32BE(flag, 4);
  return buf;
}

/**
 * Re-heads a decoded frame with another flag and sid, keeping its event, meta and data bytes untouched
 * (spec §5: forwarded streams get a fresh sid per hop). Returns the new head; the caller writes
 * `[head, bodyAfterSid(frame)]`.
 * Precondition: the frame has a message (not an 8-byte frame).
 */
export function encodeReheaded(frame: Frame, flag: number, sid: string): Buffer {
  const sidLen = Buffer.byteLength(sid);
  const head = Buffer.allocUnsafe(reheadedLength(sidLen));
  writeReheaded(head, 0, frame, flag, sid, sidLen);
  return head;
}

/** Length of {@link encodeReheaded}'s head for a sid of `sidBytes` UTF-8 bytes. */
export function reheadedLength(sidBytes: number): number {
  return FRAME_PREFIX_BYTES + sidBytes + 2;
}

/**
 * Writes {@link encodeReheaded}'s head into `target` at `offset` (for heads kept in a slab); returns where
 * it ends. Precondition: `target` has reheadedLength(sidBytes) bytes free at `offset`; `sidBytes` is the
 * UTF-8 length of `sid`.
 */
export function writeReheaded(target: Buffer, offset: number, frame: Frame, flag: number, sid: string, sidBytes: number): number {
  const end = writeReheadedFrame(target, offset, frame, flag, sidBytes);
  if (sidBytes > 0) target.write(sid, offset + FRAME_PREFIX_BYTES, sidBytes, 'utf8');
  return end;
}

/**
 * As {@link writeReheaded} without the sid: writes the length, the flag and the separator after a sid of
 * `sidBytes` bytes, which the caller writes at `offset + 8`. Returns where the head ends.
 */
export function writeReheadedFrame(target: Buffer, offset: number, frame: Frame, flag: number, sidBytes: number): number {
  const end = offset + reheadedLength(sidBytes);
  target.writeInt32BE(end - offset + frame.size - frame.eventOffset, offset);
  target.writeInt32BE(flag, offset + 4);
  target[end - 2] = 0;
  target[end - 1] = 0x0a;
  return end;
}

/** The body that follows {@link encodeReheaded}'s head. */
export function bodyAfterSid(frame: Frame): Buffer {
  return frame.bodySource.subarray(frame.bodyStart, frame.bodyEnd);
}
