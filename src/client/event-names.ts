/**
 * The events of received frames as strings, decoded once per distinct event rather than once per frame.
 * A subscriber mostly receives the same few events over and over; decoding one costs a native call and a
 * new string (whose hash the handler lookup then computes again), comparing its bytes with the last few
 * events seen costs a short loop.
 */
import type { Frame } from '../protocol/frame.js';
import { FRAME_PREFIX_BYTES } from '../protocol/limits.js';

/** Distinct events remembered, replaced round robin. */
const SLOTS = 4;
/** Longer events are not remembered (the comparison would cost about what decoding does). */
const MAX_EVENT_BYTES = 64;
const ZERO = 0x00;
const LF = 0x0a;

export class EventNames {
  private readonly bytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(SLOTS).fill(null);
  private readonly names: string[] = new Array<string>(SLOTS).fill('');
  private nextSlot = 0;

  /**
   * The event of a message frame, equal to `frame.event`. The event's bytes are found as the decoder finds
   * them: after the first `00 0A` past the prefix, up to the next one. A remembered event matches only when
   * its bytes are followed by `00 0A` and none of them with the next byte forms `00 0A` earlier (a
   * remembered event holds no such pair, and a remembered event's last byte followed by the frame's `00` is
   * not one), so a match is exactly the bytes the decoder would decode.
   */
  of(frame: Frame): string {
    const raw = frame.raw;
    const length = raw.length;
    let start = -1;
    for (let i = FRAME_PREFIX_BYTES; i < length - 1; i++) {
      if (raw[i] === ZERO && raw[i + 1] === LF) {
        start = i + 2;
        break;
      }
    }
    if (start < 0) return frame.event;
    for (let s = 0; s < SLOTS; s++) {
      const known = this.bytes[s];
      if (known === null) break;
      const n = known.length;
      const end = start + n;
      if (end + 1 >= length || raw[end] !== ZERO || raw[end + 1] !== LF) continue;
      let j = 0;
      while (j < n && raw[start + j] === known[j]) j++;
      if (j === n) return this.names[s]!;
    }
    const name = frame.event;
    let end = start;
    while (end < length - 1 && !(raw[end] === ZERO && raw[end + 1] === LF)) end++;
    if (end - start <= MAX_EVENT_BYTES && end < length - 1) {
      const slot = this.nextSlot;
      this.nextSlot = (slot + 1) % SLOTS;
      // A copy: a view would keep the whole received chunk alive.
      this.bytes[slot] = Uint8Array.prototype.slice.call(raw, start, end);
      this.names[slot] = name;
    }
    return name;
  }
}
