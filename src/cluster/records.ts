/**
 * The body of a batch one node sends another (docs/cluster.md): the frames' bytes, back to back, exactly as
 * the origin received or re-headed them (principle 7: never re-encoded), preceded by a small table of the
 * few frames that carry an envelope. A run of plain frames is handed to the receiving node's decoder as one
 * chunk, as a socket read would be.
 *
 *   body     = frames:u32 BE  tableLen:u32 BE  table  frameBytes
 *   table    = entry*, by increasing offset
 *   entry    = offset:u32 BE (of the frame in frameBytes)  flags:u8  [groups]  [hashKey]  [namespace]
 *   groups   = len:u16 BE, UTF-8 group names joined by '\n'   (flags bit 0) the queue groups the receiver serves
 *   hashKey  = len:u16 BE, UTF-8                              (flags bit 1) the `name!` key the origin used
 *   namespace = len:u16 BE, UTF-8                             (flags bit 2) the namespace the frame routes in
 *                                                           (docs/namespaces.md); absent: the default one
 *
 * A node sends bit 2 only to nodes that announced interest in that namespace, which nodes without namespaces
 * never do (they ignore namespaced interest keys), so batches towards them stay as they were.
 *
 * Frames carry their own length (spec §1), so the frame bytes need no framing of their own.
 */
import { FRAME_PREFIX_BYTES } from '../protocol/limits.js';

const HAS_GROUPS = 1;
const HAS_HASH_KEY = 2;
const HAS_NAMESPACE = 4;

/** Group names and hash keys are short (a group name is at most 128 bytes, spec §4.2). */
export const MAX_ENVELOPE_FIELD = 0xffff;

/** The table entry of a frame at `offset` with groups, a hash key and/or a namespace (at least one not null). */
export function envelopeEntry(offset: number, groups: string | null, hashKey: string | null, namespace: string | null = null): Buffer {
  const g = groups === null ? null : Buffer.from(groups, 'utf8');
  const h = hashKey === null ? null : Buffer.from(hashKey, 'utf8');
  const s = namespace === null ? null : Buffer.from(namespace, 'utf8');
  if ((g !== null && g.length > MAX_ENVELOPE_FIELD) || (h !== null && h.length > MAX_ENVELOPE_FIELD)
    || (s !== null && s.length > MAX_ENVELOPE_FIELD)) {
    throw new RangeError('envelope field longer than 65535 bytes');
  }
  const out = Buffer.allocUnsafe(5 + (g === null ? 0 : 2 + g.length) + (h === null ? 0 : 2 + h.length) + (s === null ? 0 : 2 + s.length));
  out.writeUInt32BE(offset, 0);
  out[4] = (g === null ? 0 : HAS_GROUPS) | (h === null ? 0 : HAS_HASH_KEY) | (s === null ? 0 : HAS_NAMESPACE);
  let at = 5;
  if (g !== null) {
    out.writeUInt16BE(g.length, at);
    at += 2 + g.copy(out, at + 2);
  }
  if (h !== null) {
    out.writeUInt16BE(h.length, at);
    at += 2 + h.copy(out, at + 2);
  }
  if (s !== null) {
    out.writeUInt16BE(s.length, at);
    s.copy(out, at + 2);
  }
  return out;
}

/** The 8 bytes before the table: frame count and table length. */
export function batchHead(frames: number, tableLength: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeUInt32BE(frames, 0);
  out.writeUInt32BE(tableLength, 4);
  return out;
}

export interface RecordVisitor {
  /** Plain frames, whole and back to back: `batch[start, end)`. */
  run(batch: Buffer, start: number, end: number): void;
  /** One frame with its envelope fields: `batch[start, end)`; `namespace` null: the default one. */
  record(groups: string | null, hashKey: string | null, batch: Buffer, start: number, end: number, namespace: string | null): void;
}

/**
 * Visits the frames of a batch body starting at `offset`; returns the frame count it announces, or -1 when
 * the body is malformed (then nothing is visited: a bad table would misroute every frame after it).
 */
export function readRecords(batch: Buffer, offset: number, visitor: RecordVisitor): number {
  const n = batch.length;
  if (offset + 8 > n) return n === offset ? 0 : -1;
  const frames = batch.readUInt32BE(offset);
  const tableLength = batch.readUInt32BE(offset + 4);
  const tableStart = offset + 8;
  const base = tableStart + tableLength;
  if (base > n) return -1;
  // Parse the whole table first: a malformed one is refused before anything is routed.
  const entries: { at: number; groups: string | null; hashKey: string | null; namespace: string | null }[] = [];
  let at = tableStart;
  /** Where the next listed frame may start at the earliest: past the previous one. */
  let minNext = base;
  while (at < base) {
    if (at + 5 > base) return -1;
    const frameAt = base + batch.readUInt32BE(at);
    const flags = batch[at + 4];
    at += 5;
    if ((flags & ~(HAS_GROUPS | HAS_HASH_KEY | HAS_NAMESPACE)) !== 0 || frameAt < minNext || frameAt + FRAME_PREFIX_BYTES > n) return -1;
    let groups: string | null = null;
    let hashKey: string | null = null;
    if ((flags & HAS_GROUPS) !== 0) {
      if (at + 2 > base) return -1;
      const len = batch.readUInt16BE(at);
      if (at + 2 + len > base) return -1;
      groups = batch.toString('utf8', at + 2, at + 2 + len);
      at += 2 + len;
    }
    if ((flags & HAS_HASH_KEY) !== 0) {
      if (at + 2 > base) return -1;
      const len = batch.readUInt16BE(at);
      if (at + 2 + len > base) return -1;
      hashKey = batch.toString('utf8', at + 2, at + 2 + len);
      at += 2 + len;
    }
    let namespace: string | null = null;
    if ((flags & HAS_NAMESPACE) !== 0) {
      if (at + 2 > base) return -1;
      const len = batch.readUInt16BE(at);
      if (len === 0 || at + 2 + len > base) return -1;
      namespace = batch.toString('utf8', at + 2, at + 2 + len);
      at += 2 + len;
    }
    const size = batch.readInt32BE(frameAt);
    if (size < FRAME_PREFIX_BYTES || frameAt + size > n) return -1;
    entries.push({ at: frameAt, groups, hashKey, namespace });
    minNext = frameAt + size;
  }
  let pos = base;
  for (const entry of entries) {
    if (entry.at > pos) visitor.run(batch, pos, entry.at);
    const end = entry.at + batch.readInt32BE(entry.at);
    visitor.record(entry.groups, entry.hashKey, batch, entry.at, end, entry.namespace);
    pos = end;
  }
  if (pos < n) visitor.run(batch, pos, n);
  return frames;
}
