/**
 * The records of a batch one node sends another (docs/cluster.md): each is a small envelope then one frame's
 * bytes exactly as the origin received or re-headed them (principle 7: never re-encoded). Frames carry
 * their own length (spec §1), so records need no length of their own.
 *
 *   record   = flags:u8 [groups] [hashKey] frame
 *   groups   = len:u16 BE, UTF-8 group names joined by '\n'   (flags bit 0) the queue groups the receiver serves
 *   hashKey  = len:u16 BE, UTF-8                              (flags bit 1) the `name!` key the origin used
 */
import { FRAME_PREFIX_BYTES } from '../protocol/limits.js';

const HAS_GROUPS = 1;
const HAS_HASH_KEY = 2;

/** The envelope of a frame with nothing to say: shared, never modified. */
export const PLAIN_ENVELOPE: Buffer = Buffer.from([0]);

/** Group names and hash keys are short (a group name is at most 128 bytes, spec §4.2); longer is refused. */
export const MAX_ENVELOPE_FIELD = 0xffff;

export function envelope(groups: string | null, hashKey: string | null): Buffer {
  if (groups === null && hashKey === null) return PLAIN_ENVELOPE;
  const g = groups === null ? null : Buffer.from(groups, 'utf8');
  const h = hashKey === null ? null : Buffer.from(hashKey, 'utf8');
  const out = Buffer.allocUnsafe(1 + (g === null ? 0 : 2 + g.length) + (h === null ? 0 : 2 + h.length));
  let at = 0;
  out[at++] = (g === null ? 0 : HAS_GROUPS) | (h === null ? 0 : HAS_HASH_KEY);
  if (g !== null) {
    out.writeUInt16BE(Math.min(g.length, MAX_ENVELOPE_FIELD), at);
    at += 2 + g.copy(out, at + 2);
  }
  if (h !== null) {
    out.writeUInt16BE(Math.min(h.length, MAX_ENVELOPE_FIELD), at);
    at += 2 + h.copy(out, at + 2);
  }
  return out;
}

export interface RecordVisitor {
  /** One record: its envelope fields and its frame, `batch[start, end)`. */
  record(groups: string | null, hashKey: string | null, batch: Buffer, start: number, end: number): void;
}

/**
 * Visits the records of `batch` from `offset`; returns false at the first malformed one (the rest of the
 * batch is not visited: a bad length would desynchronise every record after it).
 */
export function readRecords(batch: Buffer, offset: number, visitor: RecordVisitor): boolean {
  let at = offset;
  const n = batch.length;
  while (at < n) {
    const flags = batch[at++];
    if ((flags & ~(HAS_GROUPS | HAS_HASH_KEY)) !== 0) return false;
    let groups: string | null = null;
    let hashKey: string | null = null;
    if ((flags & HAS_GROUPS) !== 0) {
      if (at + 2 > n) return false;
      const len = batch.readUInt16BE(at);
      if (at + 2 + len > n) return false;
      groups = batch.toString('utf8', at + 2, at + 2 + len);
      at += 2 + len;
    }
    if ((flags & HAS_HASH_KEY) !== 0) {
      if (at + 2 > n) return false;
      const len = batch.readUInt16BE(at);
      if (at + 2 + len > n) return false;
      hashKey = batch.toString('utf8', at + 2, at + 2 + len);
      at += 2 + len;
    }
    if (at + FRAME_PREFIX_BYTES > n) return false;
    const size = batch.readInt32BE(at);
    if (size < FRAME_PREFIX_BYTES || at + size > n) return false;
    visitor.record(groups, hashKey, batch, at, at + size);
    at += size;
  }
  return true;
}
