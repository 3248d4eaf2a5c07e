/**
 * What both frame decoders (codec.ts) share: the incremental scanner of a frame's header fields, the checks of
 * the length prefix and the flag, and the building of a Frame (or of a refusal that carries the header read so
 * far) from a scanned frame (spec §1). No I/O.
 */
import { Flag, isKnownFlag } from './flags.js';
import { Frame } from './frame.js';
import { FrameError } from './errors.js';
import { FRAME_PREFIX_BYTES, MIN_MESSAGE_FRAME_BYTES, type FrameLimits } from './limits.js';

/** Frames that may be sent as just `len + flag` (8 bytes): the reference sends Ping and Pong that way. */
export function mayBeBare(flag: number): boolean {
  return flag === Flag.Ping || flag === Flag.Pong || flag === Flag.Close;
}

export const SCAN_MORE = 0;
export const SCAN_DONE = 1;
export const SCAN_FAILED = -1;

/**
 * Incremental scanner of a frame's three header fields. One instance per stream decoder (and one per shared
 * message decoder); the contiguous and the chunked paths both run through {@link HeaderScanner.scan}, which is
 * what makes them agree byte for byte.
 */
export class HeaderScanner {
  /** 0 sid, 1 event, 2 meta, 3 done. */
  field = 0;
  /** Frame offset where the current field starts. */
  fieldStart = FRAME_PREFIX_BYTES;
  /** Frame offset of the next byte to scan. */
  pos = FRAME_PREFIX_BYTES;
  prevZero = false;
  /**
   * Frame offsets of the separators that end sid, event and meta. Three fields rather than an array: a
   * plain `[0, 0, 0]` could change elements kind while a connection lives, and the next connection's
   * scanner then deoptimized the decoder ("wrong map", seen when the bench's second set of clients
   * connected); fields also take less memory per connection than a typed array.
   */
  sidEnd = 0;
  eventEnd = 0;
  metaEnd = 0;
  error: FrameError | null = null;

  constructor(private readonly limits: FrameLimits) {}

  reset(): void {
    this.field = 0;
    this.fieldStart = FRAME_PREFIX_BYTES;
    this.pos = FRAME_PREFIX_BYTES;
    this.prevZero = false;
    this.error = null;
  }

  private setEnd(field: number, offset: number): void {
    if (field === 0) this.sidEnd = offset;
    else if (field === 1) this.eventEnd = offset;
    else this.metaEnd = offset;
  }

  private limitOf(field: number): number {
    return field === 0 ? this.limits.maxSid : field === 1 ? this.limits.maxEvent : this.limits.maxMeta;
  }

  /**
   * Scans `buf[start, end)`, which holds frame offsets `[this.pos, this.pos + end - start)`, stopping at
   * `frameLen`. Returns SCAN_DONE once all three separators are found, SCAN_FAILED with `error` set when a
   * field outgrows its limit or the frame ends first, SCAN_MORE when it needs more bytes.
   */
  scan(buf: Buffer, start: number, end: number, frameLen: number): number {
    let pos = this.pos;
    let field = this.field;
    let fieldStart = this.fieldStart;
    let prevZero = this.prevZero;
    let limit = this.limitOf(field);
    for (let i = start; i < end && pos < frameLen; i++, pos++) {
      const b = buf[i];
      if (b === 0x0a && prevZero) {
        this.setEnd(field, pos - 1);
        field++;
        fieldStart = pos + 1;
        prevZero = false;
        if (field === 3) {
          this.field = 3;
          this.pos = pos + 1;
          return SCAN_DONE;
        }
        limit = this.limitOf(field);
        continue;
      }
      prevZero = b === 0;
      // A zero may open the separator, so it does not count towards the field's length yet.
      const length = prevZero ? pos - fieldStart : pos - fieldStart + 1;
      if (length > limit) {
        this.pos = pos;
        this.field = field;
        this.fail(field === 0 ? 'sid_too_long' : field === 1 ? 'event_too_long' : 'meta_too_long', field, limit);
        return SCAN_FAILED;
      }
    }
    this.pos = pos;
    this.field = field;
    this.fieldStart = fieldStart;
    this.prevZero = prevZero;
    if (pos >= frameLen) {
      this.error = new FrameError('frame_malformed', 'frame ends before its sid, event and meta separators', true);
      return SCAN_FAILED;
    }
    return SCAN_MORE;
  }

  /**
   * Fast path for a frame held whole in `buf[base, base + frameLen)`: finds each separator with the native
   * indexOf. Returns false, with nothing changed, when a field is not cleanly within its limit; the byte
   * scanner then decides, so both paths give the same result for any input. The separator offsets are relative
   * to `base`.
   */
  scanWhole(buf: Buffer, base: number, frameLen: number): boolean {
    let pos = FRAME_PREFIX_BYTES;
    for (let field = 0; field < 3; field++) {
      // The separator must start at pos + limit at the latest, so its 0A lies before `bound`.
      const bound = Math.min(frameLen, pos + this.limitOf(field) + 2);
      let j = pos;
      for (;;) {
        // Bytes past the frame's end may be the next frame's: any hit at or past `bound` is refused.
        const hit = buf.indexOf(0x0a, base + j);
        if (hit === -1) return false;
        j = hit - base;
        if (j >= bound) return false;
        if (j > pos && buf[hit - 1] === 0) break;
        j++;
      }
      this.setEnd(field, j - 1);
      pos = j + 1;
    }
    this.field = 3;
    this.pos = pos;
    return true;
  }

  private fail(code: 'sid_too_long' | 'event_too_long' | 'meta_too_long', field: number, limit: number): void {
    const what = field === 0 ? 'sid' : field === 1 ? 'event' : 'meta';
    // Without a sid nothing can be answered, so an over-long sid is fatal; the others skip the frame.
    this.error = new FrameError(code, `${what} longer than ${limit} bytes`, field === 0);
  }
}

/** Checks the length prefix; returns an error or null. */
export function checkLength(len: number, limits: FrameLimits): FrameError | null {
  if (len < FRAME_PREFIX_BYTES || (len > FRAME_PREFIX_BYTES && len < MIN_MESSAGE_FRAME_BYTES)) {
    return new FrameError('frame_length_invalid', `invalid frame length ${len}`, true);
  }
  if (len > limits.maxFrame) {
    return new FrameError('frame_too_large', `frame of ${len} bytes exceeds the limit of ${limits.maxFrame}`, true);
  }
  return null;
}

export function checkFlag(flag: number, len: number): FrameError | null {
  if (!isKnownFlag(flag)) return new FrameError('flag_unknown', `unknown frame flag ${flag}`, true, flag);
  if (len === FRAME_PREFIX_BYTES && !mayBeBare(flag)) {
    return new FrameError('frame_length_invalid', `flag ${flag} needs a message, got an 8-byte frame`, true, flag);
  }
  return null;
}

/** Builds the Frame for a complete, scanned frame held in `buf[start, start + len)`. */
export function buildFrame(buf: Buffer, start: number, len: number, flag: number, scanner: HeaderScanner): Frame {
  return new Frame(flag, buf, start, len, scanner.sidEnd, scanner.eventEnd, scanner.metaEnd);
}

export function bareFrame(buf: Buffer, start: number, flag: number): Frame {
  return new Frame(flag, buf, start, FRAME_PREFIX_BYTES, FRAME_PREFIX_BYTES, FRAME_PREFIX_BYTES, FRAME_PREFIX_BYTES);
}

/** Decodes what a refused frame's header held (for the Alarm that answers it); `buf` starts at the frame. */
export function withHeader(error: FrameError, buf: Buffer, flag: number, scanner: HeaderScanner): FrameError {
  const avail = buf.length;
  const text = (from: number, to: number): string => (from < to && to <= avail ? buf.toString('utf8', from, to) : '');
  const sid = scanner.field > 0 ? text(FRAME_PREFIX_BYTES, scanner.sidEnd) : '';
  const event = scanner.field > 1 ? text(scanner.sidEnd + 2, scanner.eventEnd) : '';
  const meta = scanner.field > 2 ? text(scanner.eventEnd + 2, scanner.metaEnd) : '';
  return new FrameError(error.code, error.message, error.fatal, flag, sid, event, meta);
}
